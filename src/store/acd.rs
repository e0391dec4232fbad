//! What the matchmaker reads of agents (agents' contract §9): who may take an offer now
//! (logged in, `ready`, no call) with its queues, skill levels and idle time.

use std::collections::{BTreeMap, HashSet};

use super::journal::WaitingRow;
use super::{Store, StoreError, on_pool};

/// An agent that may take an offer now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyAgent {
    /// The agent.
    pub agent_no: String,
    /// Since when it is ready (its last call ended or it became ready), Unix ms.
    pub idle_since_ms: i64,
    /// Its queues and skill levels there.
    pub queues: Vec<(String, u8)>,
    /// Its sipNumber when it works with a WebPhone, which takes offers only while
    /// registered (agents' contract §11.3).
    pub webphone: Option<String>,
}

/// What of a session's JSON says which phone it works with.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionPhone {
    phone_type: crate::domain::agent::PhoneType,
}

type Row = (String, i64, Option<String>, Option<i64>, String, String);

fn gather(rows: Vec<Row>) -> Vec<ReadyAgent> {
    let mut agents: BTreeMap<String, ReadyAgent> = BTreeMap::new();
    for (agent_no, since, queue, skill, session, sip_number) in rows {
        let agent = agents.entry(agent_no.clone()).or_insert_with(|| {
            let phone = serde_json::from_str::<SessionPhone>(&session).map(|s| s.phone_type);
            ReadyAgent {
                agent_no,
                idle_since_ms: since,
                queues: Vec::new(),
                webphone: matches!(phone, Ok(crate::domain::agent::PhoneType::WebPhone))
                    .then_some(sip_number),
            }
        });
        if let (Some(queue), Some(skill)) = (queue, skill) {
            agent.queues.push((queue, skill.clamp(1, 10) as u8));
        }
    }
    agents.into_values().collect()
}

const READY: &str = "SELECT s.agent_no, s.state_since, q.queue_sid, q.skill_level, s.session, a.sip_number FROM agent_sessions s \
     JOIN agents a ON a.app_id = s.app_id AND a.agent_no = s.agent_no \
     LEFT JOIN agent_queues q ON q.app_id = s.app_id AND q.agent_no = s.agent_no \
     WHERE s.app_id = $1 AND s.ended_at IS NULL AND s.agent_state = 'ready'";

impl Store {
    /// The sipNumbers of every logged-in agent (of any application) with its appSid and
    /// agentNo: the devices to ask about again when a media node comes back.
    pub async fn logged_in_devices(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT a.sip_number, s.app_id, s.agent_no FROM agent_sessions s \
             JOIN agents a ON a.app_id = s.app_id AND a.agent_no = s.agent_no \
             WHERE s.ended_at IS NULL AND a.sip_number <> ''"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Every agent of `app_id` that may take an offer now.
    pub async fn ready_agents(&self, app_id: &str) -> Result<Vec<ReadyAgent>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(READY)
            .bind(app_id)
            .fetch_all(p)
            .await)?;
        Ok(gather(rows))
    }

    /// Those of agents `agent_nos` of `app_id` that may take an offer now.
    pub async fn ready_agents_among(
        &self,
        app_id: &str,
        agent_nos: &[&str],
    ) -> Result<Vec<ReadyAgent>, StoreError> {
        let list =
            serde_json::to_string(agent_nos).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!("{READY} AND {}", self.in_json_texts("s.agent_no", 2));
        let rows: Vec<Row> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(&list)
            .fetch_all(p)
            .await)?;
        Ok(gather(rows))
    }

    /// Those of queues `queue_sids` of `app_id` with a member logged in.
    pub async fn staffed_among(
        &self,
        app_id: &str,
        queue_sids: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let list =
            serde_json::to_string(queue_sids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!(
            "SELECT DISTINCT q.queue_sid FROM agent_queues q JOIN agent_sessions s ON s.app_id = q.app_id \
             AND s.agent_no = q.agent_no AND s.ended_at IS NULL WHERE q.app_id = $1 AND {}",
            self.in_json_texts("q.queue_sid", 2)
        );
        let rows: Vec<(String,)> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(&list)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(|(q,)| q).collect())
    }

    /// The callers waiting in queue `queue_sid` of `app_id`, by conversation, in join
    /// order.
    pub async fn waiting_in(
        &self,
        app_id: &str,
        queue_sid: &str,
    ) -> Result<Vec<(String, WaitingRow)>, StoreError> {
        let rows: Vec<(String, String, String, i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT conversation_id, call_sid, user_number, join_type, join_at FROM queue_waiting \
             WHERE app_id = $1 AND queue_sid = $2 ORDER BY join_at, conversation_id"
        )
        .bind(app_id)
        .bind(queue_sid)
        .fetch_all(p)
        .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(conversation, call_sid, user_number, join_type, join_at)| {
                    let row = WaitingRow {
                        app_id: app_id.to_string(),
                        queue_sid: queue_sid.to_string(),
                        call_sid,
                        user_number,
                        join_type,
                        join_at,
                    };
                    (conversation, row)
                },
            )
            .collect())
    }

    /// Whether a caller who joined one of agent `agent_no`'s queues of `app_id` before
    /// `(join_ms, conversation)` waits without an offer in a conversation another process
    /// than the one of lease `epoch` drives (one that stopped included, until its calls
    /// are taken over): the agent is that caller's first, join order holding across
    /// replicas (§9).
    pub async fn older_caller_elsewhere(
        &self,
        app_id: &str,
        agent_no: &str,
        (join_ms, conversation): (i64, &str),
        epoch: i64,
    ) -> Result<bool, StoreError> {
        let older: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT w.conversation_id FROM queue_waiting w \
             JOIN agent_queues q ON q.app_id = w.app_id AND q.queue_sid = w.queue_sid AND q.agent_no = $2 \
             JOIN calls u ON u.id = w.call_sid AND u.end_at IS NULL \
             WHERE w.app_id = $1 AND (w.join_at < $3 OR (w.join_at = $3 AND w.conversation_id < $4)) \
             AND (u.epoch IS NULL OR u.epoch <> $5) \
             AND NOT EXISTS (SELECT 1 FROM calls a WHERE a.conversation_id = w.conversation_id \
             AND a.agent_no IS NOT NULL AND a.end_at IS NULL) LIMIT 1"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(join_ms)
        .bind(conversation)
        .bind(epoch)
        .fetch_optional(p)
        .await
        })?;
        Ok(older.is_some())
    }

    /// The agent of `app_id` whose leg last answered in a conversation with
    /// `user_number`, since `since_ms` (Unix ms): a queue's last agent (§9).
    pub async fn last_agent(
        &self,
        app_id: &str,
        user_number: &str,
        since_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT a.agent_no FROM calls a JOIN calls u ON u.conversation_id = a.conversation_id \
             AND u.agent_no IS NULL WHERE a.app_id = $1 AND a.agent_no IS NOT NULL \
             AND a.answer_at IS NOT NULL AND a.answer_at >= $3 \
             AND (u.from_number = $2 OR u.to_number = $2) ORDER BY a.answer_at DESC LIMIT 1"
        )
        .bind(app_id)
        .bind(user_number)
        .bind(since_ms)
        .fetch_optional(p)
        .await)?)
    }
}

//! Agents' conversations as stored (agents' contract §7.1, §3.4): the caller id an agent
//! call shows, the conversation and first leg written with the agent's change of state,
//! and the live conversation of an agent for its commands and `getState`.

use super::placing::{CALL_COLUMNS, CallRecord};
use super::{Store, StoreError, Tx, on_pool, on_tx, on_write};

/// A new agent conversation and its first leg (the agent's), claimed by the process that
/// dials it.
#[derive(Debug, Clone)]
pub struct NewAgentCall {
    /// `CV…`.
    pub conversation_id: String,
    /// The agent's leg, `CA…`.
    pub leg_id: String,
    /// `RQ…`.
    pub request_id: String,
    /// Owner.
    pub account_sid: String,
    /// Application.
    pub app_id: String,
    /// The agent.
    pub agent_no: String,
    /// The agent's device number (dialled).
    pub agent_number: String,
    /// The number the agent's device shows.
    pub shown: Option<String>,
    /// userData.
    pub userdata: Option<String>,
    /// The conversation (`AgentCall` JSON).
    pub params: String,
    /// The claiming process's lease epoch.
    pub epoch: i64,
    /// Unix ms.
    pub created_at: i64,
    /// The agent's own phone dialled out (§11.2): its parked channel, which is the agent's
    /// leg (not dialled).
    pub phone: Option<PhoneLeg>,
}

/// An agent's phone's channel parked on a media node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneLeg {
    /// The channel's uuid.
    pub uuid: String,
    /// The media node.
    pub node: String,
}

impl NewAgentCall {
    /// Its first leg as the orchestrator drives it (as written, claimed).
    pub fn first_leg(&self) -> CallRecord {
        CallRecord {
            id: self.leg_id.clone(),
            request_id: self.request_id.clone(),
            account_sid: self.account_sid.clone(),
            app_id: self.app_id.clone(),
            kind: crate::domain::CallKind::Agent.as_str().into(),
            conversation_id: Some(self.conversation_id.clone()),
            leg_seq: 0,
            to_number: self.agent_number.clone(),
            from_number: self.shown.clone(),
            userdata: self.userdata.clone(),
            params: self.params.clone(),
            created_at: self.created_at,
            agent_no: Some(self.agent_no.clone()),
            state: match self.phone {
                Some(_) => "initiated".into(),
                None => "placing".into(),
            },
            node: self.phone.as_ref().map(|p| p.node.clone()),
            channel_uuid: self.phone.as_ref().map(|p| p.uuid.clone()),
            start_at: self.phone.as_ref().map(|_| self.created_at),
            ..CallRecord::default()
        }
    }
}

/// The account is at its `maxConcurrentCalls` (10008): the call was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom;

/// A `displayNum` that is in none of the application's caller-id pools (20008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInPool;

/// Writes `call` if its account has room under `maxConcurrentCalls` (`false`: no room,
/// nothing written).
pub(crate) async fn insert_agent_call(
    tx: &mut Tx<'_>,
    call: &NewAgentCall,
) -> Result<bool, sqlx::Error> {
    let room = on_tx!(tx, |c| {
        sqlx::query(
        "UPDATE accounts SET live_calls = live_calls + 1 WHERE sid = $1 AND enabled AND live_calls < max_concurrent_calls"
    )
    .bind(&call.account_sid)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    if room == 0 {
        return Ok(false);
    }
    on_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO conversations (id, request_id, account_sid, app_id, state, agent_no, created_at) \
         VALUES ($1, $2, $3, $4, 'dialing', $5, $6)"
    )
    .bind(&call.conversation_id)
    .bind(&call.request_id)
    .bind(&call.account_sid)
    .bind(&call.app_id)
    .bind(&call.agent_no)
    .bind(call.created_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    let userdata = call.userdata.as_deref().map(super::text::encode);
    on_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, \
         from_number, userdata, params, epoch, created_at, updated_at, agent_no, node, channel_uuid, start_at) \
         VALUES ($1, $2, $3, $4, 'agent', $5, 0, $13, $6, $7, $8, $9, $10, $11, $11, $12, $14, $15, $16)"
    )
    .bind(&call.leg_id)
    .bind(&call.request_id)
    .bind(&call.account_sid)
    .bind(&call.app_id)
    .bind(&call.conversation_id)
    .bind(&call.agent_number)
    .bind(&call.shown)
    .bind(userdata.as_deref())
    .bind(&call.params)
    .bind(call.epoch)
    .bind(call.created_at)
    .bind(&call.agent_no)
    .bind(if call.phone.is_some() { "initiated" } else { "placing" })
    .bind(call.phone.as_ref().map(|p| p.node.as_str()))
    .bind(call.phone.as_ref().map(|p| p.uuid.as_str()))
    .bind(call.phone.as_ref().map(|_| call.created_at))
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(true)
}

impl Store {
    /// The caller id of an agent's outbound leg (§3.4): `display` if given and in a pool of
    /// the application; otherwise the next number, round-robin, of pool `agent_pool`, else
    /// of the application's default pool; `None`: the gateway's default.
    pub async fn agent_caller_id(
        &self,
        app_id: &str,
        agent_pool: Option<&str>,
        display: &str,
    ) -> Result<Result<Option<String>, NotInPool>, StoreError> {
        if !display.is_empty() {
            let pools: Vec<String> = on_pool!(self, |p| sqlx::query_scalar(
                "SELECT numbers FROM caller_id_pools WHERE app_id = $1"
            )
            .bind(app_id)
            .fetch_all(p)
            .await)?;
            let found = pools.iter().any(|json| {
                serde_json::from_str::<Vec<String>>(json)
                    .is_ok_and(|numbers| numbers.iter().any(|n| n == display))
            });
            return Ok(match found {
                true => Ok(Some(display.to_string())),
                false => Err(NotInPool),
            });
        }
        let turned: Option<(i64, String)> = on_write!(self, |p| {
            sqlx::query_as(
            "UPDATE caller_id_pools SET next_index = next_index + 1 WHERE pool_sid = \
             (SELECT pool_sid FROM caller_id_pools WHERE app_id = $1 AND (pool_sid = $2 OR ($2 IS NULL AND is_default)) LIMIT 1) \
             RETURNING next_index - 1, numbers"
        )
        .bind(app_id)
        .bind(agent_pool)
        .fetch_optional(p)
        .await
        })?;
        Ok(Ok(turned.and_then(|(index, json)| {
            let numbers: Vec<String> = serde_json::from_str(&json).ok()?;
            let n = numbers.len() as i64;
            (n > 0).then(|| numbers[index.rem_euclid(n) as usize].clone())
        })))
    }

    /// The userData of conversation `id`'s legs as `getState` shows it (the conversation's
    /// own copy, in its snapshot, is what its events and CDR use).
    pub async fn set_conversation_userdata(&self, id: &str, data: &str) -> Result<(), StoreError> {
        let data = super::text::encode(data);
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE calls SET userdata = $2 WHERE conversation_id = $1"
        )
        .bind(id)
        .bind(data.as_ref())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// The last snapshot of conversation `id` (what its driver wrote for a takeover).
    pub async fn conversation_snapshot(&self, id: &str) -> Result<Option<String>, StoreError> {
        let snapshot: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT snapshot FROM conversations WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(snapshot.flatten())
    }

    /// The legs of agent `agent_no`'s live conversations, in dialling order.
    pub async fn agent_legs(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE conversation_id IN (SELECT id FROM conversations \
             WHERE app_id = $1 AND state <> 'ended' AND (agent_no = $2 OR id IN (SELECT conversation_id FROM calls \
             WHERE app_id = $1 AND agent_no = $2 AND end_at IS NULL))) ORDER BY conversation_id, leg_seq"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(agent_no)
            .fetch_all(p)
            .await)?)
    }
}

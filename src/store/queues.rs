//! Queues of an application (agents' contract §3.2). A queue named by another queue's
//! overflow, a number's route or a membership is share-locked while that write commits
//! (PostgreSQL), so a deletion cannot slip in between the check and the write.

use serde_json::{Value, json};

use super::{Store, StoreError, Tx, on_pool, on_tx};
use crate::cdr::format_time;
use crate::domain::ids::is_well_formed;
use crate::domain::queue::QueueSettings;
use crate::domain::time::now_ms;

/// One queue as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// `QU…`.
    pub queue_sid: String,
    /// Its application.
    pub app_id: String,
    /// Its settings.
    pub settings: QueueSettings,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

impl QueueRecord {
    /// The contract's shape.
    pub fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        let mut out = json!({"queueSid": self.queue_sid});
        if let (Value::Object(out), Value::Object(fields)) = (&mut out, self.settings.to_json()) {
            out.extend(fields);
            out.insert("createdAt".into(), format_time(self.created_at, tz).into());
            out.insert("updatedAt".into(), format_time(self.updated_at, tz).into());
        }
        out
    }
}

/// What deleting a queue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueDeletion {
    /// It is gone, with its memberships.
    Deleted,
    /// There was no such queue.
    NotFound,
    /// Something names it (the statusMsg of 20004).
    InUse(String),
}

/// A write that names a queue of another application (or none).
#[derive(Debug, thiserror::Error)]
pub enum QueueWriteError {
    /// A named queue is not one of the application's (20003).
    #[error("queue not found")]
    QueueNotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for QueueWriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

type QueueRow = (
    String,
    String,
    String,
    String,
    i64,
    bool,
    i64,
    i64,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

const QUEUE_COLUMNS: &str = "queue_sid, app_id, name, strategy, ring_timeout, last_agent_routing, \
     last_agent_window_hours, max_wait_seconds, overflow, music_on_hold, announce, created_at, updated_at";

fn from_row(row: QueueRow) -> Result<QueueRecord, StoreError> {
    let (sid, app_id, name, strategy, ring, last, window, max_wait, overflow, moh, announce, c, u) =
        row;
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let stored = json!({
        "name": name, "strategy": strategy, "ringTimeout": ring, "lastAgentRouting": last,
        "lastAgentWindowHours": window, "maxWaitSeconds": max_wait,
        "overflow": parse(&overflow), "musicOnHold": moh,
        "announce": announce.as_deref().map_or(Value::Null, parse),
    });
    let settings = QueueSettings::from_json(&stored)
        .map_err(|e| StoreError::Corrupt(format!("queue {sid}: {e}")))?;
    Ok(QueueRecord {
        queue_sid: sid,
        app_id,
        settings,
        created_at: c,
        updated_at: u,
    })
}

/// Whether `queue_sid` is a queue of `app_id`; on PostgreSQL its row stays share-locked
/// until `tx` ends, so it cannot be deleted under the write that names it.
pub(crate) async fn queue_in_app(
    tx: &mut Tx<'_>,
    app_id: &str,
    queue_sid: &str,
) -> Result<bool, sqlx::Error> {
    if !is_well_formed(queue_sid, "QU") {
        return Ok(false);
    }
    let sql = format!(
        "SELECT queue_sid FROM queues WHERE app_id = $1 AND queue_sid = $2{}",
        tx.for_share()
    );
    let found: Option<String> = on_tx!(tx, |c| sqlx::query_scalar(&sql)
        .bind(app_id)
        .bind(queue_sid)
        .fetch_optional(c)
        .await)?;
    Ok(found.is_some())
}

/// Checks every queue of `sids` with [`queue_in_app`].
pub(crate) async fn queues_in_app<'a>(
    tx: &mut Tx<'_>,
    app_id: &str,
    sids: impl IntoIterator<Item = &'a str>,
) -> Result<(), QueueWriteError> {
    for sid in sids {
        if !queue_in_app(tx, app_id, sid).await? {
            return Err(QueueWriteError::QueueNotFound);
        }
    }
    Ok(())
}

/// A member of a queue with its live session, if it is logged in.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberSession {
    /// The agent.
    pub agent_no: String,
    /// Its session (the state machine's JSON), when logged in.
    pub session: Option<String>,
    /// When it entered its agentState, Unix ms.
    pub state_since: Option<i64>,
}

fn text(value: Value) -> String {
    value.to_string()
}

impl Store {
    /// Writes queue `queue_sid` of `app_id` with `settings`: creates it (`creating`) or
    /// replaces the settings of an existing one (`None` if there is none).
    pub async fn put_queue(
        &self,
        app_id: &str,
        queue_sid: &str,
        settings: &QueueSettings,
        creating: bool,
    ) -> Result<Option<QueueRecord>, QueueWriteError> {
        let mut tx = self.begin_write().await?;
        queues_in_app(&mut tx, app_id, settings.names().queues).await?;
        let json = settings.to_json();
        let now = now_ms();
        let sql = if creating {
            "INSERT INTO queues (name, strategy, ring_timeout, last_agent_routing, last_agent_window_hours, \
             max_wait_seconds, overflow, music_on_hold, announce, created_at, updated_at, app_id, queue_sid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)"
        } else {
            "UPDATE queues SET name = $1, strategy = $2, ring_timeout = $3, last_agent_routing = $4, \
             last_agent_window_hours = $5, max_wait_seconds = $6, overflow = $7, music_on_hold = $8, \
             announce = $9, updated_at = $10 WHERE app_id = $11 AND queue_sid = $12"
        };
        let done = on_tx!(&mut tx, |c| sqlx::query(sql)
            .bind(&settings.name)
            .bind(settings.strategy.as_str())
            .bind(i64::from(settings.ring_timeout_secs))
            .bind(settings.last_agent_routing)
            .bind(i64::from(settings.last_agent_window_hours))
            .bind(i64::from(settings.max_wait_secs))
            .bind(text(json["overflow"].clone()))
            .bind(json["musicOnHold"].as_str().unwrap_or_default())
            .bind((!json["announce"].is_null()).then(|| text(json["announce"].clone())))
            .bind(now)
            .bind(app_id)
            .bind(queue_sid)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(self.find_queue(app_id, queue_sid).await?)
    }

    /// Queue `queue_sid` if it belongs to `app_id`.
    pub async fn find_queue(
        &self,
        app_id: &str,
        queue_sid: &str,
    ) -> Result<Option<QueueRecord>, StoreError> {
        let sql =
            format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE app_id = $1 AND queue_sid = $2");
        let row: Option<QueueRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(queue_sid)
            .fetch_optional(p)
            .await)?;
        row.map(from_row).transpose()
    }

    /// The members of queue `queue_sid` by agentNo, with their live sessions.
    pub async fn queue_members(
        &self,
        app_id: &str,
        queue_sid: &str,
    ) -> Result<Vec<MemberSession>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT q.agent_no, s.session, s.state_since FROM agent_queues q \
             LEFT JOIN agent_sessions s ON s.app_id = q.app_id AND s.agent_no = q.agent_no AND s.ended_at IS NULL \
             WHERE q.app_id = $1 AND q.queue_sid = $2 ORDER BY q.agent_no"
        )
        .bind(app_id)
        .bind(queue_sid)
        .fetch_all(p)
        .await
        })?)
    }

    /// The queues agent `agent_no` of `app_id` belongs to, each with the agent's live
    /// session (the state machine's JSON; `None` when it is not logged in).
    pub async fn agent_memberships(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT q.queue_sid, s.session FROM agent_queues q \
             LEFT JOIN agent_sessions s ON s.app_id = q.app_id AND s.agent_no = q.agent_no AND s.ended_at IS NULL \
             WHERE q.app_id = $1 AND q.agent_no = $2 ORDER BY q.queue_sid"
        )
        .bind(app_id)
        .bind(agent_no)
        .fetch_all(p)
        .await
        })?)
    }

    /// The live sessions of `app_id`'s agents: (agentNo, the state machine's JSON).
    pub async fn live_sessions(&self, app_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT agent_no, session FROM agent_sessions WHERE app_id = $1 AND ended_at IS NULL",
            )
            .bind(app_id)
            .fetch_all(p)
            .await
        })?)
    }

    /// Every (agentNo, queueSid) membership of the logged-in agents of `app_id`.
    pub async fn logged_in_memberships(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT q.agent_no, q.queue_sid FROM agent_queues q \
             JOIN agent_sessions s ON s.app_id = q.app_id AND s.agent_no = q.agent_no AND s.ended_at IS NULL \
             WHERE q.app_id = $1"
        )
        .bind(app_id)
        .fetch_all(p)
        .await
        })?)
    }

    /// Up to `limit` queues of `app_id` after queueSid `after`, by queueSid.
    pub async fn list_queues(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QueueRecord>, StoreError> {
        let sql = format!(
            "SELECT {QUEUE_COLUMNS} FROM queues WHERE app_id = $1 AND queue_sid > $2 ORDER BY queue_sid LIMIT $3"
        );
        let rows: Vec<QueueRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(from_row).collect()
    }

    /// Deletes a queue and its memberships unless a number's route or another queue's
    /// overflow names it.
    pub async fn delete_queue(
        &self,
        app_id: &str,
        queue_sid: &str,
    ) -> Result<QueueDeletion, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT queue_sid FROM queues WHERE app_id = $1 AND queue_sid = $2{}",
            tx.for_update()
        );
        let found: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(app_id)
            .bind(queue_sid)
            .fetch_optional(c)
            .await)?;
        if found.is_none() {
            return Ok(QueueDeletion::NotFound);
        }
        // Sids are fixed-shape ids, so the quoted sid inside a stored route or overflow
        // is that queue and nothing else.
        let quoted = format!("%\"{queue_sid}\"%");
        let holders = [
            (
                "SELECT number FROM did_numbers WHERE app_id = $1 AND route LIKE $2 ORDER BY number LIMIT 1",
                "the route of number",
            ),
            (
                "SELECT queue_sid FROM queues WHERE app_id = $1 AND overflow LIKE $2 ORDER BY queue_sid LIMIT 1",
                "the overflow of queue",
            ),
        ];
        for (sql, what) in holders {
            let holder: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(sql)
                .bind(app_id)
                .bind(&quoted)
                .fetch_optional(c)
                .await)?;
            if let Some(holder) = holder {
                return Ok(QueueDeletion::InUse(format!(
                    "queue in use by {what} {holder}"
                )));
            }
        }
        on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM agent_queues WHERE app_id = $1 AND queue_sid = $2"
        )
        .bind(app_id)
        .bind(queue_sid)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM queues WHERE queue_sid = $1"
        )
        .bind(queue_sid)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(QueueDeletion::Deleted)
    }
}

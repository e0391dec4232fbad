//! The queues a supervisor's session monitors (agents' contract §7.2 `monitorQueues`),
//! kept with the session so a socket that comes back (to any replica) monitors them again.

use super::{Store, StoreError, on_pool, on_write};

/// What a session's `monitored_queues` holds for "every queue".
pub const ALL_QUEUES: &str = "*";

impl Store {
    /// Sets the queues the live session of `agent_no` monitors (`None`: none); `false`
    /// when the agent has no live session.
    pub async fn set_monitored(
        &self,
        app_id: &str,
        agent_no: &str,
        queues: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        let stored = queues.map(|q| serde_json::Value::from(q.to_vec()).to_string());
        let done = on_write!(self, |p| {
            sqlx::query(
            "UPDATE agent_sessions SET monitored_queues = $3 WHERE app_id = $1 AND agent_no = $2 AND ended_at IS NULL"
        )
        .bind(app_id)
        .bind(agent_no)
        .bind(&stored)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// The queues the live session of `agent_no` monitors (`None`: none or no session;
    /// [`ALL_QUEUES`] alone: every queue).
    pub async fn monitored(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let stored: Option<Option<String>> = on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT monitored_queues FROM agent_sessions WHERE app_id = $1 AND agent_no = $2 AND ended_at IS NULL"
        )
        .bind(app_id)
        .bind(agent_no)
        .fetch_optional(p)
        .await
        })?;
        Ok(stored
            .flatten()
            .and_then(|s| serde_json::from_str::<Vec<String>>(&s).ok()))
    }
}

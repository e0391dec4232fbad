//! Figures for `/metrics`, read with the partial indexes of unfinished calls and pending
//! or failed callbacks (cheap however many finished rows the tables hold).

use super::placing::QUEUED_LEG;
use super::{Store, StoreError};
use crate::domain::time::now_ms;

impl Store {
    /// Unfinished call legs (queued included) by kind and state: `(kind, state, count)`.
    pub async fn call_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let sql = format!(
            "SELECT kind, state, COUNT(*) FROM calls WHERE {QUEUED_LEG} GROUP BY kind, state \
             UNION ALL SELECT kind, state, COUNT(*) FROM calls WHERE end_at IS NULL AND epoch IS NOT NULL GROUP BY kind, state"
        );
        Ok(super::on_pool!(self, |p| sqlx::query_as(&sql)
            .fetch_all(p)
            .await)?)
    }

    /// Callbacks not delivered: `due` (to be sent now), `in_flight` (claimed by a
    /// dispatcher), `scheduled` (a retry later), `failed` (for good, until re-pushed).
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT CASE WHEN claimed_until >= $1 THEN 'in_flight' WHEN next_attempt_at <= $1 THEN 'due' ELSE 'scheduled' END AS s, COUNT(*) \
                   FROM outbox WHERE state = 'pending' GROUP BY 1 \
                   UNION ALL SELECT 'failed', COUNT(*) FROM outbox WHERE state = 'failed'";
        let counted: Vec<(String, i64)> = super::on_pool!(self, |p| sqlx::query_as(sql)
            .bind(now_ms())
            .fetch_all(p)
            .await)?;
        // Every state, zeros included, so a dashboard's series do not come and go.
        Ok(["due", "in_flight", "scheduled", "failed"]
            .into_iter()
            .map(|state| {
                let n = counted
                    .iter()
                    .filter(|(s, _)| s == state)
                    .map(|(_, n)| n)
                    .sum();
                (state.to_string(), n)
            })
            .collect())
    }
}

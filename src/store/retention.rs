//! Retention: what the database stops keeping. Idempotency keys after their 24 hours,
//! delivered and failed callbacks (outbox rows and their attempts) after the configured
//! number of days. Each purge deletes a bounded number of rows per table so it never holds
//! the database for long; the periodic task repeats it while there is more.

use super::{Store, StoreError, on_pool};

/// How long an Idempotency-Key answers for its request (the contract's 24 hours).
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3_600_000;
/// Most rows one purge deletes from one table.
pub const PURGE_BATCH: i64 = 5_000;

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Idempotency keys past their 24 hours.
    pub idempotency_keys: u64,
    /// Delivered or failed callbacks finished before the cut-off.
    pub deliveries: u64,
    /// The attempts of those callbacks.
    pub attempts: u64,
}

impl Purged {
    /// Whether some table had a whole batch to delete (more may be waiting).
    pub fn full(&self) -> bool {
        let batch = PURGE_BATCH as u64;
        self.idempotency_keys >= batch || self.deliveries >= batch
    }
}

impl Store {
    /// Deletes, as of `now` (Unix ms), idempotency keys older than 24 hours and callbacks
    /// that finished (delivered or failed) more than `keep_deliveries_ms` ago, with their
    /// attempts; at most [`PURGE_BATCH`] rows of each.
    pub async fn purge_expired(
        &self,
        now: i64,
        keep_deliveries_ms: i64,
    ) -> Result<Purged, StoreError> {
        let key_cutoff = now - IDEMPOTENCY_KEY_TTL_MS;
        let delivery_cutoff = now - keep_deliveries_ms;
        let idempotency_keys = on_pool!(self, |p| sqlx::query(
            "DELETE FROM idempotency_keys WHERE (account_sid, idem_key) IN \
             (SELECT account_sid, idem_key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)"
        )
        .bind(key_cutoff)
        .bind(PURGE_BATCH)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        let mut tx = self.begin_write().await?;
        // Attempts of a feed batch are logged under the batch's id; a batch's rows finish
        // together, so its attempts go with the first of them.
        let attempts = super::on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM delivery_attempts WHERE webhook_id IN \
             (SELECT COALESCE(batch_id, webhook_id) FROM outbox \
              WHERE state <> 'pending' AND finished_at < $1 ORDER BY finished_at LIMIT $2)"
        )
        .bind(delivery_cutoff)
        .bind(PURGE_BATCH)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        let deliveries = super::on_tx!(&mut tx, |c| {
            sqlx::query(
            "DELETE FROM outbox WHERE seq IN \
             (SELECT seq FROM outbox WHERE state <> 'pending' AND finished_at < $1 ORDER BY finished_at LIMIT $2)"
        )
        .bind(delivery_cutoff)
        .bind(PURGE_BATCH)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(Purged {
            idempotency_keys,
            deliveries,
            attempts,
        })
    }
}

/// Time between purges.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Purges expired rows now and every ten minutes, for the life of the process (each replica
/// may run it: the deletes do not conflict).
pub async fn purge_periodically(store: Store, keep_deliveries_ms: i64) {
    loop {
        loop {
            match store
                .purge_expired(crate::domain::time::now_ms(), keep_deliveries_ms)
                .await
            {
                Ok(purged) => {
                    if purged != Purged::default() {
                        tracing::info!(?purged, "retention purge");
                    }
                    if !purged.full() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention purge failed; trying again later");
                    break;
                }
            }
        }
        tokio::time::sleep(PURGE_EVERY).await;
    }
}

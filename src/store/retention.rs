//! Retention: what the platform stops keeping. Idempotency keys after their 24 hours,
//! delivered and failed callbacks (outbox rows and their attempts) after the configured
//! number of days, recording files after theirs, agent sessions (with their events) a day
//! after they ended, failed password attempts once they no longer count and agent tokens
//! once expired. Each purge deletes a bounded number of
//! rows per table (and files) so it never holds the database or the disk for long; the
//! periodic task repeats it while there is more.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Store, StoreError, on_pool, on_write};
use crate::domain::ConversationId;

/// How long an Idempotency-Key answers for its request (the contract's 24 hours).
pub const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3_600_000;
/// Most rows one purge deletes from one table.
pub const PURGE_BATCH: i64 = 5_000;
/// How long an ended agent session and its events are kept.
pub const ENDED_SESSION_TTL_MS: i64 = 24 * 3_600_000;
/// How long failed password attempts count (agents' contract §1).
pub const AUTH_FAILURE_WINDOW_MS: i64 = 10 * 60_000;

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Idempotency keys past their 24 hours.
    pub idempotency_keys: u64,
    /// Delivered or failed callbacks finished before the cut-off.
    pub deliveries: u64,
    /// The attempts of those callbacks.
    pub attempts: u64,
    /// Ended agent sessions (their events go with them), failed password attempts that
    /// no longer count and expired agent tokens.
    pub agent_rows: u64,
}

impl Purged {
    /// Whether some table had a whole batch to delete (more may be waiting).
    pub fn full(&self) -> bool {
        let batch = PURGE_BATCH as u64;
        self.idempotency_keys >= batch || self.deliveries >= batch || self.agent_rows >= batch
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
        let idempotency_keys = on_write!(self, |p| sqlx::query(
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
            agent_rows: self.purge_agent_rows(now).await?,
        })
    }

    /// Deletes agent sessions that ended a day ago, with their events, failed password
    /// attempts past their window, expired agent tokens and day-old inbound claims; at
    /// most [`PURGE_BATCH`] of each.
    async fn purge_agent_rows(&self, now: i64) -> Result<u64, StoreError> {
        let failures = on_write!(self, |p| {
            sqlx::query(
            "DELETE FROM agent_auth_failures WHERE (app_id, agent_no, address) IN \
             (SELECT app_id, agent_no, address FROM agent_auth_failures WHERE window_start < $1 LIMIT $2)"
        )
        .bind(now - AUTH_FAILURE_WINDOW_MS)
        .bind(PURGE_BATCH)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        let tokens = on_write!(self, |p| sqlx::query(
            "DELETE FROM agent_tokens WHERE token_hash IN \
             (SELECT token_hash FROM agent_tokens WHERE expires_at < $1 LIMIT $2)"
        )
        .bind(now)
        .bind(PURGE_BATCH)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        let ended: Vec<String> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT session_sid FROM agent_sessions WHERE ended_at < $1 LIMIT $2"
        )
        .bind(now - ENDED_SESSION_TTL_MS)
        .bind(PURGE_BATCH / 10)
        .fetch_all(p)
        .await)?;
        let mut tx = self.begin_write().await?;
        for sid in &ended {
            for sql in [
                "DELETE FROM agent_events WHERE session_sid = $1",
                "DELETE FROM agent_sessions WHERE session_sid = $1",
            ] {
                super::on_tx!(&mut tx, |c| sqlx::query(sql)
                    .bind(sid)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
        }
        tx.commit().await?;
        let claims = self.purge_inbound_claims(now, PURGE_BATCH).await?;
        // A conversation's event counter, a day after its last event (an agent's stays:
        // its receivers order by it).
        let counters = on_write!(self, |p| {
            sqlx::query(
            "DELETE FROM event_push_seqs WHERE ordering_key IN \
             (SELECT ordering_key FROM event_push_seqs WHERE updated_at < $1 AND ordering_key LIKE 'events:CV%' LIMIT $2)"
        )
        .bind(now - ENDED_SESSION_TTL_MS)
        .bind(PURGE_BATCH)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(failures + tokens + ended.len() as u64 + claims + counters)
    }
}

/// What to keep how long.
#[derive(Debug, Clone)]
pub struct Retention {
    /// How long finished callbacks are kept (ms).
    pub keep_deliveries_ms: i64,
    /// Where recordings are.
    pub recordings_dir: PathBuf,
    /// How long a recording file is kept after it was last written; `None` = for ever.
    pub keep_recordings: Option<Duration>,
}

impl Retention {
    /// The retention the settings ask for.
    pub fn of(settings: &crate::config::Settings) -> Self {
        let days = |d: f64| Duration::from_secs_f64((d * 86_400.0).min(1e12));
        Self {
            keep_deliveries_ms: days(settings.delivery_retention_days).as_millis() as i64,
            recordings_dir: settings.recordings_dir.clone(),
            keep_recordings: (settings.recording_retention_days > 0.0)
                .then(|| days(settings.recording_retention_days)),
        }
    }
}

/// Deletes up to [`PURGE_BATCH`] recording files in `dir` last written before `cutoff`;
/// returns how many. Only files named as the platform names recordings
/// (`<conversationSid>.wav`) are touched: whatever else shares the directory stays.
pub fn purge_recordings(dir: &Path, cutoff: SystemTime) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let is_recording = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wav"))
            .and_then(ConversationId::parse)
            .is_some();
        let Ok(meta) = entry.metadata() else { continue };
        if !is_recording || !meta.is_file() || meta.modified().map_or(true, |m| m >= cutoff) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => deleted += 1,
            // Another replica got there first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if deleted >= PURGE_BATCH as u64 {
            break;
        }
    }
    Ok(deleted)
}

/// Time between purges.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Purges expired rows and recordings now and every ten minutes, for the life of the
/// process (each replica may run it: the deletes do not conflict).
pub async fn purge_periodically(store: Store, retention: Retention) {
    loop {
        if let Some(keep) = retention.keep_recordings {
            purge_recordings_until_done(&retention.recordings_dir, keep).await;
        }
        loop {
            match store
                .purge_expired(crate::domain::time::now_ms(), retention.keep_deliveries_ms)
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

/// Deletes expired recording files, a batch at a time, off the async threads.
async fn purge_recordings_until_done(dir: &Path, keep: Duration) {
    let Some(cutoff) = SystemTime::now().checked_sub(keep) else {
        return;
    };
    loop {
        let dir = dir.to_path_buf();
        match tokio::task::spawn_blocking(move || purge_recordings(&dir, cutoff)).await {
            Ok(Ok(deleted)) => {
                if deleted > 0 {
                    tracing::info!(deleted, "retention purge of recordings");
                }
                if deleted < PURGE_BATCH as u64 {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "recording purge failed; trying again later");
                return;
            }
            Err(_) => return,
        }
    }
}

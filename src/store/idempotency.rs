//! Idempotency keys (API.md §1a): a repeat of a POST with the same key and account within
//! 24 h gets the first response; the same key with a different request is refused. Only
//! successful responses are kept, so a request refused for a passing reason (a full
//! queue) can be retried with its key.

use super::{Tx, on_tx};

/// How long an idempotency key holds.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// An idempotency key claimed by a request.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// The `Idempotency-Key` header.
    pub key: String,
    /// Hash of the endpoint and the canonical body.
    pub request_hash: String,
}

/// What a stored key says about a new request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Same request: answer with this stored response.
    Same(String),
    /// A different request under the same key.
    Different,
}

/// The stored key's verdict, if the key is within its window. An expired key is removed
/// so the new request can take it.
pub(crate) async fn stored_replay(
    tx: &mut Tx<'_>,
    sid: &str,
    claim: &IdempotencyClaim,
    now: i64,
) -> Result<Option<Replay>, sqlx::Error> {
    let row: Option<(String, String, i64)> = on_tx!(tx, |c| {
        sqlx::query_as("SELECT request_hash, response, created_at FROM idempotency_keys WHERE account_sid = $1 AND idem_key = $2")
            .bind(sid)
            .bind(&claim.key)
            .fetch_optional(c)
            .await
    })?;
    match row {
        Some((hash, response, created_at)) if created_at > now - IDEMPOTENCY_WINDOW_MS => {
            Ok(Some(if hash == claim.request_hash {
                Replay::Same(response)
            } else {
                Replay::Different
            }))
        }
        Some(_) => {
            on_tx!(tx, |c| {
                sqlx::query("DELETE FROM idempotency_keys WHERE account_sid = $1 AND idem_key = $2")
                    .bind(sid)
                    .bind(&claim.key)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(None)
        }
        None => Ok(None),
    }
}

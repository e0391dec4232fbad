//! Reading back what calls left behind: CDRs and the callbacks waiting in the outbox.

use super::{Store, StoreError, on_pool};

/// One callback in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEntry {
    /// `result`, `status`, `cdr` or `feed`.
    pub kind: String,
    /// Where it goes.
    pub target_url: String,
    /// The JSON body.
    pub body: String,
    /// Its webhook id.
    pub webhook_id: String,
    /// `pending`, …
    pub state: String,
}

impl Store {
    /// The CDR (as pushed) of notice/captcha call or conversation `id`.
    pub async fn cdr_body(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT body FROM cdrs WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// The callbacks of ordering key `key` (a call, a conversation), in delivery order.
    pub async fn outbox_of(&self, key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT kind, target_url, body, webhook_id, state FROM outbox WHERE ordering_key = $1 ORDER BY seq"
        )
        .bind(key)
        .fetch_all(p)
        .await
        })?)
    }

    /// How many CDRs there are (all accounts).
    pub async fn count_cdrs(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM cdrs"
        )
        .fetch_one(p)
        .await)?)
    }

    /// For each notice/captcha call of `account_sid` with a CDR: when it was dialled, when
    /// it ended (media clock) and when its CDR was written (Unix ms), for load reports.
    pub async fn call_timings(
        &self,
        account_sid: &str,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT l.start_at, l.end_at, c.created_at FROM cdrs c JOIN calls l ON l.id = c.id \
             WHERE c.account_sid = $1 AND l.start_at IS NOT NULL AND l.end_at IS NOT NULL"
        )
        .bind(account_sid)
        .fetch_all(p)
        .await)?)
    }
}

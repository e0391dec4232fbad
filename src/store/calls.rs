//! Reading call legs back (the orchestrator and CDR layers build on this).

use super::{Store, StoreError, on_pool};

/// One call leg as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallSummary {
    /// `CA…`.
    pub id: String,
    /// `notice`, `captcha` or `click2call`.
    pub kind: String,
    /// `queued`, … , `completed`.
    pub state: String,
    /// Callee.
    pub to_number: String,
    /// Its conversation (click-to-call).
    pub conversation_id: Option<String>,
    /// Dialling order in the conversation.
    pub leg_seq: i64,
    /// How it ended (`canceled`, …).
    pub cause: Option<String>,
}

impl Store {
    /// The legs placed by request `request_id`, in dialling order.
    pub async fn calls_of_request(&self, request_id: &str) -> Result<Vec<CallSummary>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT id, kind, state, to_number, conversation_id, leg_seq, cause FROM calls WHERE request_id = $1 ORDER BY leg_seq, id",
            )
            .bind(request_id)
            .fetch_all(p)
            .await
        })?)
    }
}

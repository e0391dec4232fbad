//! Click-to-call conversations after acceptance: their state, and cancelCall.

use super::idempotency::{IdempotencyClaim, Replay, remember, stored_replay};
use super::{Store, StoreError, on_pool, on_tx};
use crate::domain::time::now_ms;

/// Where a conversation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    /// Accepted, waiting for the orchestrator to dial the caller.
    Queued,
    /// Over; nothing can be done to it any more.
    Ended,
}

impl ConversationState {
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "queued" => Ok(Self::Queued),
            "ended" => Ok(Self::Ended),
            other => Err(StoreError::Corrupt(format!(
                "unknown conversation state {other:?}"
            ))),
        }
    }
}

/// byeType of a conversation ended by cancelCall (API.md §6.2).
pub const BYE_TYPE_CANCELED: i64 = 6;

/// What cancelCall did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// No such conversation in this account and application.
    NotFound,
    /// It had ended already.
    AlreadyEnded,
    /// It is ended now.
    Canceled,
    /// A repeat of an idempotent request.
    Replayed(Replay),
}

impl Store {
    /// The state of conversation `id` of `account_sid`'s application `app_id`.
    pub async fn conversation_state(
        &self,
        account_sid: &str,
        app_id: &str,
        id: &str,
    ) -> Result<Option<ConversationState>, StoreError> {
        let state: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT state FROM conversations WHERE id = $1 AND account_sid = $2 AND app_id = $3")
                .bind(id)
                .bind(account_sid)
                .bind(app_id)
                .fetch_optional(p)
                .await
        })?;
        state.as_deref().map(ConversationState::parse).transpose()
    }

    /// Ends a conversation that has not been dialled yet (cancelCall). Its legs end as
    /// `canceled` and leave the account's queue; byeType is 6.
    pub async fn cancel_conversation(
        &self,
        account_sid: &str,
        app_id: &str,
        id: &str,
        claim: Option<&IdempotencyClaim>,
        response: &str,
    ) -> Result<CancelOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(claim) = claim
            && let Some(replay) = stored_replay(&mut tx, account_sid, claim, now).await?
        {
            return Ok(CancelOutcome::Replayed(replay));
        }
        let sql = format!(
            "SELECT state FROM conversations WHERE id = $1 AND account_sid = $2 AND app_id = $3{}",
            tx.for_update()
        );
        let state: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(id)
            .bind(account_sid)
            .bind(app_id)
            .fetch_optional(c)
            .await)?;
        let Some(state) = state else {
            return Ok(CancelOutcome::NotFound);
        };
        match ConversationState::parse(&state)? {
            ConversationState::Ended => return Ok(CancelOutcome::AlreadyEnded),
            ConversationState::Queued => {}
        }
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE conversations SET state = 'ended', bye_type = $2, ended_at = $3 WHERE id = $1")
                .bind(id)
                .bind(BYE_TYPE_CANCELED)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        let left_queue = on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE calls SET state = 'completed', cause = 'canceled', updated_at = $2 WHERE conversation_id = $1 AND state = 'queued'")
                .bind(id)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })? as i64;
        on_tx!(&mut tx, |c| {
            sqlx::query("UPDATE accounts SET queued_calls = queued_calls - $2 WHERE sid = $1")
                .bind(account_sid)
                .bind(left_queue)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
        })?;
        if let Some(claim) = claim {
            remember(&mut tx, account_sid, claim, response, now).await?;
        }
        tx.commit().await?;
        Ok(CancelOutcome::Canceled)
    }
}

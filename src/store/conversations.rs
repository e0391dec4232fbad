//! Click-to-call conversations after acceptance: their state, claiming one for cancelCall,
//! and idempotency for the actions on a conversation.

use super::idempotency::{IdempotencyClaim, Replay, stored_replay};
use super::placing::{CALL_COLUMNS, CallRecord};
use super::{Store, StoreError, on_pool, on_tx};
use crate::domain::time::now_ms;

/// Where a conversation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    /// Accepted, waiting for the orchestrator to dial the caller.
    Queued,
    /// Dialling the caller, greeting, or dialling the callee.
    Dialing,
    /// Caller and callee talk (possibly in a conference after a party left).
    Bridged,
    /// Three parties in a conference.
    ThreeWay,
    /// Over; nothing can be done to it any more.
    Ended,
}

impl ConversationState {
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "queued" => Ok(Self::Queued),
            "dialing" => Ok(Self::Dialing),
            "bridged" => Ok(Self::Bridged),
            "three_way" => Ok(Self::ThreeWay),
            "ended" => Ok(Self::Ended),
            other => Err(StoreError::Corrupt(format!(
                "unknown conversation state {other:?}"
            ))),
        }
    }
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

    /// Claims the caller leg of conversation `id` if it is still queued (for cancelCall
    /// before dialling): it leaves the account's queue and belongs to `owner`.
    pub async fn claim_queued_conversation(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE calls SET state = 'placing', owner = $2, updated_at = $3 WHERE conversation_id = $1 AND state = 'queued' RETURNING {CALL_COLUMNS}"
        );
        let call: Option<CallRecord> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(id)
            .bind(owner)
            .bind(now_ms())
            .fetch_optional(c)
            .await)?;
        if let Some(call) = &call {
            on_tx!(&mut tx, |c| sqlx::query(
                "UPDATE accounts SET queued_calls = queued_calls - 1 WHERE sid = $1"
            )
            .bind(&call.account_sid)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(call)
    }

    /// What an earlier request with the same idempotency key says, if any.
    pub async fn idempotent_replay(
        &self,
        account_sid: &str,
        claim: &IdempotencyClaim,
    ) -> Result<Option<Replay>, StoreError> {
        let mut tx = self.begin_write().await?;
        let replay = stored_replay(&mut tx, account_sid, claim, now_ms()).await?;
        tx.commit().await?;
        Ok(replay)
    }

    /// Keeps `response` as the answer to `claim`'s key (a concurrent twin that stored
    /// first wins).
    pub async fn remember_reply(
        &self,
        account_sid: &str,
        claim: &IdempotencyClaim,
        response: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO idempotency_keys (account_sid, idem_key, request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
        )
        .bind(account_sid)
        .bind(&claim.key)
        .bind(&claim.request_hash)
        .bind(response)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Whether conversation `id` of `account_sid` has a recording.
    pub async fn has_recording(&self, account_sid: &str, id: &str) -> Result<bool, StoreError> {
        let url: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT recording_url FROM conversations WHERE id = $1 AND account_sid = $2"
        )
        .bind(id)
        .bind(account_sid)
        .fetch_optional(p)
        .await)?;
        Ok(url.flatten().is_some())
    }
}

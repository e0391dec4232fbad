//! Click-to-call conversations after acceptance: their state, claiming one for cancelCall,
//! and idempotency for the actions on a conversation.

use super::idempotency::{IdempotencyClaim, Replay, stored_replay};
use super::placing::{CALL_COLUMNS, CallRecord};
use super::{Store, StoreError, on_pool, on_tx, on_write};
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

    /// The state of conversation `id`, whoever it belongs to.
    pub async fn conversation_state_of(
        &self,
        id: &str,
    ) -> Result<Option<ConversationState>, StoreError> {
        let state: Option<String> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT state FROM conversations WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })?;
        state.as_deref().map(ConversationState::parse).transpose()
    }

    /// Tells the replicas listening on `channel` about conversation `id` (PostgreSQL's
    /// `NOTIFY`; SQLite has one process and nobody to tell).
    pub async fn notify_command(&self, channel: &str, id: &str) -> Result<(), StoreError> {
        if let super::Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(id)
                .execute(p)
                .await?;
        }
        Ok(())
    }

    /// A listener of `channel` (PostgreSQL only).
    pub async fn listen(
        &self,
        channel: &str,
    ) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        let super::Pool::Postgres(p) = &self.pool else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(p).await?;
        listener.listen(channel).await?;
        Ok(Some(listener))
    }

    /// Gives command `id` back to whoever drives its conversation next.
    pub async fn requeue_command(&self, id: i64) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "UPDATE conversation_commands SET state = 'pending' WHERE id = $1 AND state = 'taken'"
        )
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Claims the caller leg of conversation `id` for lease `epoch` if it is still queued
    /// (for cancelCall before dialling): it leaves the account's queue and counts as live
    /// until it ends.
    pub async fn claim_queued_conversation(
        &self,
        id: &str,
        epoch: i64,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE calls SET state = 'placing', epoch = $2, updated_at = $3 WHERE conversation_id = $1 AND state = 'queued' RETURNING {CALL_COLUMNS}"
        );
        let call: Option<CallRecord> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(id)
            .bind(epoch)
            .bind(now_ms())
            .fetch_optional(c)
            .await)?;
        if let Some(call) = &call {
            on_tx!(&mut tx, |c| {
                sqlx::query(
                "UPDATE accounts SET queued_calls = queued_calls - 1, live_calls = live_calls + 1 WHERE sid = $1"
            )
            .bind(&call.account_sid)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(call)
    }

    /// Queues `command` (JSON) for the process driving conversation `id`; returns its id.
    pub async fn queue_command(&self, id: &str, command: &str) -> Result<i64, StoreError> {
        Ok(on_write!(self, |p| {
            sqlx::query_scalar(
            "INSERT INTO conversation_commands (conversation_id, command, created_at) VALUES ($1, $2, $3) RETURNING id"
        )
        .bind(id)
        .bind(command)
        .bind(now_ms())
        .fetch_one(p)
        .await
        })?)
    }

    /// The verdict (JSON) of command `id`, once its conversation's driver gave one.
    pub async fn command_verdict(&self, id: i64) -> Result<Option<String>, StoreError> {
        let verdict: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT verdict FROM conversation_commands WHERE id = $1 AND state = 'done'"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(verdict.flatten())
    }

    /// Withdraws command `id` if nobody has taken it yet; `false` when it was taken.
    pub async fn withdraw_command(&self, id: i64) -> Result<bool, StoreError> {
        let rows = on_write!(self, |p| {
            sqlx::query(
            "UPDATE conversation_commands SET state = 'withdrawn' WHERE id = $1 AND state = 'pending'"
        )
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(rows == 1)
    }

    /// Takes the pending commands of conversation `id`, oldest first.
    pub async fn take_commands(&self, id: &str) -> Result<Vec<(i64, String)>, StoreError> {
        // Most conversations never get a command: a read finds that out without writing.
        let any: Option<(i64,)> = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT id FROM conversation_commands WHERE conversation_id = $1 AND state = 'pending' LIMIT 1"
        )
        .bind(id)
        .fetch_optional(p)
        .await
        })?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<(i64, String)> = on_write!(self, |p| {
            sqlx::query_as(
            "UPDATE conversation_commands SET state = 'taken' WHERE conversation_id = $1 AND state = 'pending' RETURNING id, command"
        )
        .bind(id)
        .fetch_all(p)
        .await
        })?;
        rows.sort();
        Ok(rows)
    }

    /// Records the verdict (JSON) of command `id`.
    pub async fn settle_command(&self, id: i64, verdict: &str) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "UPDATE conversation_commands SET state = 'done', verdict = $2 WHERE id = $1"
        )
        .bind(id)
        .bind(verdict)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Conversations with commands nobody has taken yet.
    pub async fn conversations_with_commands(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT DISTINCT conversation_id FROM conversation_commands WHERE state = 'pending'"
        )
        .fetch_all(p)
        .await)?)
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
        on_write!(self, |p| {
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

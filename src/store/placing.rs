//! Placing queued calls and taking over unfinished ones: which accounts wait, how many
//! legs they have live, claiming the oldest queued calls in order, and the leases by
//! which orchestrator processes own their calls.
//!
//! Leg states: `queued` (accepted) → `placing` (claimed by a process, not dialled yet) →
//! `initiated` → `ringing` → `answered` → `completed`. A process renews its lease row;
//! the unfinished calls of a process whose lease ran out are taken over by another (or
//! by itself after a restart, under a new instance id).

use super::{Store, StoreError, on_pool, on_tx};
use crate::domain::time::now_ms;

/// An account with queued calls, and its pace.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitingAccount {
    /// Account.
    pub sid: String,
    /// Calls started per second.
    pub cps: i64,
    /// Live legs allowed at once.
    pub max_concurrent_calls: i64,
    /// Seconds a callee is rung.
    pub answer_timeout: i64,
}

/// A call leg as the orchestrator needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRecord {
    /// `CA…`.
    pub id: String,
    /// `RQ…`.
    pub request_id: String,
    /// Owner.
    pub account_sid: String,
    /// Application.
    pub app_id: String,
    /// `notice`, `captcha` or `click2call`.
    pub kind: String,
    /// Conversation of a click-to-call leg.
    pub conversation_id: Option<String>,
    /// Dialling order in the conversation.
    pub leg_seq: i64,
    /// `queued`, `placing`, `initiated`, `ringing`, `answered`.
    pub state: String,
    /// Number dialled.
    pub to_number: String,
    /// Caller id asked for.
    pub from_number: Option<String>,
    /// Customer data.
    pub userdata: Option<String>,
    /// The script / conversation settings, JSON.
    pub params: String,
    /// Media node it lives on, once dialled.
    pub node: Option<String>,
    /// Times so far (Unix ms).
    pub start_at: Option<i64>,
    /// Ringing since.
    pub ring_at: Option<i64>,
    /// Answered at.
    pub answer_at: Option<i64>,
    /// Accepted at.
    pub created_at: i64,
}

/// The columns of [`CallRecord`].
pub(crate) const CALL_COLUMNS: &str = "id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, from_number, userdata, params, node, start_at, ring_at, answer_at, created_at";

/// States of a leg some process is responsible for.
pub(crate) const UNFINISHED: &str = "('placing', 'initiated', 'ringing', 'answered')";

impl Store {
    /// Accounts with queued calls.
    pub async fn waiting_accounts(&self) -> Result<Vec<WaitingAccount>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT sid, cps, max_concurrent_calls, answer_timeout FROM accounts WHERE queued_calls > 0 ORDER BY sid"
        )
        .fetch_all(p)
        .await
        })?)
    }

    /// Legs of `account_sid` that are being placed or are live, on every replica.
    pub async fn live_legs(&self, account_sid: &str) -> Result<i64, StoreError> {
        let sql =
            format!("SELECT COUNT(*) FROM calls WHERE account_sid = $1 AND state IN {UNFINISHED}");
        Ok(on_pool!(self, |p| sqlx::query_scalar(&sql)
            .bind(account_sid)
            .fetch_one(p)
            .await)?)
    }

    /// Claims up to `limit` of the account's oldest queued calls for `owner` (they become
    /// `placing`) and takes them off the account's queue count. Oldest first.
    pub async fn claim_queued(
        &self,
        account_sid: &str,
        limit: i64,
        owner: &str,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let skip_locked = tx.skip_locked();
        let sql = format!(
            "UPDATE calls SET state = 'placing', owner = $3, updated_at = $4 WHERE id IN \
             (SELECT id FROM calls WHERE account_sid = $1 AND state = 'queued' ORDER BY created_at, id LIMIT $2{skip_locked}) \
             RETURNING {CALL_COLUMNS}"
        );
        let mut calls: Vec<CallRecord> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(limit)
            .bind(owner)
            .bind(now_ms())
            .fetch_all(c)
            .await)?;
        if !calls.is_empty() {
            on_tx!(&mut tx, |c| sqlx::query(
                "UPDATE accounts SET queued_calls = queued_calls - $2 WHERE sid = $1"
            )
            .bind(account_sid)
            .bind(calls.len() as i64)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        calls.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(calls)
    }

    /// Writes (or renews) the lease of orchestrator `instance` until `expires_at`.
    pub async fn renew_lease(
        &self,
        instance: &str,
        node_id: u32,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO leases (instance, node_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET expires_at = excluded.expires_at"
        )
        .bind(instance)
        .bind(i64::from(node_id))
        .bind(expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Drops the lease of `instance` (a clean shutdown) and expired leases.
    pub async fn drop_lease(&self, instance: &str) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM leases WHERE instance = $1 OR expires_at < $2"
        )
        .bind(instance)
        .bind(now_ms() - 3_600_000)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Takes over the unfinished legs whose owner holds no live lease: they now belong
    /// to `owner`. Legs that were only `placing` go back to the queue (they were never
    /// dialled); the others are returned to be re-attached or ended.
    pub async fn take_over_orphans(&self, owner: &str) -> Result<Vec<CallRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let orphaned = format!(
            "state IN {UNFINISHED} AND (owner IS NULL OR owner NOT IN (SELECT instance FROM leases WHERE expires_at > $1))"
        );
        let requeued: Vec<String> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(&format!(
            "UPDATE calls SET state = 'queued', owner = NULL, updated_at = $1 WHERE state = 'placing' AND {orphaned} \
             RETURNING account_sid"
        ))
        .bind(now)
        .fetch_all(c)
        .await
        })?;
        let mut per_account: std::collections::BTreeMap<String, i64> = Default::default();
        for sid in requeued {
            *per_account.entry(sid).or_default() += 1;
        }
        for (sid, n) in &per_account {
            on_tx!(&mut tx, |c| sqlx::query(
                "UPDATE accounts SET queued_calls = queued_calls + $2 WHERE sid = $1"
            )
            .bind(sid)
            .bind(*n)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        let taken: Vec<CallRecord> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&format!(
            "UPDATE calls SET owner = $2, updated_at = $1 WHERE {orphaned} RETURNING {CALL_COLUMNS}"
        ))
        .bind(now)
        .bind(owner)
        .fetch_all(c)
        .await
        })?;
        tx.commit().await?;
        Ok(taken)
    }

    /// Every leg of conversation `id`, in dialling order.
    pub async fn conversation_legs(&self, id: &str) -> Result<Vec<CallRecord>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE conversation_id = $1 ORDER BY leg_seq, id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_all(p)
            .await)?)
    }

    /// Gives up this process's hold on the unfinished legs of call or conversation `id`
    /// (its task failed): the next look for orphans takes them over.
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE calls SET owner = NULL WHERE (id = $1 OR conversation_id = $1) AND state IN {UNFINISHED}"
        );
        on_pool!(self, |p| sqlx::query(&sql)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

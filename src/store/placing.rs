//! Placing queued calls and owning live ones across processes.
//!
//! Leg states: `queued` (accepted) → `placing` (claimed, not dialled yet) → `initiated` →
//! `ringing` → `answered` → `completed`. A claimed leg carries the lease epoch of the
//! process driving it ([`Store::acquire_lease`]); every journal write names that epoch and
//! is refused once the call has been taken over under another ([`Store::take_over`]).
//!
//! Pacing is shared by every replica: a claim locks the account's row and takes tokens
//! from its cps bucket and room under `maxConcurrentCalls` (counted in `live_calls`, which
//! every transaction that adds or ends a leg keeps up to date) in the same transaction.

use super::text::StoredText;
use super::{Pool, Store, StoreError, Tx, on_pool, on_tx, on_write};
use crate::domain::time::now_ms;

/// A call leg as the orchestrator needs it.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
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
    /// `queued`, `placing`, `initiated`, `ringing`, `answered`, `completed`.
    pub state: String,
    /// Number dialled.
    pub to_number: String,
    /// Caller id asked for.
    pub from_number: Option<String>,
    /// Customer data.
    #[sqlx(try_from = "StoredText")]
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
    /// Ended at.
    pub end_at: Option<i64>,
    /// The media server's hangup cause, once ended.
    pub hangup_cause: Option<String>,
    /// The contract's cause, once ended.
    pub cause: Option<String>,
    /// The final SIP response, once ended.
    pub sip_status: Option<String>,
    /// The protocol's own cause (`sip:486`), once ended.
    pub proto_cause: Option<String>,
    /// Accepted at.
    pub created_at: i64,
    /// Its channel's uuid when it is not the callSid (an inbound caller's channel).
    pub channel_uuid: Option<String>,
    /// The agent on it (an agent conversation's agent legs).
    pub agent_no: Option<String>,
}

/// Which legs are queued: as the `calls_queued` index says it (no epoch yet, not ended —
/// not the state, so a state change touches no index), with the state as well.
pub(crate) const QUEUED_LEG: &str = "state = 'queued' AND epoch IS NULL AND end_at IS NULL";

/// The columns of [`CallRecord`].
pub(crate) const CALL_COLUMNS: &str = "id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, from_number, userdata, params, node, start_at, ring_at, answer_at, end_at, hangup_cause, cause, sip_status, proto_cause, created_at, channel_uuid, agent_no";

/// Calls claimed for one account, and when to look again.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The calls, oldest first.
    pub calls: Vec<CallRecord>,
    /// Seconds the account's callees are rung.
    pub answer_timeout: i64,
    /// The bucket is empty: the next call may start in this many ms.
    pub next_token_ms: Option<i64>,
    /// Calls stay queued because `maxConcurrentCalls` is reached.
    pub full: bool,
}

/// Calls whose owner's lease ran out, now this process's.
#[derive(Debug, Default)]
pub struct TakenOver {
    /// Each call (`CA…`) or conversation (`CV…`) taken.
    pub units: Vec<String>,
    /// Legs that had only been claimed, queued again.
    pub requeued: i64,
}

/// A call or conversation as stored: its legs in dialling order, and a conversation's
/// last snapshot.
#[derive(Debug, Clone)]
pub struct StoredCall {
    /// Legs, in dialling order.
    pub legs: Vec<CallRecord>,
    /// The conversation's engine snapshot (JSON), if it has one.
    pub snapshot: Option<String>,
    /// The seconds its account rings callees.
    pub answer_timeout: i64,
}

/// The database's clock in Unix ms (PostgreSQL's, shared by every replica; SQLite runs on
/// this machine).
fn now_sql(pool: &Pool) -> &'static str {
    match pool {
        Pool::Sqlite(_) => "$1",
        Pool::Postgres(_) => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
    }
}

impl Tx<'_> {
    fn now_sql(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "$1",
            Tx::Postgres(_) => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        }
    }
}

/// The bucket of an account: tokens now, from what was left at `at` (refills at `cps` per
/// second, holds a fifth of a second's worth and at least one).
fn tokens(cps: i64, left: f64, at: i64, now: i64) -> f64 {
    let cps = cps.max(1) as f64;
    let burst = (cps / 5.0).max(1.0);
    let elapsed = (now - at).max(0) as f64 / 1000.0;
    (left + cps * elapsed).min(burst)
}

impl Store {
    /// Enabled accounts with queued calls.
    pub async fn waiting_accounts(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT sid FROM accounts WHERE queued_calls > 0 AND enabled ORDER BY sid"
        )
        .fetch_all(p)
        .await)?)
    }

    /// Legs of `account_sid` being placed or live, counted from the calls themselves.
    pub async fn live_legs(&self, account_sid: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM calls WHERE account_sid = $1 AND end_at IS NULL AND epoch IS NOT NULL"
        )
        .bind(account_sid)
        .fetch_one(p)
        .await
        })?)
    }

    /// Claims up to `limit` of the account's oldest queued calls for lease `epoch`, as far
    /// as its cps bucket and `maxConcurrentCalls` allow (nothing for a disabled account).
    pub async fn claim_queued(
        &self,
        account_sid: &str,
        limit: i64,
        epoch: i64,
    ) -> Result<Claimed, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT enabled, cps, max_concurrent_calls, live_calls, pace_tokens, pace_at, answer_timeout, queued_calls, {} \
             FROM accounts WHERE sid = $2{}",
            tx.now_sql(),
            tx.for_update()
        );
        type Row = (bool, i64, i64, i64, f64, i64, i64, i64, i64);
        let row: Option<Row> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(now_ms())
            .bind(account_sid)
            .fetch_optional(c)
            .await)?;
        let Some((enabled, cps, max_live, live, left, at, answer_timeout, queued, now)) = row
        else {
            return Ok(Claimed::default());
        };
        let mut claimed = Claimed {
            answer_timeout,
            ..Claimed::default()
        };
        if !enabled || queued == 0 {
            return Ok(claimed);
        }
        let have = tokens(cps, left, at, now);
        let n = (have.floor() as i64)
            .min(max_live - live)
            .min(limit)
            .min(queued);
        if n > 0 {
            let skip_locked = tx.skip_locked();
            let sql = format!(
                "UPDATE calls SET state = 'placing', epoch = $3, updated_at = $4 WHERE id IN \
                 (SELECT id FROM calls WHERE account_sid = $1 AND {QUEUED_LEG} ORDER BY created_at, id LIMIT $2{skip_locked}) \
                 RETURNING {CALL_COLUMNS}"
            );
            claimed.calls = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
                .bind(account_sid)
                .bind(n)
                .bind(epoch)
                .bind(now)
                .fetch_all(c)
                .await)?;
        }
        let k = claimed.calls.len() as i64;
        claimed.full = live + k >= max_live && queued > k;
        let left = have - k as f64;
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE accounts SET pace_tokens = $2, pace_at = $3, live_calls = live_calls + $4, queued_calls = queued_calls - $4 WHERE sid = $1"
        )
        .bind(account_sid)
        .bind(left)
        .bind(now)
        .bind(k)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if left < 1.0 {
            let cps = cps.max(1) as f64;
            claimed.next_token_ms = Some(((1.0 - left) * 1000.0 / cps).ceil() as i64);
        }
        claimed
            .calls
            .sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    /// Starts a lease of `ttl_ms` for this process (`instance` on node `node_id`); returns
    /// its epoch, a number no lease had before.
    pub async fn acquire_lease(
        &self,
        instance: &str,
        node_id: u32,
        ttl_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let epoch: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'lease_epoch' RETURNING value"
        )
        .fetch_one(c)
        .await)?;
        let sql = format!(
            "INSERT INTO leases (epoch, instance, node_id, expires_at) VALUES ($2, $3, $4, {} + $5)",
            tx.now_sql()
        );
        on_tx!(&mut tx, |c| sqlx::query(&sql)
            .bind(now_ms())
            .bind(epoch)
            .bind(instance)
            .bind(i64::from(node_id))
            .bind(ttl_ms)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Extends lease `epoch` by `ttl_ms` from now; `false` when it had already run out (its
    /// calls may belong to another process now) or is gone.
    pub async fn renew_lease(&self, epoch: i64, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_sql(&self.pool);
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $3 WHERE epoch = $2 AND expires_at > {now}"
        );
        let rows = on_pool!(self, |p| sqlx::query(&sql)
            .bind(now_ms())
            .bind(epoch)
            .bind(ttl_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(rows == 1)
    }

    /// Ends lease `epoch` at once (a clean stop: other replicas take its calls over on
    /// their next look), and forgets leases that ended long ago.
    pub async fn give_up_lease(&self, epoch: i64) -> Result<(), StoreError> {
        on_write!(self, |p| sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE epoch = $1"
        )
        .bind(epoch)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Takes over, for lease `epoch`, the unfinished calls of every lease that ran out:
    /// legs only claimed go back to the queue, the rest (with every leg of their
    /// conversations) now carry `epoch`.
    pub async fn take_over(&self, epoch: i64) -> Result<TakenOver, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT DISTINCT epoch FROM calls WHERE end_at IS NULL AND epoch IS NOT NULL \
             AND epoch NOT IN (SELECT epoch FROM leases WHERE expires_at > {})",
            tx.now_sql()
        );
        let dead: Vec<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(now_ms())
            .fetch_all(c)
            .await)?;
        let mut taken = TakenOver::default();
        let now = now_ms();
        for old in dead.into_iter().filter(|d| *d != epoch) {
            let requeued: Vec<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "UPDATE calls SET state = 'queued', epoch = NULL, updated_at = $2 \
                 WHERE epoch = $1 AND state = 'placing' AND end_at IS NULL RETURNING account_sid"
            )
            .bind(old)
            .bind(now)
            .fetch_all(c)
            .await)?;
            let mut per_account: std::collections::BTreeMap<String, i64> = Default::default();
            for sid in requeued {
                *per_account.entry(sid).or_default() += 1;
                taken.requeued += 1;
            }
            let greatest = tx.greatest();
            let sql = format!(
                "UPDATE accounts SET queued_calls = queued_calls + $2, live_calls = {greatest}(live_calls - $2, 0) WHERE sid = $1"
            );
            for (sid, n) in &per_account {
                on_tx!(&mut tx, |c| sqlx::query(&sql)
                    .bind(sid)
                    .bind(*n)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))?;
            }
            let units: Vec<String> = on_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                "UPDATE calls SET epoch = $2, updated_at = $3 WHERE epoch = $1 AND (end_at IS NULL OR conversation_id IN \
                 (SELECT conversation_id FROM calls WHERE epoch = $1 AND end_at IS NULL AND conversation_id IS NOT NULL)) \
                 RETURNING COALESCE(conversation_id, id)"
            )
            .bind(old)
            .bind(epoch)
            .bind(now)
            .fetch_all(c)
            .await
            })?;
            taken.units.extend(units);
        }
        tx.commit().await?;
        taken.units.sort();
        taken.units.dedup();
        Ok(taken)
    }

    /// Call or conversation `unit` as stored, if it is unfinished and belongs to `epoch`.
    pub async fn stored_call(
        &self,
        unit: &str,
        epoch: i64,
    ) -> Result<Option<StoredCall>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE (id = $1 OR conversation_id = $1) AND epoch = $2 ORDER BY leg_seq, id"
        );
        let legs: Vec<CallRecord> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(unit)
            .bind(epoch)
            .fetch_all(p)
            .await)?;
        let Some(first) = legs.first() else {
            return Ok(None);
        };
        if legs.iter().all(|l| l.end_at.is_some()) {
            return Ok(None);
        }
        let snapshot: Option<String> = match &first.conversation_id {
            Some(cv) => on_pool!(self, |p| sqlx::query_scalar(
                "SELECT snapshot FROM conversations WHERE id = $1"
            )
            .bind(cv)
            .fetch_one(p)
            .await)?,
            None => None,
        };
        let answer_timeout: i64 = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT answer_timeout FROM accounts WHERE sid = $1"
        )
        .bind(&first.account_sid)
        .fetch_optional(p)
        .await)?
        .unwrap_or(45);
        Ok(Some(StoredCall {
            legs,
            snapshot,
            answer_timeout,
        }))
    }

    /// The node id (`VOICEPAAS_NODE_ID`) of the process driving call leg `id` now, if a
    /// live lease holds it.
    pub async fn driving_node(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let sql = format!(
            "SELECT l.node_id FROM calls c JOIN leases l ON l.epoch = c.epoch WHERE c.id = $2 AND l.expires_at > {}",
            now_sql(&self.pool)
        );
        Ok(on_pool!(self, |p| sqlx::query_scalar(&sql)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(p)
            .await)?)
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
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn bucket_refills_at_cps_and_holds_a_fifth_of_a_second() {
        assert_eq!(tokens(100, 0.0, 0, 50).floor(), 5.0);
        // Never more than cps / 5 saved up…
        assert_eq!(tokens(100, 0.0, 0, 10_000), 20.0);
        // …and at least one call for slow accounts.
        assert_eq!(tokens(1, 0.0, 0, 5_000), 1.0);
        // A clock that went back adds nothing.
        assert_eq!(tokens(10, 0.5, 1_000, 500), 0.5);
    }
}

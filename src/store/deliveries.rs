//! Webhook deliveries: claiming due outbox rows (the head of each ordering key only, so a
//! key's callbacks go out in order), and recording each attempt and its outcome.

use std::collections::HashMap;

use super::{Store, StoreError, Tx, on_tx};
use crate::domain::time::now_ms;

/// An outbox row claimed for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    /// Outbox order.
    pub seq: i64,
    /// The `webhook-id`.
    pub webhook_id: String,
    /// Owner.
    pub account_sid: String,
    /// Application (its signing secret).
    pub app_id: String,
    /// Where to POST.
    pub target_url: String,
    /// The JSON body.
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// For a batch of the CDR feed: its id (the webhook-id), shared by its rows.
    pub batch_id: Option<String>,
    /// What it is (`result`, `status`, `cdr`, `feed`, `event`, `event_form`).
    pub kind: String,
}

impl Delivery {
    /// The body's `content-type`: astercc messages are a form, everything else JSON.
    pub fn content_type(&self) -> &'static str {
        match self.kind.as_str() {
            crate::agents::push::OUTBOX_FORM => "application/x-www-form-urlencoded; charset=utf-8",
            _ => "application/json",
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// HTTP status, if an answer came.
    pub status_code: Option<u16>,
    /// Time to the answer (or the failure), ms.
    pub latency_ms: i64,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The first 1 KB of the answer.
    pub response: Option<String>,
}

/// How one claim shares its deliveries among hosts.
#[derive(Debug, Clone, Copy)]
pub struct HostRoom<'a> {
    /// Deliveries in flight per host now (a host not in the map has none).
    pub busy: &'a HashMap<String, usize>,
    /// Most deliveries in flight to one host.
    pub per_host: usize,
    /// The host the previous claim ended at: this one starts after it.
    pub after: Option<&'a str>,
}

/// Most hosts one claim visits (the next claim goes on from where this one stopped).
const MAX_HOSTS_PER_CLAIM: usize = 512;

/// What becomes of the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (a 2xx).
    Delivered,
    /// Try again at this instant (Unix ms).
    RetryAt(i64),
    /// Failed for good (schedule used up, 410 Gone, a forbidden target).
    Failed,
}

impl Store {
    /// Claims up to `limit` due deliveries until `claim_until` (Unix ms): for each
    /// ordering key only its oldest pending row, only if nobody holds it, and for each
    /// host no more than its room (`room.per_host` less what it has in flight). Hosts are
    /// visited one at a time in name order, starting after `room.after` and wrapping
    /// around, so the work of a claim grows with the hosts visited and the rows claimed —
    /// never with one host's backlog — and a host with its budget taken costs one probe.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        claim_until: i64,
        room: HostRoom<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Tx::Postgres(t) = &mut tx {
            // Read the due index in its order and stop at the limit. Right after a burst of
            // callbacks the table's statistics still say "a few rows", and the planner would
            // fetch every due row, test each one's key and sort them all (150 ms at 50,000).
            sqlx::query("SELECT set_config('enable_sort', 'off', true)")
                .execute(&mut **t)
                .await?;
        }
        let lock = tx.skip_locked();
        // Picked in a CTE, which runs once (a locking sub-select inside `IN (…)` may be run
        // again by the plan and pick more than its LIMIT); the UPDATE checks the claim
        // anew, so a row another replica claimed meanwhile is not claimed twice.
        let by_host = format!(
            "WITH picked AS (\
                   SELECT o.seq FROM outbox o WHERE o.state = 'pending' AND o.kind <> 'feed' AND o.target_host = $4 \
                   AND o.next_attempt_at <= $1 AND (o.claimed_until IS NULL OR o.claimed_until < $1) \
                   AND (NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ordering_key = o.ordering_key AND p.state = 'pending' AND p.seq < o.seq) \
                        OR (o.kind IN ('event', 'event_form') AND o.created_at <= $1 - 60000)) \
                   ORDER BY o.next_attempt_at, o.seq LIMIT $3{lock}) \
                 UPDATE outbox SET claimed_until = $2 FROM picked WHERE outbox.seq = picked.seq \
                 AND outbox.state = 'pending' AND (outbox.claimed_until IS NULL OR outbox.claimed_until < $1) \
                 RETURNING outbox.seq, outbox.webhook_id, outbox.account_sid, outbox.app_id, outbox.target_url, outbox.body, outbox.attempts, outbox.batch_id, outbox.kind"
        );
        let mut claimed: Vec<Delivery> = Vec::new();
        let first_after = "SELECT MIN(target_host) FROM outbox WHERE state = 'pending' AND kind <> 'feed' AND target_host > $1";
        let first =
            "SELECT MIN(target_host) FROM outbox WHERE state = 'pending' AND kind <> 'feed'";
        let mut cursor = room.after.map(str::to_string);
        let mut wrapped = room.after.is_none();
        for _ in 0..MAX_HOSTS_PER_CLAIM {
            let left = limit - claimed.len() as i64;
            if left <= 0 {
                break;
            }
            let next: Option<String> = on_tx!(&mut tx, |c| match &cursor {
                Some(after) =>
                    sqlx::query_scalar(first_after)
                        .bind(after)
                        .fetch_one(c)
                        .await,
                None => sqlx::query_scalar(first).fetch_one(c).await,
            })?;
            let host = match next {
                // The second time round, up to where the first began.
                Some(h) if wrapped && room.after.is_some_and(|a| h.as_str() > a) => break,
                Some(h) => h,
                None if wrapped => break,
                None => {
                    wrapped = true;
                    cursor = None;
                    continue;
                }
            };
            let free = room
                .per_host
                .saturating_sub(room.busy.get(&host).copied().unwrap_or(0));
            if free > 0 {
                let take = left.min(free as i64);
                let rows: Vec<Delivery> = on_tx!(&mut tx, |c| {
                    sqlx::query_as(&by_host)
                        .bind(now)
                        .bind(claim_until)
                        .bind(take)
                        .bind(&host)
                        .fetch_all(c)
                        .await
                })?;
                claimed.extend(rows);
            }
            cursor = Some(host);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records the host of pending callbacks queued before hosts were recorded (migration
    /// 0006), so that claims, which go host by host, find them; run once at start (with
    /// none left it is one index probe). Returns how many it filled.
    pub async fn fill_missing_hosts(&self) -> Result<u64, StoreError> {
        let mut filled = 0;
        loop {
            let rows: Vec<(i64, String)> = super::on_pool!(self, |p| {
                sqlx::query_as(
                    "SELECT seq, target_url FROM outbox WHERE state = 'pending' AND kind <> 'feed' \
                     AND target_host IS NULL LIMIT 1000",
                )
                .fetch_all(p)
                .await
            })?;
            if rows.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.begin_write().await?;
            for (seq, url) in &rows {
                on_tx!(&mut tx, |c| {
                    sqlx::query("UPDATE outbox SET target_host = $1 WHERE seq = $2")
                        .bind(super::journal::host_of(url))
                        .bind(*seq)
                        .execute(c)
                        .await
                        .map(|r| r.rows_affected())
                })?;
            }
            tx.commit().await?;
            filled += rows.len() as u64;
        }
    }

    /// Records an attempt of `delivery` and what becomes of it (group-committed with
    /// other writes through the journal).
    pub async fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        outcome: Outcome,
    ) -> Result<(), StoreError> {
        self.journal_attempt((delivery.clone(), attempt.clone(), outcome))
            .await
    }

    /// Hands claimed deliveries back (a stopping process), so the next claim takes them.
    pub async fn release_deliveries(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for seq in seqs {
            on_tx!(&mut tx, |c| {
                sqlx::query("UPDATE outbox SET claimed_until = NULL WHERE (seq = $1 OR batch_id = (SELECT batch_id FROM outbox WHERE seq = $1)) AND state = 'pending'")
                .bind(seq)
                .execute(c)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims due batches of the CDR feed until `claim_until`: a batch that failed before
    /// goes again as it was (same rows, same webhook-id); new ones are formed per
    /// application when `cdrBatchSize` rows wait or the oldest has waited
    /// `cdrBatchWindowMs`. Each comes back as one delivery with the body `{"count","cdrs"}`.
    pub async fn claim_feed_batches(
        &self,
        limit: i64,
        claim_until: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let waiting: Vec<(String, i64, i64, i64, i64)> = on_tx!(&mut tx, |c| {
            sqlx::query_as(
            "SELECT o.app_id, a.cdr_batch_size, a.cdr_batch_window_ms, COUNT(*), MIN(o.created_at) \
             FROM outbox o JOIN applications a ON a.app_id = o.app_id \
             WHERE o.kind = 'feed' AND o.state = 'pending' AND o.batch_id IS NULL \
             GROUP BY o.app_id, a.cdr_batch_size, a.cdr_batch_window_ms"
        )
        .fetch_all(c)
        .await
        })?;
        // Replicas forming batches at once: rows another replica holds are skipped, and a
        // row stamped meanwhile is not stamped again (`batch_id IS NULL` is checked anew
        // after any wait for its lock), so every row joins exactly one batch.
        let lock = tx.skip_locked();
        // The rows are picked in a CTE, which runs once: a locking sub-select inside
        // `IN (…)` may be run again by the plan and pick more than its LIMIT.
        let stamp = format!(
            "WITH picked AS (SELECT seq FROM outbox \
             WHERE app_id = $2 AND kind = 'feed' AND state = 'pending' AND batch_id IS NULL ORDER BY seq LIMIT $3{lock}) \
             UPDATE outbox SET batch_id = $1 FROM picked WHERE outbox.seq = picked.seq AND outbox.batch_id IS NULL"
        );
        for (app_id, size, window, count, oldest) in waiting {
            if count < size && oldest > now - window {
                continue;
            }
            let batch = super::journal::new_webhook_id();
            on_tx!(&mut tx, |c| {
                sqlx::query(&stamp)
                    .bind(&batch)
                    .bind(&app_id)
                    .bind(size)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        let due: Vec<String> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "SELECT batch_id FROM outbox WHERE kind = 'feed' AND state = 'pending' AND batch_id IS NOT NULL \
             AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
             GROUP BY batch_id ORDER BY MIN(seq) LIMIT $2"
        )
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await
        })?;
        let mut batches = Vec::new();
        for batch in due {
            let rows: Vec<Delivery> = on_tx!(&mut tx, |c| {
                sqlx::query_as(
                "UPDATE outbox SET claimed_until = $2 WHERE batch_id = $1 AND state = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until < $3) \
                 RETURNING seq, webhook_id, account_sid, app_id, target_url, body, attempts, batch_id, kind"
            )
            .bind(&batch)
            .bind(claim_until)
            .bind(now)
            .fetch_all(c)
            .await
            })?;
            batches.extend(feed_delivery(batch, rows));
        }
        tx.commit().await?;
        Ok(batches)
    }

    /// When the next pending delivery is due (Unix ms; in the past for one due now or in
    /// flight); `None` when nothing is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(super::on_pool!(self, |p| sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
        )
        .fetch_one(p)
        .await)?)
    }

    /// Where the last result/CDR callback of `cdr_id` was sent, if one was queued.
    pub async fn last_cdr_target(&self, cdr_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.last_cdr_targets(&[cdr_id]).await?.remove(cdr_id))
    }

    /// [`last_cdr_target`](Self::last_cdr_target) of several CDRs in one query: CDR id →
    /// the URL its last result/CDR callback went to.
    pub async fn last_cdr_targets(
        &self,
        cdr_ids: &[&str],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut targets = HashMap::new();
        if cdr_ids.is_empty() {
            return Ok(targets);
        }
        let list: Vec<String> = (1..=cdr_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT ordering_key, target_url FROM outbox WHERE ordering_key IN ({}) \
             AND kind IN ('result', 'cdr') ORDER BY seq",
            list.join(", ")
        );
        let rows: Vec<(String, String)> = super::on_pool!(self, |p| {
            let mut q = sqlx::query_as(&sql);
            for id in cdr_ids {
                q = q.bind(*id);
            }
            q.fetch_all(p).await
        })?;
        // In `seq` order: the last one of each key wins.
        targets.extend(rows);
        Ok(targets)
    }

    /// Queues callbacks (a re-push) in one statement.
    pub async fn queue_callbacks(
        &self,
        rows: &[crate::store::journal::OutboxRow],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let rows: Vec<&crate::store::journal::OutboxRow> = rows.iter().collect();
        super::journal::insert_outbox(&mut tx, &rows).await?;
        tx.commit().await?;
        self.outbox_written.notify_one();
        Ok(())
    }

    /// One page of `account_sid`'s deliveries (optionally only those in `state`), newest
    /// first, before outbox position `before`.
    pub async fn delivery_page(
        &self,
        account_sid: &str,
        state: Option<&str>,
        key: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryListed>, StoreError> {
        Ok(super::on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT seq, webhook_id, batch_id, app_id, kind, target_url, ordering_key, state, attempts, next_attempt_at, created_at, finished_at, last_error, body \
             FROM outbox WHERE account_sid = $1 AND ($2 IS NULL OR state = $2) AND ($5 IS NULL OR ordering_key = $5) \
             AND seq < $3 ORDER BY seq DESC LIMIT $4"
        )
        .bind(account_sid)
        .bind(state)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .bind(key)
        .fetch_all(p)
        .await
        })?)
    }

    /// Every attempt of delivery `webhook_id`, in order.
    pub async fn attempt_log(&self, webhook_id: &str) -> Result<Vec<AttemptListed>, StoreError> {
        Ok(self
            .attempt_logs(&[webhook_id])
            .await?
            .remove(webhook_id)
            .unwrap_or_default())
    }

    /// The attempts of several deliveries (a page of them) in one query, by webhook id.
    pub async fn attempt_logs(
        &self,
        webhook_ids: &[&str],
    ) -> Result<HashMap<String, Vec<AttemptListed>>, StoreError> {
        let ids =
            serde_json::to_string(webhook_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!(
            "SELECT webhook_id, attempt, at, status_code, latency_ms, error, response FROM delivery_attempts \
             WHERE {} ORDER BY webhook_id, attempt",
            self.in_json_texts("webhook_id", 1)
        );
        let rows: Vec<AttemptListed> =
            super::on_pool!(self, |p| sqlx::query_as(&sql).bind(&ids).fetch_all(p).await)?;
        let mut logs: HashMap<String, Vec<AttemptListed>> = HashMap::new();
        for row in rows {
            logs.entry(row.webhook_id.clone()).or_default().push(row);
        }
        Ok(logs)
    }
}

/// A delivery as listed to ops.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryListed {
    /// Outbox position (the paging key).
    pub seq: i64,
    /// `webhook-id`.
    pub webhook_id: String,
    /// The feed batch it went in (whose id its attempts are logged under).
    pub batch_id: Option<String>,
    /// Application.
    pub app_id: String,
    /// `result`, `status`, `cdr` or `feed`.
    pub kind: String,
    /// Target.
    pub target_url: String,
    /// The call or conversation it belongs to.
    pub ordering_key: String,
    /// `pending`, `delivered`, `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt (pending ones), Unix ms.
    pub next_attempt_at: i64,
    /// Queued at, Unix ms.
    pub created_at: i64,
    /// Delivered or failed at, Unix ms.
    pub finished_at: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The JSON body sent.
    pub body: String,
}

/// One attempt as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptListed {
    /// The delivery (or feed batch) it belongs to.
    pub webhook_id: String,
    /// 1, 2, …
    pub attempt: i64,
    /// When (Unix ms).
    pub at: i64,
    /// HTTP status, if any.
    pub status_code: Option<i64>,
    /// Latency, ms.
    pub latency_ms: i64,
    /// Error text.
    pub error: Option<String>,
    /// The first 1 KB of the answer.
    pub response: Option<String>,
}

/// One delivery carrying the rows of a feed batch: `{"count": N, "cdrs": [...]}` in
/// outbox order, under the batch's id.
fn feed_delivery(batch: String, mut rows: Vec<Delivery>) -> Option<Delivery> {
    rows.sort_by_key(|r| r.seq);
    let first = rows.first()?.clone();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    Some(Delivery {
        body: format!(
            "{{\"count\":{},\"cdrs\":[{}]}}",
            rows.len(),
            bodies.join(",")
        ),
        webhook_id: batch.clone(),
        batch_id: Some(batch),
        ..first
    })
}

/// One attempt as stored (`delivery_attempts`).
#[derive(serde::Serialize)]
struct AttemptRow<'a> {
    webhook_id: &'a str,
    attempt: i64,
    at: i64,
    status_code: Option<i64>,
    latency_ms: i64,
    error: Option<&'a str>,
    response: Option<&'a str>,
}

/// A delivery's state after an attempt.
#[derive(serde::Serialize)]
struct StateRow<'a> {
    seq: i64,
    state: &'static str,
    attempts: i64,
    next_attempt_at: Option<i64>,
    finished_at: Option<i64>,
    last_error: Option<&'a str>,
}

/// Writes attempts and their deliveries' new states inside a journal transaction: the
/// attempts in one statement, the single deliveries in one (an UPDATE joined with the
/// rows as JSON), a feed batch's rows by its id.
pub(crate) async fn write_attempts(
    tx: &mut Tx<'_>,
    done: &[&(Delivery, Attempt, Outcome)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let rows: Vec<AttemptRow> = done
        .iter()
        .map(|(d, a, _)| AttemptRow {
            webhook_id: &d.webhook_id,
            attempt: d.attempts + 1,
            at: now,
            status_code: a.status_code.map(i64::from),
            latency_ms: a.latency_ms,
            error: a.error.as_deref(),
            response: a.response.as_deref(),
        })
        .collect();
    super::bulk::bulk_insert(tx, super::bulk::Table::DeliveryAttempts, &rows).await?;
    let mut singles = Vec::new();
    for (d, a, outcome) in done {
        let (state, next, finished) = match outcome {
            Outcome::Delivered => ("delivered", None, Some(now)),
            Outcome::RetryAt(at) => ("pending", Some(*at), None),
            Outcome::Failed => ("failed", None, Some(now)),
        };
        let row = StateRow {
            seq: d.seq,
            state,
            attempts: d.attempts + 1,
            next_attempt_at: next,
            finished_at: finished,
            last_error: a.error.as_deref(),
        };
        match &d.batch_id {
            // A feed batch's rows all share its fate.
            Some(batch) => on_tx!(&mut *tx, |c| {
                sqlx::query(
                "UPDATE outbox SET state = $2, attempts = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
                 finished_at = $5, last_error = $6, claimed_until = NULL WHERE batch_id = $1"
            )
            .bind(batch)
            .bind(row.state)
            .bind(row.attempts)
            .bind(row.next_attempt_at)
            .bind(row.finished_at)
            .bind(row.last_error)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
            })?,
            None => {
                singles.push(row);
                0
            }
        };
    }
    if singles.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(&singles).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query(
                "UPDATE outbox SET state = x.state, attempts = x.attempts, next_attempt_at = COALESCE(x.next_attempt_at, outbox.next_attempt_at), \
                 finished_at = x.finished_at, last_error = x.last_error, claimed_until = NULL \
                 FROM (SELECT json_extract(value, '$.seq') AS seq, json_extract(value, '$.state') AS state, \
                              json_extract(value, '$.attempts') AS attempts, json_extract(value, '$.next_attempt_at') AS next_attempt_at, \
                              json_extract(value, '$.finished_at') AS finished_at, json_extract(value, '$.last_error') AS last_error \
                       FROM json_each($1)) AS x \
                 WHERE outbox.seq = x.seq",
            )
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            sqlx::query(
                "UPDATE outbox o SET state = x.state, attempts = x.attempts, next_attempt_at = COALESCE(x.next_attempt_at, o.next_attempt_at), \
                 finished_at = x.finished_at, last_error = x.last_error, claimed_until = NULL \
                 FROM jsonb_to_recordset($1::jsonb) AS x(seq bigint, state text, attempts bigint, next_attempt_at bigint, finished_at bigint, last_error text) \
                 WHERE o.seq = x.seq",
            )
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

//! The group-commit writer of accepted requests. Handlers hand over an [`Acceptance`]
//! (its call legs and conversation) and wait; the writer gathers what
//! arrived meanwhile, decides each one (idempotency key, captcha limits, queue room),
//! inserts the accepted ones in bulk and commits once, then answers every handler. So a
//! request is answered only after the commit that holds it, and the per-commit cost
//! (an fsync) is shared by the whole batch.
//!
//! SQLite has one writer task, writing at the [`WriteGate`] like every writer of the
//! process (SQLite has one writer anyway).
//! PostgreSQL has a few writer tasks on the pool, and replicas may write concurrently, so
//! the account's queue count is kept exact optimistically: a batch reads the count, inserts,
//! and adds its calls with an `UPDATE … WHERE queued_calls + n <= limit` just before the
//! commit (the row lock is held only from there to the commit, so writers overlap). If that
//! guard fails, the batch is redone with the account rows locked (`FOR UPDATE`, in sid
//! order) from the start. Batches with captchas always lock first, since their per-callee
//! counts must not race.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::bulk::{Table, bulk_insert};
use super::idempotency::{IdempotencyClaim, Replay, stored_replay};
use super::text;
use super::values::{self, Val};
use super::{Pool, StoreError, Tx, WriteGate, on_tx};
use crate::config::CaptchaLimits;
use crate::domain::time::now_ms;

/// Most acceptances committed in one transaction.
const MAX_BATCH: usize = 512;
/// Acceptances waiting for the writer before submitters wait for room.
const QUEUE_DEPTH: usize = 16_384;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What every call leg of an accepted request carries (request id, caller id, userdata, script).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// `RQ…`.
    pub id: String,
    /// Owner.
    pub account_sid: String,
    /// Application.
    pub app_id: String,
    /// `notice`, `captcha` or `click2call`.
    pub kind: &'static str,
    /// Caller id asked for.
    pub from_number: Option<String>,
    /// Customer data echoed in callbacks.
    pub userdata: Option<String>,
    /// The script or conversation settings, JSON.
    pub params: String,
    /// Unix ms.
    pub created_at: i64,
}

/// One queued call leg of an acceptance.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    /// `CA…`.
    pub id: String,
    /// Its callee.
    pub to_number: String,
    /// Its conversation, for click-to-call legs.
    pub conversation_id: Option<String>,
    /// Dialling order within the conversation (0 = caller).
    pub leg_seq: i64,
}

/// Everything one accepted request writes.
#[derive(Debug, Clone)]
pub struct Acceptance {
    /// The request.
    pub request: RequestRow,
    /// Its queued calls (a conversation queues its caller leg).
    pub calls: Vec<CallRow>,
    /// `CV…` of a click-to-call conversation.
    pub conversation_id: Option<String>,
    /// The request's idempotency key, if it sent one.
    pub idempotency: Option<IdempotencyClaim>,
    /// Per-callee limits to enforce (captchas).
    pub captcha_limits: Option<CaptchaLimits>,
    /// The response body to replay for a repeat of the idempotency key.
    pub response: String,
}

/// Which captcha limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaWindow {
    /// Per rolling minute.
    Minute(u32),
    /// Per rolling hour.
    Hour(u32),
    /// Per rolling day.
    Day(u32),
}

/// What became of one acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Committed.
    Accepted,
    /// The idempotency key was used before with the same request: its first response.
    Replayed(String),
    /// The idempotency key was used before with a different request.
    KeyReused,
    /// The account's queue has no room for these calls.
    QueueFull {
        /// The limit in force.
        limit: i64,
    },
    /// A captcha frequency limit for the callee.
    CaptchaLimited(CaptchaWindow),
}

type Job = (
    Acceptance,
    oneshot::Sender<Result<AcceptOutcome, StoreError>>,
);

/// The handle handlers submit acceptances to.
#[derive(Clone, Debug)]
pub struct AcceptQueue {
    tx: mpsc::Sender<Job>,
}

impl AcceptQueue {
    /// Starts the writer task(s) ([`super::start_writers`]).
    pub(crate) fn start(pool: &Pool, gate: WriteGate) -> Self {
        let tx = super::start_writers(pool, QUEUE_DEPTH, |rx| {
            writer_task(
                Writer {
                    pool: pool.clone(),
                    gate: gate.clone(),
                },
                rx,
            )
        });
        Self { tx }
    }

    /// Writes `acceptance` durably (or decides against it) and says which.
    pub async fn submit(&self, acceptance: Acceptance) -> Result<AcceptOutcome, StoreError> {
        super::submit(&self.tx, |done| (acceptance, done)).await
    }
}

impl super::Store {
    /// Writes an accepted request and its calls (see the module doc).
    pub async fn accept(&self, acceptance: Acceptance) -> Result<AcceptOutcome, StoreError> {
        self.accept.submit(acceptance).await
    }
}

async fn writer_task(mut writer: Writer, rx: super::WriterQueue<Job>) {
    loop {
        let batch = super::next_batch(&mut *rx.lock().await, MAX_BATCH).await;
        let Some(batch) = batch else { break };
        writer.process(batch).await;
    }
}

/// One writer task's way to the database.
struct Writer {
    pool: Pool,
    gate: WriteGate,
}

impl Writer {
    async fn write(&mut self, jobs: &[Acceptance]) -> Result<Vec<AcceptOutcome>, sqlx::Error> {
        let mut locking = jobs.iter().any(|j| j.captcha_limits.is_some());
        loop {
            let mut tx = self.gate.begin(&self.pool).await?;
            match write_batch(&mut tx, jobs, locking).await? {
                Some(outcomes) => {
                    tx.commit().await?;
                    return Ok(outcomes);
                }
                // Another writer took the queue room this batch counted on: redo, locked.
                None if !locking => locking = true,
                None => {
                    return Err(sqlx::Error::Protocol(
                        "queue count changed under a row lock".into(),
                    ));
                }
            }
        }
    }

    /// Commits a batch and answers its submitters. If the batch fails as a whole, each
    /// acceptance is tried once more alone, so one bad row cannot sink the others and a
    /// lost race (a unique key another writer committed first) resolves itself.
    async fn process(&mut self, batch: Vec<Job>) {
        let (jobs, replies): (Vec<Acceptance>, Vec<_>) = batch.into_iter().unzip();
        match self.write(&jobs).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = jobs.len(), "accept batch failed; retrying one by one");
                for (job, reply) in jobs.iter().zip(replies) {
                    // Alone and in a fresh transaction: a race lost to another writer (the
                    // same idempotency key committed meanwhile) now reads the winner's row.
                    let result = match self.write(std::slice::from_ref(job)).await {
                        Ok(outcomes) => outcomes.into_iter().next().ok_or_else(|| {
                            StoreError::Corrupt("a batch of one gave no outcome".into())
                        }),
                        Err(e) => {
                            tracing::error!(error = %e, request = %job.request.id, "could not write an accepted request");
                            Err(StoreError::Db(e))
                        }
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }
}

/// Queue room of one account during a batch.
struct QueueRoom {
    queued: i64,
    limit: i64,
    added: i64,
}

impl QueueRoom {
    /// Room not read from the database: an unlocked batch assumes there is room and lets
    /// the final guarded update judge.
    fn unchecked() -> Self {
        QueueRoom {
            queued: 0,
            limit: i64::MAX,
            added: 0,
        }
    }
}

/// Decides every acceptance of the batch and inserts the accepted ones. `None` when the
/// final guarded count update failed (only possible without `locking`): roll back and
/// redo with locks.
async fn write_batch(
    tx: &mut Tx<'_>,
    jobs: &[Acceptance],
    locking: bool,
) -> Result<Option<Vec<AcceptOutcome>>, sqlx::Error> {
    let now = now_ms();
    let mut rooms: BTreeMap<&str, QueueRoom> = BTreeMap::new();
    for sid in jobs.iter().map(|j| j.request.account_sid.as_str()) {
        // Unlocked, the batch assumes room and lets the final guarded update judge.
        rooms.entry(sid).or_insert(QueueRoom::unchecked());
    }
    if locking {
        // Sid order (a BTreeMap), so two locking writers never wait on each other in a cycle.
        let sql = format!(
            "SELECT queued_calls, max_queued_calls, cps FROM accounts WHERE sid = $1{}",
            tx.for_update()
        );
        for (sid, room) in rooms.iter_mut() {
            let row: Option<(i64, i64, i64)> = on_tx!(tx, |c| sqlx::query_as(&sql)
                .bind(*sid)
                .fetch_optional(c)
                .await)?;
            let (queued, max_queued, cps) = row.unwrap_or((0, 0, 0));
            // The queue holds at most maxQueuedCalls, and at most 24 h of calls at the account's pace.
            *room = QueueRoom {
                queued,
                limit: max_queued.min(cps.saturating_mul(86_400)),
                added: 0,
            };
        }
    }

    let mut outcomes: Vec<AcceptOutcome> = Vec::with_capacity(jobs.len());
    let mut keys_in_batch: HashMap<(&str, &str), usize> = HashMap::new();
    let mut captchas_in_batch: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let sid = job.request.account_sid.as_str();
        if let Some(claim) = &job.idempotency {
            let earlier = keys_in_batch.get(&(sid, claim.key.as_str())).copied();
            let replay = match earlier {
                Some(j) => Some(idempotent_replay(
                    claim,
                    &jobs[j].idempotency,
                    &jobs[j].response,
                )),
                None => stored_replay(tx, sid, claim, now).await?.map(|r| match r {
                    Replay::Same(response) => AcceptOutcome::Replayed(response),
                    Replay::Different => AcceptOutcome::KeyReused,
                }),
            };
            if let Some(outcome) = replay {
                outcomes.push(outcome);
                continue;
            }
        }
        if let (Some(limits), Some(call)) = (job.captcha_limits, job.calls.first()) {
            let mut times = recent_captchas(tx, sid, &call.to_number, now).await?;
            times.extend(
                captchas_in_batch
                    .get(&(sid, call.to_number.as_str()))
                    .into_iter()
                    .flatten(),
            );
            if let Some(window) = captcha_window_exceeded(&times, limits, now) {
                outcomes.push(AcceptOutcome::CaptchaLimited(window));
                continue;
            }
        }
        // Every account of the batch has an entry (made above); one outcome per job, always.
        let room = rooms.entry(sid).or_insert(QueueRoom::unchecked());
        let wanted = job.calls.len() as i64;
        if room.queued + room.added + wanted > room.limit {
            outcomes.push(AcceptOutcome::QueueFull { limit: room.limit });
            continue;
        }
        room.added += wanted;
        if let Some(claim) = &job.idempotency {
            keys_in_batch.insert((sid, claim.key.as_str()), i);
        }
        if job.captcha_limits.is_some() {
            for call in &job.calls {
                captchas_in_batch
                    .entry((sid, call.to_number.as_str()))
                    .or_default()
                    .push(now);
            }
        }
        outcomes.push(AcceptOutcome::Accepted);
    }

    let accepted: Vec<&Acceptance> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == AcceptOutcome::Accepted)
        .map(|(j, _)| j)
        .collect();
    if !accepted.is_empty() {
        insert_accepted(tx, &accepted, now).await?;
    }
    let guard = match tx {
        Tx::Sqlite(..) => {
            "UPDATE accounts SET queued_calls = queued_calls + $2 WHERE sid = $1 AND queued_calls + $2 <= min(max_queued_calls, cps * 86400)"
        }
        Tx::Postgres(_) => {
            "UPDATE accounts SET queued_calls = queued_calls + $2 WHERE sid = $1 AND queued_calls + $2 <= LEAST(max_queued_calls, cps * 86400)"
        }
    };
    for (sid, room) in rooms.iter().filter(|(_, r)| r.added > 0) {
        let updated = on_tx!(tx, |c| sqlx::query(guard)
            .bind(*sid)
            .bind(room.added)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Ok(None);
        }
    }
    Ok(Some(outcomes))
}

/// The outcome for a key already accepted earlier in the same batch.
fn idempotent_replay(
    claim: &IdempotencyClaim,
    first: &Option<IdempotencyClaim>,
    response: &str,
) -> AcceptOutcome {
    match first {
        Some(first) if first.request_hash == claim.request_hash => {
            AcceptOutcome::Replayed(response.to_string())
        }
        _ => AcceptOutcome::KeyReused,
    }
}

async fn recent_captchas(
    tx: &mut Tx<'_>,
    sid: &str,
    to: &str,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT created_at FROM calls WHERE account_sid = $1 AND to_number = $2 AND kind = 'captcha' AND created_at > $3")
            .bind(sid)
            .bind(to)
            .bind(now - DAY_MS)
            .fetch_all(c)
            .await
    })
}

/// The first captcha limit that one more captcha at `now` would exceed.
fn captcha_window_exceeded(
    times: &[i64],
    limits: CaptchaLimits,
    now: i64,
) -> Option<CaptchaWindow> {
    let within = |ms: i64| times.iter().filter(|t| **t > now - ms).count() as u64;
    if within(60_000) >= u64::from(limits.per_minute) {
        Some(CaptchaWindow::Minute(limits.per_minute))
    } else if within(3_600_000) >= u64::from(limits.per_hour) {
        Some(CaptchaWindow::Hour(limits.per_hour))
    } else if within(DAY_MS) >= u64::from(limits.per_day) {
        Some(CaptchaWindow::Day(limits.per_day))
    } else {
        None
    }
}

#[derive(Serialize)]
struct ConversationInsert<'a> {
    id: &'a str,
    request_id: &'a str,
    account_sid: &'a str,
    app_id: &'a str,
    state: &'static str,
    created_at: i64,
}

#[derive(Serialize)]
struct KeyInsert<'a> {
    account_sid: &'a str,
    idem_key: &'a str,
    request_hash: &'a str,
    response: &'a str,
    created_at: i64,
}

/// Inserts the call legs, conversations and idempotency keys of the accepted
/// acceptances, one statement per table: the rows travel as one JSON array.
async fn insert_accepted(
    tx: &mut Tx<'_>,
    accepted: &[&Acceptance],
    now: i64,
) -> Result<(), sqlx::Error> {
    // Calls go as bound rows (the script text would cost more as JSON inside JSON).
    let userdata: Vec<Option<Cow<'_, str>>> = accepted
        .iter()
        .map(|a| a.request.userdata.as_deref().map(text::encode))
        .collect();
    let calls: Vec<Vec<Val<'_>>> = accepted
        .iter()
        .zip(&userdata)
        .flat_map(|(a, userdata)| {
            let r = &a.request;
            a.calls.iter().map(move |c| {
                vec![
                    Val::Text(Some(&c.id)),
                    Val::Text(Some(&r.id)),
                    Val::Text(Some(&r.account_sid)),
                    Val::Text(Some(&r.app_id)),
                    Val::Text(Some(r.kind)),
                    Val::Text(c.conversation_id.as_deref()),
                    Val::Int(Some(c.leg_seq)),
                    Val::Text(Some("queued")),
                    Val::Text(Some(&c.to_number)),
                    Val::Text(r.from_number.as_deref()),
                    Val::Text(userdata.as_deref()),
                    Val::Text(Some(&r.params)),
                    Val::Int(Some(r.created_at)),
                    Val::Int(Some(r.created_at)),
                ]
            })
        })
        .collect();
    values::insert(
        tx,
        "calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, from_number, userdata, params, created_at, updated_at)",
        14,
        &calls,
    )
    .await?;
    let conversations: Vec<ConversationInsert> = accepted
        .iter()
        .filter_map(|a| {
            let r = &a.request;
            a.conversation_id.as_deref().map(|id| ConversationInsert {
                id,
                request_id: &r.id,
                account_sid: &r.account_sid,
                app_id: &r.app_id,
                state: "queued",
                created_at: r.created_at,
            })
        })
        .collect();
    if !conversations.is_empty() {
        bulk_insert(tx, Table::Conversations, &conversations).await?;
    }
    let keys: Vec<KeyInsert> = accepted
        .iter()
        .filter_map(|a| {
            a.idempotency.as_ref().map(|k| KeyInsert {
                account_sid: &a.request.account_sid,
                idem_key: &k.key,
                request_hash: &k.request_hash,
                response: &a.response,
                created_at: now,
            })
        })
        .collect();
    if !keys.is_empty() {
        bulk_insert(tx, Table::IdempotencyKeys, &keys).await?;
    }
    Ok(())
}

//! The journal of live calls: every leg state change as it happens, the legs a
//! conversation adds, and at the end the legs' final state, the CDR and its callback rows
//! (the outbox) in one transaction. A writer task gathers concurrent writes into one
//! transaction (group commit, as for acceptance); each write is answered after its commit.
//! A call awaits each of its writes before the next, so its writes keep their order.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::deliveries::{Attempt, Delivery, Outcome, write_attempts};
use super::values::{self, Val};
use super::{Pool, StoreError, Tx, WriteGate, on_tx};
use crate::domain::time::now_ms;

/// Most journal entries committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Entries waiting for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 16_384;
/// Writer tasks on PostgreSQL (SQLite has one writer).
const POSTGRES_WRITERS: usize = 2;

/// A callback to send: one row of the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// The `webhook-id` receivers deduplicate on.
    pub webhook_id: String,
    /// Owner.
    pub account_sid: String,
    /// Application (its signing secret signs the delivery).
    pub app_id: String,
    /// `result`, `status`, `cdr` or `feed`.
    pub kind: &'static str,
    /// Where to POST.
    pub target_url: String,
    /// The JSON body.
    pub body: String,
    /// Rows of one key are delivered in order (a call, or a conversation with its legs).
    pub ordering_key: String,
    /// When to try first (Unix ms).
    pub next_attempt_at: i64,
    /// Unix ms.
    pub created_at: i64,
}

impl OutboxRow {
    /// A row due now, with a fresh webhook id.
    pub fn new(
        account_sid: &str,
        app_id: &str,
        kind: &'static str,
        target_url: &str,
        body: &serde_json::Value,
        ordering_key: &str,
    ) -> Self {
        let now = now_ms();
        Self {
            webhook_id: new_webhook_id(),
            account_sid: account_sid.into(),
            app_id: app_id.into(),
            kind,
            target_url: target_url.into(),
            body: body.to_string(),
            ordering_key: ordering_key.into(),
            next_attempt_at: now,
            created_at: now,
        }
    }
}

/// A fresh `webhook-id`: `msg_` and 32 hex digits.
pub fn new_webhook_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The stored CDR of a notice/captcha call or a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct CdrRow {
    /// `CA…` (notice, captcha) or `CV…` (conversation).
    pub id: String,
    /// Owner.
    pub account_sid: String,
    /// Application.
    pub app_id: String,
    /// What the call was.
    pub kind: crate::domain::CallKind,
    /// Start of the call (Unix ms), the query's time axis.
    pub start_time: i64,
    /// Callee (the caller of a conversation).
    pub to_number: String,
    /// The CDR object as pushed.
    pub body: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A leg's state on its way to `completed`, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LegState {
    /// Dialled (originate sent).
    Initiated,
    /// The far end rings.
    Ringing,
    /// Answered.
    Answered,
}

impl LegState {
    /// Its name in the store and in status callbacks.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
        }
    }
}

/// A leg a conversation dials after its first one (the callee, an added party).
#[derive(Debug, Clone)]
pub struct NewLeg {
    /// `CA…`.
    pub id: String,
    /// The request that created the conversation.
    pub request_id: String,
    /// Owner.
    pub account_sid: String,
    /// Application.
    pub app_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// Dialling order (0 = caller).
    pub leg_seq: i64,
    /// Number dialled.
    pub to_number: String,
    /// Caller id shown.
    pub from_number: Option<String>,
    /// The conversation's userData.
    pub userdata: Option<String>,
    /// Media node.
    pub node: String,
    /// When it was dialled (Unix ms).
    pub start_at: i64,
}

/// The end of one leg.
#[derive(Debug, Clone)]
pub struct LegFinal {
    /// `CA…`.
    pub call_id: String,
    /// When it ended (Unix ms).
    pub end_at: i64,
    /// When it rang and answered (written with the end for calls that do not report them
    /// as they happen).
    pub ring_at: Option<i64>,
    /// Answered at.
    pub answer_at: Option<i64>,
    /// The media server's hangup cause.
    pub hangup_cause: String,
    /// The final SIP response, if there was one.
    pub sip_status: Option<String>,
    /// The contract's cause (`callCause`, or the notice reason's name).
    pub cause: &'static str,
    /// Last key pressed (notices).
    pub inputkey: Option<String>,
}

/// The end of a conversation.
#[derive(Debug, Clone)]
pub struct ConversationEnd {
    /// `CV…`.
    pub id: String,
    /// byeType (§6.2).
    pub bye_type: u8,
    /// Recording, if any: URL and length.
    pub recording: Option<(String, i64)>,
}

/// Everything written when a call or conversation ends, in one transaction.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The legs that end now.
    pub legs: Vec<LegFinal>,
    /// The conversation, for click-to-call.
    pub conversation: Option<ConversationEnd>,
    /// The CDR.
    pub cdr: CdrRow,
    /// Callbacks: the last status changes, the result or CDR, the feed item.
    pub callbacks: Vec<OutboxRow>,
}

/// One write of a call's life.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A leg reached `state` at `at_ms` (on `node`, when it was dialled).
    Leg {
        /// `CA…`.
        call_id: String,
        /// The new state.
        state: LegState,
        /// When (Unix ms).
        at_ms: i64,
        /// Media node, set when the leg is dialled.
        node: Option<String>,
        /// Status callbacks of the change.
        callbacks: Vec<OutboxRow>,
    },
    /// A conversation dialled another leg.
    NewLeg(Box<NewLeg>, Vec<OutboxRow>),
    /// One leg of a conversation ended while the conversation goes on.
    LegEnded(LegFinal, Vec<OutboxRow>),
    /// A conversation's stage (`dialing`, `bridged`, `three_way`) and its engine state.
    Conversation {
        /// `CV…`.
        id: String,
        /// Its stage.
        state: &'static str,
        /// The engine's snapshot (JSON), for a takeover.
        snapshot: String,
    },
    /// A call or conversation ended.
    Finish(Box<Finish>),
}

/// Who may write a call: the lease epoch of the process driving it. A write naming an
/// epoch the call no longer has (another process took it over) is refused whole.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The writer's epoch.
    pub epoch: i64,
    /// The call's first leg, which carries the epoch (for a conversation: its caller leg).
    pub root: String,
    /// A conversation (its legs are several rows, guarded through the root); else a
    /// notice or captcha, whose one row is guarded by each statement.
    pub conversation: bool,
}

/// The writes of one call from one step of its engine: applied together or not at all.
#[derive(Debug, Clone)]
pub struct CallWrite {
    /// Who writes.
    pub fence: Fence,
    /// The call's account (its live-leg count changes with legs added and ended).
    pub account_sid: String,
    /// The writes, in order.
    pub entries: Vec<Entry>,
}

/// Why a journal write failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process drives the call now (or it is over): nothing was written.
    #[error("the call belongs to another process")]
    Fenced,
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl JournalError {
    /// Whether trying again may succeed (the database is unreachable or busy, not refusing
    /// the write itself).
    pub fn is_transient(&self) -> bool {
        match self {
            JournalError::Fenced => false,
            JournalError::Store(e) => e.is_transient(),
        }
    }
}

enum Job {
    Call(CallWrite, oneshot::Sender<Result<(), JournalError>>),
    Attempt(
        Box<(Delivery, Attempt, Outcome)>,
        oneshot::Sender<Result<(), JournalError>>,
    ),
}

impl Job {
    fn answer(self, result: Result<(), JournalError>) {
        let (Job::Call(_, reply) | Job::Attempt(_, reply)) = self;
        let _ = reply.send(result);
    }
}

/// The handle calls submit their writes to.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Call(w, _) => write!(f, "call write {}", w.fence.root),
            Job::Attempt(a, _) => write!(f, "attempt {}", a.0.webhook_id),
        }
    }
}

impl Journal {
    /// Starts the writer task(s).
    pub(crate) fn start(pool: Pool, gate: WriteGate, written: Arc<tokio::sync::Notify>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let writers = match pool {
            Pool::Sqlite(_) => 1,
            Pool::Postgres(_) => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(writer(
                pool.clone(),
                gate.clone(),
                rx.clone(),
                written.clone(),
            ));
        }
        Self { tx }
    }

    async fn submit(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), JournalError>>) -> Job,
    ) -> Result<(), JournalError> {
        let (done, result) = oneshot::channel();
        self.tx
            .send(job(done))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }
}

impl super::Store {
    /// Writes one step of a call durably, fenced by its epoch.
    pub async fn journal(&self, write: CallWrite) -> Result<(), JournalError> {
        self.journal.submit(|done| Job::Call(write, done)).await
    }

    /// Writes a webhook delivery attempt and what becomes of the delivery.
    pub(crate) async fn journal_attempt(
        &self,
        attempt: (Delivery, Attempt, Outcome),
    ) -> Result<(), StoreError> {
        match self
            .journal
            .submit(|done| Job::Attempt(Box::new(attempt), done))
            .await
        {
            Ok(()) => Ok(()),
            Err(JournalError::Store(e)) => Err(e),
            Err(JournalError::Fenced) => Err(StoreError::Corrupt("attempt fenced".into())),
        }
    }
}

/// Commits batches; `written` is told after each commit (callbacks may be waiting).
async fn writer(
    pool: Pool,
    gate: WriteGate,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    written: Arc<tokio::sync::Notify>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        match write(&pool, &gate, &batch).await {
            Ok(Written { applied, callbacks }) => {
                if callbacks {
                    written.notify_one();
                }
                for (job, applied) in batch.into_iter().zip(applied) {
                    job.answer(if applied {
                        Ok(())
                    } else {
                        Err(JournalError::Fenced)
                    });
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = batch.len(), "journal batch failed; retrying one by one");
                for job in batch {
                    let result = match write(&pool, &gate, std::slice::from_ref(&job)).await {
                        Ok(done) if done.applied[0] => {
                            if done.callbacks {
                                written.notify_one();
                            }
                            Ok(())
                        }
                        Ok(_) => Err(JournalError::Fenced),
                        Err(e) => {
                            tracing::error!(error = %e, job = ?job, "journal write failed");
                            Err(JournalError::Store(StoreError::Db(e)))
                        }
                    };
                    job.answer(result);
                }
            }
        }
    }
}

async fn begin(pool: &Pool, gate: &WriteGate) -> Result<Tx<'static>, sqlx::Error> {
    Ok(match pool {
        Pool::Sqlite(p) => {
            let turn = gate.turn().await;
            Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?, turn)
        }
        Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
    })
}

/// What a batch did: for each job whether it was applied (a call write whose fence no
/// longer holds is skipped whole), and whether the outbox has something new to send.
struct Written {
    applied: Vec<bool>,
    callbacks: bool,
}

/// Writes a batch in one transaction. The batch's rows go in a few
/// statements, whatever its size: every state change in one, every end in one, every CDR
/// and callback in one (see [`values`]).
async fn write(pool: &Pool, gate: &WriteGate, jobs: &[Job]) -> Result<Written, sqlx::Error> {
    let mut tx = begin(pool, gate).await?;
    let now = now_ms();
    let calls: Vec<(usize, &CallWrite)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(i, j)| match j {
            Job::Call(w, _) => Some((i, w)),
            Job::Attempt(..) => None,
        })
        .collect();
    let mut applied = vec![true; jobs.len()];

    // Conversations: their caller leg still carries the writer's epoch (locked until the
    // commit, so no takeover can slip in between).
    let guarded: Vec<&(usize, &CallWrite)> =
        calls.iter().filter(|(_, w)| w.fence.conversation).collect();
    if !guarded.is_empty() {
        let rows: Vec<Vec<Val<'_>>> = guarded
            .iter()
            .map(|(_, w)| {
                vec![
                    Val::Text(Some(&w.fence.root)),
                    Val::Int(Some(w.fence.epoch)),
                ]
            })
            .collect();
        let held: HashSet<String> = values::run(
            &mut tx,
            |h, v| format!("UPDATE calls SET updated_at = {} FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 RETURNING calls.id", h[0]),
            &[Val::Int(Some(now))],
            2,
            &rows,
            Some(&[Val::Text(Some("")), Val::Int(Some(-1))]),
            true,
        )
        .await?
        .into_iter()
        .collect();
        for (i, w) in &guarded {
            applied[*i] = held.contains(&w.fence.root);
        }
    }
    // A conversation ends once.
    for (i, w) in &calls {
        for end in w.entries.iter().filter_map(|e| match e {
            Entry::Finish(f) => f.conversation.as_ref(),
            _ => None,
        }) {
            if applied[*i] && end_conversation(&mut tx, end, now).await? == 0 {
                applied[*i] = false;
            }
        }
    }
    let live_writes = || calls.iter().filter(|(i, _)| applied[*i]);

    // New legs, then every state change, then every end (a leg's own writes keep order).
    for (_, w) in live_writes() {
        for entry in &w.entries {
            if let Entry::NewLeg(leg, _) = entry {
                insert_leg(&mut tx, leg, w.fence.epoch, now).await?;
            }
        }
    }
    let mut states: Vec<(&str, i64, LegState, [Option<i64>; 3], Option<&str>)> = Vec::new();
    for (_, w) in live_writes() {
        for entry in &w.entries {
            if let Entry::Leg {
                call_id,
                state,
                at_ms,
                node,
                ..
            } = entry
            {
                let slot = match states.iter_mut().find(|s| s.0 == call_id.as_str()) {
                    Some(slot) => slot,
                    None => {
                        states.push((call_id, w.fence.epoch, *state, [None; 3], None));
                        states.last_mut().expect("just pushed")
                    }
                };
                slot.2 = slot.2.max(*state);
                slot.3[*state as usize] = Some(*at_ms);
                slot.4 = slot.4.or(node.as_deref());
            }
        }
    }
    let changed: HashSet<String> = if states.is_empty() {
        HashSet::new()
    } else {
        let rows: Vec<Vec<Val<'_>>> = states
            .iter()
            .map(|(id, epoch, state, at, node)| {
                vec![
                    Val::Text(Some(id)),
                    Val::Int(Some(*epoch)),
                    Val::Text(Some(state.as_str())),
                    Val::Int(at[0]),
                    Val::Int(at[1]),
                    Val::Int(at[2]),
                    Val::Text(*node),
                ]
            })
            .collect();
        let pad = [
            Val::Text(Some("")),
            Val::Int(Some(-1)),
            Val::Text(Some("")),
            Val::Int(None),
            Val::Int(None),
            Val::Int(None),
            Val::Text(None),
        ];
        values::run(
            &mut tx,
            |h, v| format!(
                "UPDATE calls SET state = v.column3, start_at = COALESCE(v.column4, calls.start_at), \
                 ring_at = COALESCE(v.column5, calls.ring_at), answer_at = COALESCE(v.column6, calls.answer_at), \
                 node = COALESCE(v.column7, calls.node), updated_at = {} \
                 FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 AND calls.end_at IS NULL RETURNING calls.id",
                h[0]
            ),
            &[Val::Int(Some(now))],
            7,
            &rows,
            Some(&pad),
            true,
        )
        .await?
        .into_iter()
        .collect()
    };
    let ends: Vec<(&LegFinal, i64)> = live_writes()
        .flat_map(|(_, w)| {
            w.entries.iter().flat_map(move |e| {
                let legs: Vec<&LegFinal> = match e {
                    Entry::LegEnded(leg, _) => vec![leg],
                    Entry::Finish(f) => f.legs.iter().collect(),
                    _ => vec![],
                };
                legs.into_iter().map(move |l| (l, w.fence.epoch))
            })
        })
        .collect();
    let ended: HashSet<String> = if ends.is_empty() {
        HashSet::new()
    } else {
        let rows: Vec<Vec<Val<'_>>> = ends
            .iter()
            .map(|(leg, epoch)| {
                vec![
                    Val::Text(Some(&leg.call_id)),
                    Val::Int(Some(*epoch)),
                    Val::Int(Some(leg.end_at)),
                    Val::Text(Some(&leg.hangup_cause)),
                    Val::Text(Some(leg.cause)),
                    Val::Text(leg.inputkey.as_deref()),
                    Val::Text(leg.sip_status.as_deref()),
                    Val::Int(leg.ring_at),
                    Val::Int(leg.answer_at),
                ]
            })
            .collect();
        let pad = [
            Val::Text(Some("")),
            Val::Int(Some(-1)),
            Val::Int(Some(0)),
            Val::Text(Some("")),
            Val::Text(Some("")),
            Val::Text(None),
            Val::Text(None),
            Val::Int(None),
            Val::Int(None),
        ];
        values::run(
            &mut tx,
            |h, v| format!(
                "UPDATE calls SET state = 'completed', end_at = v.column3, hangup_cause = v.column4, cause = v.column5, \
                 inputkey = v.column6, sip_status = v.column7, ring_at = COALESCE(calls.ring_at, v.column8), \
                 answer_at = COALESCE(calls.answer_at, v.column9), updated_at = {} \
                 FROM {v} AS v WHERE calls.id = v.column1 AND calls.epoch = v.column2 AND calls.end_at IS NULL RETURNING calls.id",
                h[0]
            ),
            &[Val::Int(Some(now))],
            9,
            &rows,
            Some(&pad),
            true,
        )
        .await?
        .into_iter()
        .collect()
    };
    // A notice's or captcha's write holds if its one row took every change.
    for (i, w) in &calls {
        if w.fence.conversation || !applied[*i] {
            continue;
        }
        applied[*i] = w.entries.iter().all(|e| match e {
            Entry::Leg { call_id, .. } => changed.contains(call_id),
            Entry::Finish(f) => f.legs.iter().all(|l| ended.contains(&l.call_id)),
            Entry::LegEnded(l, _) => ended.contains(&l.call_id),
            Entry::NewLeg(..) | Entry::Conversation { .. } => true,
        });
    }
    // Snapshots (the last of each conversation), CDRs, callbacks, live legs.
    let mut snapshots: Vec<(&str, &str, &str)> = Vec::new();
    let mut cdrs: Vec<&CdrRow> = Vec::new();
    let mut outbox: Vec<&OutboxRow> = Vec::new();
    let mut live: std::collections::BTreeMap<&str, i64> = Default::default();
    for (_, w) in calls.iter().filter(|(i, _)| applied[*i]) {
        let delta = live.entry(w.account_sid.as_str()).or_default();
        for entry in &w.entries {
            match entry {
                Entry::Leg { callbacks, .. } => outbox.extend(callbacks),
                Entry::NewLeg(_, callbacks) => {
                    *delta += 1;
                    outbox.extend(callbacks);
                }
                Entry::LegEnded(_, callbacks) => {
                    *delta -= 1;
                    outbox.extend(callbacks);
                }
                Entry::Conversation {
                    id,
                    state,
                    snapshot,
                } => {
                    snapshots.retain(|s| s.0 != id.as_str());
                    snapshots.push((id, state, snapshot));
                }
                Entry::Finish(f) => {
                    *delta -= f.legs.len() as i64;
                    cdrs.push(&f.cdr);
                    outbox.extend(&f.callbacks);
                }
            }
        }
    }
    for (id, state, snapshot) in snapshots {
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE conversations SET state = $2, snapshot = $3 WHERE id = $1 AND state <> 'ended'"
        )
        .bind(id)
        .bind(state)
        .bind(snapshot)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    insert_cdrs(&mut tx, &cdrs).await?;
    insert_outbox(&mut tx, &outbox).await?;
    let attempts: Vec<&(Delivery, Attempt, Outcome)> = jobs
        .iter()
        .filter_map(|j| match j {
            Job::Attempt(a, _) => Some(&**a),
            Job::Call(..) => None,
        })
        .collect();
    if !attempts.is_empty() {
        write_attempts(&mut tx, &attempts, now).await?;
    }
    let sql = format!(
        "UPDATE accounts SET live_calls = {}(live_calls + $2, 0) WHERE sid = $1",
        tx.greatest()
    );
    for (account, delta) in live.into_iter().filter(|(_, d)| *d != 0) {
        on_tx!(&mut tx, |c| sqlx::query(&sql)
            .bind(account)
            .bind(delta)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(Written {
        applied,
        // New callbacks, or an attempt recorded (the next callback of its key may be due).
        callbacks: !outbox.is_empty() || !attempts.is_empty(),
    })
}

async fn insert_leg(
    tx: &mut Tx<'_>,
    leg: &NewLeg,
    epoch: i64,
    now: i64,
) -> Result<u64, sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, from_number, userdata, params, epoch, node, start_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'click2call', $5, $6, 'initiated', $7, $8, $9, '{}', $10, $11, $12, $13, $13)"
    )
    .bind(&leg.id)
    .bind(&leg.request_id)
    .bind(&leg.account_sid)
    .bind(&leg.app_id)
    .bind(&leg.conversation_id)
    .bind(leg.leg_seq)
    .bind(&leg.to_number)
    .bind(&leg.from_number)
    .bind(&leg.userdata)
    .bind(epoch)
    .bind(&leg.node)
    .bind(leg.start_at)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })
}

/// Marks a conversation ended; 0 when it was over already.
async fn end_conversation(
    tx: &mut Tx<'_>,
    end: &ConversationEnd,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let (url, ms) = end.recording.clone().unzip();
    on_tx!(&mut *tx, |c| {
        sqlx::query(
        "UPDATE conversations SET state = 'ended', bye_type = $2, ended_at = $3, recording_url = $4, recording_ms = $5 WHERE id = $1 AND state <> 'ended'"
    )
    .bind(&end.id)
    .bind(i64::from(end.bye_type))
    .bind(now)
    .bind(url)
    .bind(ms)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })
}

async fn insert_cdrs(tx: &mut Tx<'_>, cdrs: &[&CdrRow]) -> Result<(), sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = cdrs
        .iter()
        .map(|c| {
            vec![
                Val::Text(Some(&c.id)),
                Val::Text(Some(&c.account_sid)),
                Val::Text(Some(&c.app_id)),
                Val::Text(Some(c.kind.as_str())),
                Val::Int(Some(c.start_time)),
                Val::Text(Some(&c.to_number)),
                Val::Text(Some(&c.body)),
                Val::Int(Some(c.created_at)),
            ]
        })
        .collect();
    values::run(
        tx,
        |_, v| format!("INSERT INTO cdrs (id, account_sid, app_id, kind, start_time, to_number, body, created_at) {}", &v[1..v.len() - 1]),
        &[],
        8,
        &rows,
        None,
        false,
    )
    .await
    .map(|_| ())
}

async fn insert_outbox(tx: &mut Tx<'_>, outbox: &[&OutboxRow]) -> Result<(), sqlx::Error> {
    let rows: Vec<Vec<Val<'_>>> = outbox
        .iter()
        .map(|o| {
            vec![
                Val::Text(Some(&o.webhook_id)),
                Val::Text(Some(&o.account_sid)),
                Val::Text(Some(&o.app_id)),
                Val::Text(Some(o.kind)),
                Val::Text(Some(&o.target_url)),
                Val::Text(Some(&o.body)),
                Val::Text(Some(&o.ordering_key)),
                Val::Int(Some(o.next_attempt_at)),
                Val::Int(Some(o.created_at)),
            ]
        })
        .collect();
    values::run(
        tx,
        |_, v| format!("INSERT INTO outbox (webhook_id, account_sid, app_id, kind, target_url, body, ordering_key, next_attempt_at, created_at) {}", &v[1..v.len() - 1]),
        &[],
        9,
        &rows,
        None,
        false,
    )
    .await
    .map(|_| ())
}

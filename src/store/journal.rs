//! The journal of live calls: every leg state change as it happens, the legs a
//! conversation adds, and at the end the legs' final state, the CDR and its callback rows
//! (the outbox) in one transaction. A writer task gathers concurrent writes into one
//! transaction (group commit, as for acceptance); each write is answered after its commit.
//! A call awaits each of its writes before the next, so its writes keep their order.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::bulk::{Table, bulk_insert};
use super::deliveries::{Attempt, Delivery, Outcome, write_attempts};
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
    /// `notice`, `captcha` or `click2call`.
    pub kind: &'static str,
    /// Start of the call (Unix ms), the query's time axis.
    pub start_time: i64,
    /// Callee (the caller of a conversation).
    pub to_number: String,
    /// The CDR object as pushed.
    pub body: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A leg's state on its way to `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    fn time_column(self) -> &'static str {
        match self {
            Self::Initiated => "start_at",
            Self::Ringing => "ring_at",
            Self::Answered => "answer_at",
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
    /// This process (the owner).
    pub owner: String,
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
    /// The media server's hangup cause.
    pub hangup_cause: String,
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

/// One write of the journal.
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
    /// A conversation's phase changed (`dialing`, `bridged`, `three_way`).
    Conversation {
        /// `CV…`.
        id: String,
        /// Its new phase.
        state: &'static str,
    },
    /// A call or conversation ended.
    Finish(Box<Finish>),
    /// A webhook delivery attempt and what becomes of the delivery.
    Attempt(Box<(Delivery, Attempt, Outcome)>),
}

type Job = (Entry, oneshot::Sender<Result<(), StoreError>>);

/// The handle calls submit their writes to.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
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
}

impl super::Store {
    /// Writes one journal entry durably.
    pub async fn journal(&self, entry: Entry) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        self.journal
            .tx
            .send((entry, done))
            .await
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
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
        let (entries, replies): (Vec<Entry>, Vec<_>) = batch.into_iter().unzip();
        match write(&pool, &gate, &entries).await {
            Ok(()) => {
                written.notify_one();
                replies.into_iter().for_each(|r| {
                    let _ = r.send(Ok(()));
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = entries.len(), "journal batch failed; retrying one by one");
                for (entry, reply) in entries.iter().zip(replies) {
                    let result = write(&pool, &gate, std::slice::from_ref(entry)).await;
                    if let Err(e) = &result {
                        tracing::error!(error = %e, entry = ?entry_key(entry), "journal write failed");
                    }
                    let _ = reply.send(result.map_err(StoreError::Db));
                }
            }
        }
    }
}

fn entry_key(entry: &Entry) -> &str {
    match entry {
        Entry::Leg { call_id, .. } => call_id,
        Entry::NewLeg(leg, _) => &leg.id,
        Entry::LegEnded(leg, _) => &leg.call_id,
        Entry::Conversation { id, .. } => id,
        Entry::Finish(f) => &f.cdr.id,
        Entry::Attempt(a) => &a.0.webhook_id,
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

async fn write(pool: &Pool, gate: &WriteGate, entries: &[Entry]) -> Result<(), sqlx::Error> {
    let mut tx = begin(pool, gate).await?;
    let now = now_ms();
    let mut outbox: Vec<&OutboxRow> = Vec::new();
    let mut cdrs: Vec<&CdrRow> = Vec::new();
    let mut attempts: Vec<&(Delivery, Attempt, Outcome)> = Vec::new();
    for entry in entries {
        match entry {
            Entry::Leg {
                call_id,
                state,
                at_ms,
                node,
                callbacks,
            } => {
                let sql = format!(
                    "UPDATE calls SET state = $2, {} = $3, node = COALESCE($4, node), updated_at = $5 WHERE id = $1",
                    state.time_column()
                );
                on_tx!(&mut tx, |c| sqlx::query(&sql)
                    .bind(call_id)
                    .bind(state.as_str())
                    .bind(at_ms)
                    .bind(node)
                    .bind(now)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))?;
                outbox.extend(callbacks);
            }
            Entry::NewLeg(leg, callbacks) => {
                insert_leg(&mut tx, leg, now).await?;
                outbox.extend(callbacks);
            }
            Entry::LegEnded(leg, callbacks) => {
                end_leg(&mut tx, leg, now).await?;
                outbox.extend(callbacks);
            }
            Entry::Conversation { id, state } => {
                on_tx!(&mut tx, |c| sqlx::query(
                    "UPDATE conversations SET state = $2 WHERE id = $1"
                )
                .bind(id)
                .bind(*state)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            }
            Entry::Attempt(a) => attempts.push(a),
            Entry::Finish(finish) => {
                finish_call(&mut tx, finish, now).await?;
                cdrs.push(&finish.cdr);
                outbox.extend(&finish.callbacks);
            }
        }
    }
    if !cdrs.is_empty() {
        bulk_insert(&mut tx, Table::Cdrs, &cdrs).await?;
    }
    if !outbox.is_empty() {
        bulk_insert(&mut tx, Table::Outbox, &outbox).await?;
    }
    if !attempts.is_empty() {
        write_attempts(&mut tx, &attempts, now).await?;
    }
    tx.commit().await
}

async fn insert_leg(tx: &mut Tx<'_>, leg: &NewLeg, now: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, from_number, userdata, params, owner, node, start_at, created_at, updated_at) \
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
    .bind(&leg.owner)
    .bind(&leg.node)
    .bind(leg.start_at)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

async fn finish_call(tx: &mut Tx<'_>, finish: &Finish, now: i64) -> Result<(), sqlx::Error> {
    for leg in &finish.legs {
        end_leg(tx, leg, now).await?;
    }
    if let Some(end) = &finish.conversation {
        let (url, ms) = end.recording.clone().unzip();
        on_tx!(&mut *tx, |c| {
            sqlx::query(
            "UPDATE conversations SET state = 'ended', bye_type = $2, ended_at = $3, recording_url = $4, recording_ms = $5 WHERE id = $1"
        )
        .bind(&end.id)
        .bind(i64::from(end.bye_type))
        .bind(now)
        .bind(url)
        .bind(ms)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

async fn end_leg(tx: &mut Tx<'_>, leg: &LegFinal, now: i64) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query(
        "UPDATE calls SET state = 'completed', end_at = $2, hangup_cause = $3, cause = $4, inputkey = $5, updated_at = $6 WHERE id = $1"
    )
    .bind(&leg.call_id)
    .bind(leg.end_at)
    .bind(&leg.hangup_cause)
    .bind(leg.cause)
    .bind(&leg.inputkey)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

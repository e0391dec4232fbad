//! The journal of live calls: every leg state change as it happens, the legs a
//! conversation adds, and at the end the legs' final state, the CDR and its callback rows
//! (the outbox) in one transaction. A writer task gathers concurrent writes into one
//! transaction (group commit, as for acceptance); each write is answered after its commit.
//! A call awaits each of its writes before the next, so its writes keep their order.

mod batch;

use batch::{Written, write};
pub(crate) use batch::{insert_outbox, insert_outbox_once};

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::deliveries::{Attempt, Delivery, Outcome};
use super::session_writer::DecideFn;
use super::{Pool, StoreError, WriteGate};
use crate::domain::time::now_ms;

/// Most journal entries committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Entries waiting for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 16_384;

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
    /// The host of `target_url` (lower case): deliveries are budgeted per host.
    pub target_host: String,
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
            target_host: host_of(target_url),
            body: body.to_string(),
            ordering_key: ordering_key.into(),
            next_attempt_at: now,
            created_at: now,
        }
    }
}

/// The host part of a callback URL, lower case (`""` when it has none).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
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
    /// Every leg's number, once each (the CDR query's `to` matches any of them).
    pub numbers: Vec<String>,
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
    /// The agent on it (an offer's leg).
    pub agent_no: Option<String>,
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
    /// The protocol's own cause (`sip:486`), if there was one.
    pub proto_cause: Option<String>,
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
    /// A conversation's caller starts waiting in a queue (`Some`) or stops (`None`).
    Waiting {
        /// `CV…`.
        conversation_id: String,
        /// Where and since when, if it waits.
        row: Option<WaitingRow>,
    },
    /// Events of the conversation for its application's `eventUrl` that are no agent's
    /// (its caller's leg, numbers it dialled, queue moves, its end).
    Pushes(Vec<crate::agents::push::EventPush>),
    /// A change of an agent's session the call causes (its callEvents, its state), applied
    /// under the session's lock in the same transaction.
    Agent {
        /// The agent's application.
        app_id: String,
        /// The agent.
        agent_no: String,
        /// What to write, from the session as it is.
        change: SessionChange,
    },
}

/// A caller waiting in a queue, as the Live view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingRow {
    /// The application.
    pub app_id: String,
    /// The queue.
    pub queue_sid: String,
    /// The caller's leg, `CA…`.
    pub call_sid: String,
    /// The caller's number.
    pub user_number: String,
    /// queueEvent `joinType` (1 dial-in, 2 transfer, 3 overflow, 4 backend outbound).
    pub join_type: i64,
    /// When it joined, Unix ms.
    pub join_at: i64,
}

/// Decides an agent session's change from the session as stored.
#[derive(Clone)]
pub struct SessionChange(pub Arc<DecideFn>);

impl std::fmt::Debug for SessionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionChange")
    }
}

/// Where the notices of agent changes written by the journal go in this process (the
/// registry of agent sockets).
pub type NoticeSink = Box<dyn Fn(&str) + Send + Sync>;

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
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Job>,
    sink: Arc<std::sync::OnceLock<NoticeSink>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
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
        let sink: Arc<std::sync::OnceLock<NoticeSink>> = Arc::default();
        let tx = super::start_writers(&pool, QUEUE_DEPTH, |rx| {
            writer(
                pool.clone(),
                gate.clone(),
                rx,
                written.clone(),
                sink.clone(),
            )
        });
        Self { tx, sink }
    }

    async fn submit(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), JournalError>>) -> Job,
    ) -> Result<(), JournalError> {
        super::submit(&self.tx, job).await
    }
}

impl super::Store {
    /// Where the notices of agent changes the journal writes go in this process (set once,
    /// at startup).
    pub fn set_agent_sink(&self, sink: NoticeSink) {
        let _ = self.journal.sink.set(sink);
    }

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
    rx: super::WriterQueue<Job>,
    written: Arc<tokio::sync::Notify>,
    sink: Arc<std::sync::OnceLock<NoticeSink>>,
) {
    let tell = |notices: &[String]| {
        if let Some(sink) = sink.get() {
            notices.iter().for_each(|n| sink(n));
        }
    };
    loop {
        let Some(batch) = super::next_batch(&mut *rx.lock().await, MAX_BATCH).await else {
            return;
        };
        match write(&pool, &gate, &batch).await {
            Ok(Written {
                applied,
                callbacks,
                notices,
            }) => {
                if callbacks {
                    written.notify_one();
                }
                tell(&notices);
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
                            tell(&done.notices);
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

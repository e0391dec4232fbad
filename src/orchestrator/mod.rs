//! The call orchestrator: places queued calls at each account's pace, runs every call
//! as a task of its own (one state machine per kind: [`notice`], [`captcha`],
//! [`click2call`]) over the media pool, writes each leg's life to the journal as it
//! happens, and at the end the CDR and its callbacks in one transaction. Unfinished calls
//! of a process that died are taken over ([`recovery`]).

mod captcha;
pub mod click2call;
mod ivr;
pub mod leg;
mod notice;
pub mod prompts;
mod recovery;
mod scheduler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::config::Settings;
use crate::domain::IdGenerator;
use crate::media::pool::MediaPool;
use crate::store::Store;
use crate::store::applications::ApplicationRecord;
use crate::store::journal::OutboxRow;
use crate::store::placing::CallRecord;
use prompts::Prompts;

pub use click2call::{ConversationCommand, Refused};

/// Longest wait of a cancelCall for a conversation being claimed to be dialled.
const PLACING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tries of a journal write before a call gives up (about a minute of retries).
const JOURNAL_ATTEMPTS: u32 = 10;

/// What every call task shares.
pub(crate) struct Ctx {
    store: Store,
    media: Arc<MediaPool>,
    settings: Settings,
    prompts: Prompts,
    ids: Arc<IdGenerator>,
    /// This process's orchestrator id (owner of the calls it drives).
    instance: String,
    wake: Notify,
    conversations: Mutex<HashMap<String, mpsc::UnboundedSender<ConversationCommand>>>,
    /// Set when the process stops: no more calls are placed and the lease is not renewed.
    stopping: std::sync::atomic::AtomicBool,
}

/// The orchestrator of this process.
#[derive(Clone)]
pub struct Orchestrator(Arc<Ctx>);

/// A call to run, with its account's answer timeout.
pub(crate) struct Placement {
    call: CallRecord,
    answer_timeout: u32,
    /// Commands from the API (conversations only; registered before the task starts,
    /// so no command can miss it).
    commands: Option<mpsc::UnboundedReceiver<ConversationCommand>>,
    /// cancelCall arrived before the conversation was dialled.
    pre_canceled: bool,
}

impl Placement {
    fn new(call: CallRecord, answer_timeout: u32) -> Self {
        Self {
            call,
            answer_timeout,
            commands: None,
            pre_canceled: false,
        }
    }
}

impl Orchestrator {
    /// Writes the built-in prompts, takes the lease of this process, takes over calls
    /// that dead processes left, and starts placing queued calls.
    pub async fn start(
        store: Store,
        media: Arc<MediaPool>,
        settings: Settings,
        ids: Arc<IdGenerator>,
    ) -> std::io::Result<Orchestrator> {
        let prompts = Prompts::new(&settings.prompts_dir, store.clone())?;
        let ctx = Arc::new(Ctx {
            store,
            media,
            settings,
            prompts,
            ids,
            instance: format!("{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
            conversations: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        recovery::start(ctx.clone()).await;
        tokio::spawn(scheduler::run(ctx.clone()));
        Ok(Orchestrator(ctx))
    }

    /// Stops placing queued calls and gives up the lease at once, so another replica
    /// takes over this process's live calls on its next look (within seconds) instead of
    /// after the lease would have run out. The calls themselves are left alone: their
    /// channels and timers live on the media servers.
    pub async fn stop(&self) {
        let ctx = &self.0;
        ctx.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        ctx.wake.notify_one();
        if let Err(e) = ctx
            .store
            .renew_lease(&ctx.instance, ctx.settings.node_id, 0)
            .await
        {
            tracing::warn!(error = %e, "could not give up the lease; other replicas take over when it runs out");
        }
    }

    /// Tells the scheduler that calls were queued (it also polls, for other replicas).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// cancelCall: hangs up every leg of conversation `id` in any state. A conversation
    /// not dialled yet ends at once (byeType 6); one driven by another replica is ended
    /// by hanging up its channels with the cancel cause.
    pub async fn cancel(&self, id: &str) -> Result<(), Refused> {
        let ctx = &self.0;
        let started = tokio::time::Instant::now();
        loop {
            if let Some(verdict) = self
                .conversation_command(id, ConversationCommand::Cancel)
                .await
            {
                return verdict;
            }
            if let Some(call) = ctx
                .store
                .claim_queued_conversation(id, &ctx.instance)
                .await?
            {
                // Never dialled: the answer timeout does not matter.
                let mut placement = ctx.register(Placement::new(call, 0));
                placement.pre_canceled = true;
                ctx.run(placement).await;
                return Ok(());
            }
            let legs = ctx.store.conversation_legs(id).await?;
            // Claimed by a scheduler (here or on another replica) and about to be
            // dialled: its task registers, or its channel appears, in a moment.
            if legs.iter().any(|l| l.state == "placing") && started.elapsed() < PLACING_WAIT {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            let mut live = 0;
            for leg in legs
                .iter()
                .filter(|l| matches!(l.state.as_str(), "initiated" | "ringing" | "answered"))
            {
                if let Some(node) = leg.node.as_deref().and_then(|n| ctx.media.node(n)) {
                    live += 1;
                    let kill = format!("uuid_kill {} {}", leg.id, click2call::CANCEL_CAUSE);
                    let _ = node.client.api(&kill).await;
                }
            }
            if live == 0 && legs.iter().all(|l| l.state == "completed") {
                return Err(Refused::State("conversation has already ended".into()));
            }
            return Ok(());
        }
    }

    /// addCall on conversation `id`, which this process must be driving.
    pub async fn add_call(
        &self,
        id: &str,
        add: crate::domain::click2call::AddCall,
    ) -> Result<(), Refused> {
        self.conversation_command(id, |reply| {
            ConversationCommand::AddCall(Box::new(add), reply)
        })
        .await
        .unwrap_or_else(|| {
            // Not driven here: not dialled yet (or, with several replicas, driven by
            // another one, which this process cannot reach).
            Err(Refused::State(format!(
                "{}; the conversation has not been bridged yet",
                click2call::ADD_CALL_RULE
            )))
        })
    }

    /// Sends `command` to the live conversation `id` driven by this process and waits
    /// for its verdict; `None` when this process does not drive it.
    async fn conversation_command(
        &self,
        id: &str,
        command: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), Refused>>) -> ConversationCommand,
    ) -> Option<Result<(), Refused>> {
        let tx = self.0.conversations.lock().ok()?.get(id).cloned()?;
        let (reply, verdict) = tokio::sync::oneshot::channel();
        tx.send(command(reply)).ok()?;
        verdict.await.ok()
    }
}

impl Ctx {
    /// Whether the process is stopping (`Orchestrator::stop`).
    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs a claimed or taken-over call to its end in a task of its own. If the task
    /// panics, the call's legs are released so that recovery takes them over.
    fn spawn(self: &Arc<Self>, placement: Placement) {
        let ctx = self.clone();
        let placement = self.register(placement);
        let key = placement
            .call
            .conversation_id
            .clone()
            .unwrap_or_else(|| placement.call.id.clone());
        let task = tokio::spawn(async move { ctx.run(placement).await });
        let ctx = self.clone();
        tokio::spawn(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(call = %key, "call task panicked; its legs are released for recovery");
                if let Ok(mut map) = ctx.conversations.lock() {
                    map.remove(&key);
                }
                if let Err(e) = ctx.store.release(&key).await {
                    tracing::error!(call = %key, error = %e, "could not release the call");
                }
            }
        });
    }

    /// A conversation's command channel is registered before its task runs.
    fn register(&self, mut placement: Placement) -> Placement {
        if let Some(cv) = &placement.call.conversation_id
            && let Ok(mut map) = self.conversations.lock()
        {
            let (tx, rx) = mpsc::unbounded_channel();
            map.insert(cv.clone(), tx);
            placement.commands = Some(rx);
        }
        placement
    }

    async fn run(self: &Arc<Self>, placement: Placement) {
        let id = placement.call.id.clone();
        let result = match placement.call.kind.as_str() {
            "notice" => notice::run(self, placement).await,
            "captcha" => captcha::run(self, placement).await,
            "click2call" => click2call::run(self, placement).await,
            other => Err(format!("unknown call kind {other:?}")),
        };
        if let Err(e) = result {
            tracing::error!(call = %id, error = %e, "call task failed");
        }
    }

    /// Writes a journal entry, retrying a failing database for about a minute (a call's
    /// record must not be lost to a passing outage); then gives up with the error.
    async fn journal(&self, entry: crate::store::journal::Entry) -> Result<(), String> {
        let ended = match &entry {
            crate::store::journal::Entry::Finish(f) => Some((f.cdr.kind, f.cdr.id.clone())),
            _ => None,
        };
        with_db_retries("journal write", || self.store.journal(entry.clone()))
            .await
            .map_err(|e| format!("journal write failed {JOURNAL_ATTEMPTS} times: {e}"))?;
        if let Some((kind, id)) = ended {
            crate::telemetry::metrics::metrics().call_ended(kind);
            tracing::info!(call = %id, kind, "call ended; CDR written");
        }
        Ok(())
    }

    /// Outbox rows of a finished call's CDR: to `url` (when set) and to the
    /// application's batched feed (when `app` has one), with `kind` added.
    fn cdr_callbacks(
        call: &CallRecord,
        app: Option<&ApplicationRecord>,
        kind: &'static str,
        url: Option<&str>,
        body: &serde_json::Value,
        ordering_key: &str,
    ) -> Vec<OutboxRow> {
        let mut rows = Vec::new();
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            let callback_kind = if kind == "click2call" {
                "cdr"
            } else {
                "result"
            };
            rows.push(OutboxRow::new(
                &call.account_sid,
                &call.app_id,
                callback_kind,
                url,
                body,
                ordering_key,
            ));
        }
        if let Some(feed) = app.and_then(|a| a.cdr_feed_url.as_deref()) {
            let mut item = body.clone();
            if let Some(map) = item.as_object_mut() {
                map.insert("kind".into(), serde_json::Value::String(kind.into()));
            }
            rows.push(OutboxRow::new(
                &call.account_sid,
                &call.app_id,
                "feed",
                feed,
                &item,
                &format!("feed:{}", call.app_id),
            ));
        }
        rows
    }

    /// The call's application (its callback URLs as they are now), retrying a failing
    /// database like [`Ctx::journal`]; `None` if it is gone.
    async fn app(&self, call: &CallRecord) -> Option<Arc<ApplicationRecord>> {
        let found = with_db_retries("application read", || {
            self.store.find_app(&call.account_sid, &call.app_id)
        })
        .await;
        found.unwrap_or_else(|e| {
            tracing::error!(call = %call.id, error = %e, "application unreadable; the call's callbacks are skipped");
            None
        })
    }
}

/// Runs a database operation up to [`JOURNAL_ATTEMPTS`] times, backing off from 100 ms to
/// 10 s between tries; returns the last error.
async fn with_db_retries<T, F, Fut>(what: &str, mut op: F) -> Result<T, crate::store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < JOURNAL_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
                attempt += 1;
            }
            done => return done,
        }
    }
}

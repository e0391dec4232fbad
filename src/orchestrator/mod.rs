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
use crate::store::journal::OutboxRow;
use crate::store::placing::CallRecord;
use prompts::Prompts;

pub use click2call::{ConversationCommand, Refused};

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
        });
        recovery::start(ctx.clone()).await;
        tokio::spawn(scheduler::run(ctx.clone()));
        Ok(Orchestrator(ctx))
    }

    /// Tells the scheduler that calls were queued (it also polls, for other replicas).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// cancelCall: hangs up every leg of conversation `id` in any state. A conversation
    /// not dialled yet ends at once (byeType 6); one driven by another replica is ended
    /// by hanging up its channels with the cancel cause.
    pub async fn cancel(&self, id: &str) -> Result<(), Refused> {
        if let Some(verdict) = self
            .conversation_command(id, ConversationCommand::Cancel)
            .await
        {
            return verdict;
        }
        let ctx = &self.0;
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
        let mut live = 0;
        for leg in legs
            .iter()
            .filter(|l| matches!(l.state.as_str(), "initiated" | "ringing" | "answered"))
        {
            if let Some(node) = leg.node.as_deref().and_then(|n| ctx.media.node(n)) {
                live += 1;
                let _ = node
                    .client
                    .api(&format!(
                        "uuid_kill {} {}",
                        leg.id,
                        click2call::CANCEL_CAUSE
                    ))
                    .await;
            }
        }
        if live == 0 && legs.iter().all(|l| l.state == "completed") {
            return Err(Refused::State("conversation has already ended".into()));
        }
        Ok(())
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
    /// Runs a claimed or taken-over call to its end in a task of its own.
    fn spawn(self: &Arc<Self>, placement: Placement) {
        let ctx = self.clone();
        let placement = self.register(placement);
        tokio::spawn(async move { ctx.run(placement).await });
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

    /// Outbox rows of a finished call's CDR: to `url` (when set) and to the
    /// application's batched feed (when set), with `kind` added.
    async fn cdr_callbacks(
        &self,
        call: &CallRecord,
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
        if let Some(feed) = self.app(call).await.and_then(|a| a.cdr_feed_url.clone()) {
            let mut item = body.clone();
            if let Some(map) = item.as_object_mut() {
                map.insert("kind".into(), serde_json::Value::String(kind.into()));
            }
            rows.push(OutboxRow::new(
                &call.account_sid,
                &call.app_id,
                "feed",
                &feed,
                &item,
                &format!("feed:{}", call.app_id),
            ));
        }
        rows
    }

    /// The call's application (its callback URLs as they are now).
    async fn app(
        &self,
        call: &CallRecord,
    ) -> Option<Arc<crate::store::applications::ApplicationRecord>> {
        match self.store.find_app(&call.account_sid, &call.app_id).await {
            Ok(app) => app,
            Err(e) => {
                tracing::warn!(call = %call.id, error = %e, "application not readable; callbacks skipped");
                None
            }
        }
    }
}

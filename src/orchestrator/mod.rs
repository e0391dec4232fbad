//! The call orchestrator: places queued calls at each account's pace ([`scheduler`]),
//! runs each call as a pure state machine ([`engine`], scripted per kind by [`flows`])
//! under a thin driver that does its I/O ([`driver`]), fences every write by the lease
//! epoch of the process driving it and takes over the calls of processes that stopped
//! ([`recovery`]), and carries cancelCall/addCall to whichever replica drives a
//! conversation ([`commands`]).

pub mod commands;
pub mod driver;
pub mod engine;
pub mod flows;
mod inbound;
pub mod prompts;
mod recovery;
mod scheduler;
mod unit;

use crate::media::pool::ParkedCall;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Settings;
use crate::domain::IdGenerator;
use crate::media::pool::MediaPool;
use crate::store::Store;
use crate::store::applications::ApplicationRecord;
use engine::{Command, Refusal};
use prompts::Prompts;

pub use commands::Refused;

/// An API command for a call's driver, with where its verdict goes. The command is boxed:
/// a channel keeps room for 32 orders per call from its start, and commands are rare.
pub(crate) struct Order {
    command: Box<Command>,
    reply: oneshot::Sender<Result<(), Refusal>>,
}

impl Order {
    /// An order of `command`, and where its verdict will come.
    fn new(command: Command) -> (Self, oneshot::Receiver<Result<(), Refusal>>) {
        let (reply, verdict) = oneshot::channel();
        let command = Box::new(command);
        (Order { command, reply }, verdict)
    }
}

/// A call driven by this process.
struct Live {
    orders: mpsc::UnboundedSender<Order>,
    task: tokio::task::AbortHandle,
    /// Its application (addCall prompts are its).
    app_id: String,
}

/// This process's lease: its epoch, and until when (on the monotonic clock) it may act
/// under it.
struct Lease {
    epoch: AtomicI64,
    valid_until_ms: AtomicI64,
    base: Instant,
}

impl Lease {
    fn now_ms(&self) -> i64 {
        self.base.elapsed().as_millis() as i64
    }

    fn valid(&self) -> bool {
        self.now_ms() < self.valid_until_ms.load(Ordering::Acquire)
    }
}

/// What every call's driver shares.
pub(crate) struct Ctx {
    store: Store,
    media: Arc<MediaPool>,
    settings: Settings,
    prompts: Prompts,
    ids: Arc<IdGenerator>,
    /// This process (for the lease row and logs).
    instance: String,
    lease: Lease,
    /// Wakes the scheduler: calls were queued, or a call ended and room freed.
    wake: Notify,
    /// The scheduler's last look found calls held back by `maxConcurrentCalls`: a call
    /// that ends here wakes it.
    room_wanted: AtomicBool,
    /// The calls this process drives, by call (`CA…`) or conversation (`CV…`) id.
    calls: Mutex<HashMap<String, Live>>,
    /// Calls whose driver failed, to be ended from what is stored, with their tries.
    broken: Mutex<BTreeMap<String, u32>>,
    /// Set when the process stops: no more calls are placed and the lease is given up.
    stopping: AtomicBool,
    /// Set when a stop is asked for: no more calls are placed or taken over.
    placing_stopped: AtomicBool,
    generations: AtomicU64,
    /// The matchmaker of this process's inbound callers.
    acd: crate::acd::hub::AcdHandle,
    /// Where agents' own dial-outs this process claimed go (§11.2): the agents' side,
    /// which writes them as the agent's call.
    phone_dials: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<ParkedCall>>>,
}

/// The orchestrator of this process.
#[derive(Clone)]
pub struct Orchestrator(Arc<Ctx>);

impl Orchestrator {
    /// Writes the built-in prompts, takes a lease, takes over calls that stopped processes
    /// left, and starts placing queued calls.
    pub async fn start(
        store: Store,
        media: Arc<MediaPool>,
        settings: Settings,
        ids: Arc<IdGenerator>,
        acd: crate::acd::hub::AcdHandle,
    ) -> std::io::Result<Orchestrator> {
        let prompts = Prompts::new(&settings.prompts_dir, store.clone())?;
        let ctx = Arc::new(Ctx {
            store,
            media,
            settings,
            prompts,
            ids,
            instance: format!("{}", uuid::Uuid::new_v4().simple()),
            lease: Lease {
                epoch: AtomicI64::new(0),
                valid_until_ms: AtomicI64::new(0),
                base: Instant::now(),
            },
            wake: Notify::new(),
            room_wanted: AtomicBool::new(false),
            calls: Mutex::new(HashMap::new()),
            broken: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            placing_stopped: AtomicBool::new(false),
            generations: AtomicU64::new(1),
            acd,
            phone_dials: std::sync::Mutex::new(None),
        });
        recovery::start(ctx.clone()).await;
        tokio::spawn(scheduler::run(ctx.clone()));
        commands::listen(ctx.clone());
        inbound::start(ctx.clone());
        Ok(Orchestrator(ctx))
    }

    /// Stops placing queued calls and gives up the lease at once, so another replica
    /// takes over this process's live calls on its next look (within seconds) instead of
    /// after the lease would have run out. The calls themselves are left alone: their
    /// channels and timers live on the media servers.
    pub async fn stop(&self) {
        let ctx = &self.0;
        ctx.stopping.store(true, Ordering::Relaxed);
        ctx.placing_stopped.store(true, Ordering::Relaxed);
        ctx.wake.notify_one();
        ctx.lease.valid_until_ms.store(0, Ordering::Release);
        ctx.stop_driving();
        if let Err(e) = ctx.store.give_up_lease(ctx.epoch()).await {
            tracing::warn!(error = %e, "could not give up the lease; other replicas take over when it runs out");
        }
    }

    /// Stops placing queued calls (the process is about to stop); live calls go on.
    pub fn stop_placing(&self) {
        self.0.placing_stopped.store(true, Ordering::Relaxed);
        self.0.wake.notify_one();
    }

    /// Tells the scheduler that calls were queued (it also looks by itself, for other
    /// replicas).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// cancelCall: hangs up every leg of conversation `id` in any state.
    pub async fn cancel(&self, id: &str) -> Result<(), Refused> {
        commands::cancel(&self.0, id).await
    }

    /// The lease epoch an agent call claimed now must carry; `None` while this process
    /// may not start calls (its lease lapsed, or it is stopping).
    pub fn claim_epoch(&self) -> Option<i64> {
        let ctx = &self.0;
        (ctx.lease.valid() && ctx.placing()).then(|| ctx.epoch())
    }

    /// The epoch of this process's lease: the one its calls carry (0 before it has one).
    pub fn lease_epoch(&self) -> i64 {
        self.0.epoch()
    }

    /// Starts driving an agent conversation whose first leg was just written, claimed with
    /// [`Orchestrator::claim_epoch`].
    pub fn start_agent_call(&self, first: crate::store::placing::CallRecord) {
        let ctx = self.0.clone();
        tokio::spawn(async move {
            let built = ctx.fresh(first, 0).await;
            ctx.launch(built, vec![engine::Input::Start], None);
        });
    }

    /// The plan of a backend outbound call (agents' contract §3.6) of application `app`
    /// to `user_number`: once answered, the user waits for `target`. Stored with the
    /// call's request, it is what the call follows when the scheduler places it.
    pub async fn outbound_plan(
        &self,
        app: &crate::store::applications::ApplicationRecord,
        user_number: &str,
        target: flows::agent::Target,
        outbound: flows::agent::Outbound,
    ) -> flows::StoredAgentConversation {
        let plan = self
            .0
            .outbound_plan(app, user_number, target, outbound)
            .await;
        flows::StoredAgentConversation::Inbound {
            inbound: Box::new(plan),
        }
    }

    /// What a caller transferred to queue `queue` of application `app` needs: it and the
    /// queues its overflows reach, by queueSid.
    pub async fn queue_plans(
        &self,
        app: &crate::store::applications::ApplicationRecord,
        queue: &str,
    ) -> std::collections::BTreeMap<String, flows::agent::QueuePlan> {
        self.0.queue_plans(app, queue).await
    }

    /// The agents' own dial-outs this process claims from now on (agents' contract §11.2);
    /// a later call replaces the earlier receiver.
    pub fn phone_dials(&self) -> tokio::sync::mpsc::UnboundedReceiver<ParkedCall> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut sink) = self.0.phone_dials.lock() {
            *sink = Some(tx);
        }
        rx
    }

    /// Hangs up a parked channel this process claimed, with `cause`.
    pub async fn reject_parked(&self, call: &ParkedCall, cause: &str) {
        inbound::reject(&self.0, call, cause).await;
    }

    /// Drives an agent's own dial-out (§11.2), parked as `call`, written as `record` (the
    /// agent's leg).
    pub fn start_phone_dial(&self, call: ParkedCall, record: crate::store::placing::CallRecord) {
        let ctx = self.0.clone();
        tokio::spawn(async move {
            let conversation = record.conversation_id.clone().unwrap_or_default();
            inbound::mark(&ctx, &call, &conversation).await;
            let built = ctx.inbound(record, &call.channel_name).await;
            ctx.launch(built, vec![engine::Input::Start], None);
        });
    }

    /// Whether agent device `sip_number` (of `VOICEPAAS_SIP_DOMAIN`) is registered on a
    /// media server.
    pub async fn registered(&self, sip_number: &str) -> Result<bool, crate::esl::EslError> {
        let domain = &self.0.settings.sip_domain;
        Ok(self
            .0
            .media
            .device_node(sip_number, domain)
            .await?
            .is_some())
    }

    /// An agent's command on its conversation `id`, wherever it is driven.
    pub async fn agent_order(
        &self,
        id: &str,
        agent_no: &str,
        order: flows::orders::AgentOrder,
    ) -> Result<(), Refused> {
        commands::agent_order(&self.0, id, agent_no, order).await
    }

    /// What the matchmaker tells inbound conversation `id`, if this process drives it;
    /// its verdict comes back on the receiver.
    pub fn queue_order(
        &self,
        id: &str,
        order: flows::agent::QueueOrder,
    ) -> Option<oneshot::Receiver<Result<(), Refusal>>> {
        self.0.order(id, Command::Queue(order))
    }

    /// addCall on conversation `id`.
    pub async fn add_call(
        &self,
        id: &str,
        add: crate::domain::click2call::AddCall,
    ) -> Result<(), Refused> {
        commands::add_call(&self.0, id, add).await
    }
}

impl Ctx {
    /// Whether the process is stopping (`Orchestrator::stop`).
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether calls may be placed or taken over (no stop asked for).
    fn placing(&self) -> bool {
        !self.placing_stopped.load(Ordering::Relaxed)
    }

    /// The epoch of this process's lease.
    fn epoch(&self) -> i64 {
        self.lease.epoch.load(Ordering::Acquire)
    }

    /// A number no other driver of this process has, stamped with the epoch.
    fn next_generation(&self) -> u64 {
        ((self.epoch() as u64) << 32)
            | (self.generations.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff)
    }

    /// Aborts every driver at once (the lease is lost or given up): no more commands or
    /// writes for their calls; their channels are left as they are.
    fn stop_driving(&self) {
        let lives: Vec<Live> = match self.calls.lock() {
            Ok(mut calls) => calls.drain().map(|(_, live)| live).collect(),
            Err(_) => Vec::new(),
        };
        if !lives.is_empty() {
            tracing::warn!(calls = lives.len(), "no longer driving these calls");
        }
        for live in lives {
            live.task.abort();
        }
    }

    /// The call's application (its callback URLs as they are now); `None` if it is gone
    /// or unreadable.
    async fn app(&self, account_sid: &str, app_id: &str) -> Option<Arc<ApplicationRecord>> {
        match self.store.find_app(account_sid, app_id).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(app = app_id, error = %e, "application unreadable; its URLs are not used");
                None
            }
        }
    }

    /// Whether this process drives call `id`.
    fn drives(&self, id: &str) -> bool {
        self.calls.lock().is_ok_and(|c| c.contains_key(id))
    }

    /// The application of call `id`, if this process drives it.
    fn app_of(&self, id: &str) -> Option<String> {
        self.calls.lock().ok()?.get(id).map(|l| l.app_id.clone())
    }

    /// Starts driving a call: `first` are its first inputs, `order` a command it gets
    /// before them (whose verdict is returned). When the driver fails or panics, the
    /// call is ended from what is stored ([`recovery`]).
    fn launch(
        self: &Arc<Self>,
        built: unit::Built,
        first: Vec<engine::Input>,
        order: Option<Command>,
    ) -> Option<oneshot::Receiver<Result<(), Refusal>>> {
        let id = built.unit.id.clone();
        let app_id = built.unit.first.app_id.clone();
        let waiting = built.unit.kind.is_conversation().then(|| id.clone());
        let (orders, rx) = mpsc::unbounded_channel();
        let verdict = order.map(|command| {
            let (order, verdict) = Order::new(command);
            let _ = orders.send(order);
            verdict
        });
        let (go, ready) = oneshot::channel::<()>();
        let ctx = self.clone();
        let task = tokio::spawn(async move {
            if ready.await.is_err() {
                return driver::Outcome::LeaseLost;
            }
            driver::drive(ctx, built.unit, built.engine, rx, first).await
        });
        let task_id = task.id();
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(
                id.clone(),
                Live {
                    orders,
                    task: task.abort_handle(),
                    app_id,
                },
            );
        }
        let _ = go.send(());
        let ctx = self.clone();
        tokio::spawn(async move {
            let outcome = task.await;
            if let Ok(mut calls) = ctx.calls.lock()
                && calls.get(&id).is_some_and(|l| l.task.id() == task_id)
            {
                calls.remove(&id);
            }
            match outcome {
                Ok(driver::Outcome::Done) => {
                    ctx.forget_broken(&id);
                    if ctx.room_wanted.load(Ordering::Relaxed) {
                        ctx.wake.notify_one();
                    }
                }
                Ok(driver::Outcome::Fenced) => {
                    ctx.forget_broken(&id);
                    tracing::info!(call = %id, "another process drives the call now");
                }
                Ok(driver::Outcome::LeaseLost) => {}
                Ok(driver::Outcome::Failed(why)) => {
                    tracing::error!(call = %id, why, "call driver failed; ending the call from what is stored");
                    ctx.mark_broken(&id);
                }
                Err(e) if e.is_panic() => {
                    tracing::error!(call = %id, "call driver panicked; ending the call from what is stored");
                    ctx.mark_broken(&id);
                }
                Err(_) => {}
            }
        });
        if let Some(id) = waiting {
            // Commands written while nobody drove the conversation.
            let ctx = self.clone();
            tokio::spawn(async move { commands::deliver(&ctx, &id).await });
        }
        verdict
    }

    /// Remembers a call whose driver failed (once more), for [`recovery`] to end.
    fn mark_broken(&self, id: &str) {
        if let Ok(mut broken) = self.broken.lock() {
            broken
                .entry(id.to_string())
                .and_modify(|tries| *tries += 1)
                .or_insert(0);
        }
    }

    /// A call whose end is written (or that is no longer this process's) leaves the list
    /// of broken calls.
    fn forget_broken(&self, id: &str) {
        if let Ok(mut broken) = self.broken.lock() {
            broken.remove(id);
        }
    }

    /// Sends `command` to call `id` if this process drives it; `None` when it does not.
    fn order(&self, id: &str, command: Command) -> Option<oneshot::Receiver<Result<(), Refusal>>> {
        let calls = self.calls.lock().ok()?;
        let live = calls.get(id)?;
        let (order, verdict) = Order::new(command);
        live.orders.send(order).ok()?;
        Some(verdict)
    }
}

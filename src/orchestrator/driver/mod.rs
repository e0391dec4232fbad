//! The driver of one call: the only code that does I/O for it. It feeds the engine its
//! inputs (channel events, API orders, timers, command replies, probes) one at a time and
//! carries out the effects in order: journal writes first (fenced by the lease epoch; a
//! refused write stops the driver at once), media commands queued on the node's Event
//! Socket in the order asked (their replies come back as inputs), timers, replies.
//!
//! Nothing here waits without a bound: commands are bounded by the Event Socket client,
//! channels by the engine's timers, the whole driver by the lease (lost → it stops).

mod agent_journal;
mod event_push;
pub mod journal;
pub mod media;
mod queue_events;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::engine::{Conversation, Effect, Input, Probe, Refusal, Timer};
use super::unit::Unit;
use super::{Ctx, Order};
use crate::esl::{EslError, Execute};
use crate::media::pool::{LegSignal, MediaNode, Registration};
use crate::store::journal::JournalError;

/// How a driver ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The call is over and its end is written.
    Done,
    /// Another process drives the call now: this one stopped without touching it.
    Fenced,
    /// This process's lease lapsed: it stopped without touching the call.
    LeaseLost,
    /// It could not go on (its end could not be written): the call is to be ended from
    /// what is stored.
    Failed(String),
}

type Pending = Pin<Box<dyn Future<Output = Option<Input>> + Send>>;

/// Backoff of a journal write that failed for a passing reason (the database is down).
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

struct Driver {
    ctx: Arc<Ctx>,
    unit: Unit,
    engine: Conversation,
    signals_tx: mpsc::UnboundedSender<LegSignal>,
    follows: Vec<Registration>,
    nodes: HashMap<String, Arc<MediaNode>>,
    timers: BTreeMap<(Instant, Timer), ()>,
    deadlines: HashMap<Timer, Instant>,
    pending: FuturesUnordered<Pending>,
    replies: HashMap<u64, oneshot::Sender<Result<(), Refusal>>>,
    next_order: u64,
    inputs: VecDeque<Input>,
}

/// Drives a call to its end: `first` are its first inputs (`Start`, and for a call whose
/// driver failed, `Abort`).
pub(crate) async fn drive(
    ctx: Arc<Ctx>,
    unit: Unit,
    engine: Conversation,
    mut orders: mpsc::UnboundedReceiver<Order>,
    first: Vec<Input>,
) -> Outcome {
    let (signals_tx, mut signals) = mpsc::unbounded_channel();
    let mut d = Driver {
        ctx,
        unit,
        engine,
        signals_tx,
        follows: Vec::new(),
        nodes: HashMap::new(),
        timers: BTreeMap::new(),
        deadlines: HashMap::new(),
        pending: FuturesUnordered::new(),
        replies: HashMap::new(),
        next_order: 1,
        inputs: first.into(),
    };
    loop {
        while let Some(input) = d.inputs.pop_front() {
            if !d.ctx.lease.valid() {
                return Outcome::LeaseLost;
            }
            let now = d.now();
            let effects = d.engine.step(now, input);
            // Boxed: carrying out effects takes many states (journal writes, lookups) that
            // a call spends a moment in; the waiting call keeps only its own.
            if let Some(outcome) = Box::pin(d.run(effects)).await {
                return outcome;
            }
        }
        let next_timer = d.timers.keys().next().map(|(at, _)| *at);
        tokio::select! {
            Some(signal) = signals.recv() => d.inputs.push_back(match signal {
                LegSignal::Event(leg, event) => Input::Media(leg, *event),
                LegSignal::NodeDown(node) => Input::NodeDown(node),
                LegSignal::NodeUp(node) => Input::NodeUp(node),
                LegSignal::Unlisted(leg) => Input::Unlisted(leg),
                LegSignal::Refused(leg, run) => Input::Refused(leg, run),
                LegSignal::OriginateFailed(leg, cause) => Input::OriginateFailed(leg, cause),
            }),
            Some(order) = orders.recv() => {
                let token = d.next_order;
                d.next_order += 1;
                d.replies.insert(token, order.reply);
                d.inputs.push_back(Input::Command(token, *order.command));
            }
            Some(input) = d.pending.next(), if !d.pending.is_empty() => {
                d.inputs.extend(input);
            }
            _ = sleep_until(next_timer) => {
                let now = Instant::now();
                while let Some(entry) = d.timers.first_entry() {
                    let (at, timer) = *entry.key();
                    if at > now {
                        break;
                    }
                    entry.remove();
                    d.deadlines.remove(&timer);
                    d.inputs.push_back(Input::Timer(timer));
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Now on the clock of the call's first leg's node.
    fn now(&self) -> i64 {
        let node = self
            .engine
            .core
            .legs
            .first()
            .map(|l| l.node.as_str())
            .unwrap_or_default();
        self.ctx.media.now_ms_on(node)
    }

    /// Carries out one step's effects in order; `Some` when the driver is done.
    async fn run(&mut self, effects: Vec<Effect>) -> Option<Outcome> {
        for effect in effects {
            if !self.ctx.lease.valid() {
                return Some(Outcome::LeaseLost);
            }
            match effect {
                Effect::Journal(writes) => match self.journal(writes).await {
                    Ok(()) => {}
                    Err(JournalError::Fenced) => return Some(Outcome::Fenced),
                    Err(e) => {
                        // The engine went on as if written: it is given up, and the call is
                        // rebuilt from what is stored and ended ([`super::recovery`]).
                        for (_, reply) in self.replies.drain() {
                            let _ = reply.send(Err(Refusal::NoMedia));
                        }
                        return Some(Outcome::Failed(format!("a journal write was refused: {e}")));
                    }
                },
                Effect::Follow(leg) => self.follow(leg),
                Effect::Originate(leg, dial) => self.originate(leg, &dial).await,
                Effect::Execute { leg, app, run } => self.execute(leg, &app, run).await,
                Effect::Media(leg, command, None) => {
                    if let Some(node) = self.leg_node(leg) {
                        let line = media::api(&self.engine.core.legs[leg].channel, &command);
                        let sent = node.client.send_api_detached(&line, |e| {
                            tracing::debug!(error = %e, "media command failed");
                        });
                        if let Err(e) = sent.await {
                            tracing::debug!(error = %e, "media command not sent");
                        }
                    }
                }
                Effect::Media(leg, command, Some(token)) => {
                    let uuid = self.engine.core.legs[leg].channel.clone();
                    let line = media::api(&uuid, &command);
                    self.api(leg, line, move |out| {
                        Some(Input::Reply(token, out.is_ok_and(|o| media::succeeded(&o))))
                    })
                    .await;
                }
                Effect::Probe(leg) => {
                    let uuid = self.engine.core.legs[leg].channel.clone();
                    self.api(leg, media::probe_command(&uuid), move |out| {
                        Some(Input::Probed(
                            leg,
                            out.map_or(Probe::Unknown, |o| media::probe(&o)),
                        ))
                    })
                    .await;
                }
                Effect::SetTimer(timer, after_ms) => {
                    if let Some(at) = self.deadlines.remove(&timer) {
                        self.timers.remove(&(at, timer));
                    }
                    // A flow's own timers are the call's, on the media clock.
                    let after_ms = match timer.is_flow() {
                        true => self.ctx.media.real_ms(after_ms),
                        false => after_ms,
                    };
                    let at = Instant::now() + Duration::from_millis(after_ms.max(0) as u64);
                    self.timers.insert((at, timer), ());
                    self.deadlines.insert(timer, at);
                }
                Effect::CancelTimer(timer) => {
                    if let Some(at) = self.deadlines.remove(&timer) {
                        self.timers.remove(&(at, timer));
                    }
                }
                Effect::Reply(token, verdict) => {
                    if let Some(reply) = self.replies.remove(&token) {
                        let _ = reply.send(verdict);
                    }
                }
                Effect::Queue(signal) => {
                    let numbers = match &self.engine.flow {
                        super::flows::Flow::Agent(f) => {
                            (f.plan().did.clone(), f.plan().user_number.clone())
                        }
                        _ => Default::default(),
                    };
                    self.ctx.acd.send(crate::acd::hub::HubInput::Caller {
                        app_id: self.unit.first.app_id.clone(),
                        conversation: self.unit.id.clone(),
                        signal,
                        numbers,
                    });
                }
                Effect::Finished => return Some(Outcome::Done),
            }
        }
        None
    }

    /// Writes one step's writes, retrying while the database is unreachable (the lease
    /// bounds how long: once it lapses the driver stops).
    async fn journal(&mut self, writes: Vec<super::engine::Write>) -> Result<(), JournalError> {
        let ends = writes
            .iter()
            .any(|w| matches!(w, super::engine::Write::Finish { .. }));
        if ends {
            // A notice's result goes to the notify URL as it is now.
            self.unit.app = self
                .ctx
                .app(&self.unit.first.account_sid, &self.unit.first.app_id)
                .await;
        }
        let tz = self.ctx.settings.timezone;
        let moves = queue_events::queue_events(&self.unit, &self.engine, &writes, tz);
        let pushes = event_push::conversation_pushes(&self.unit, &self.engine, &writes, &moves, tz);
        let mut write = journal::call_write(&self.unit, &self.engine, writes, tz);
        if !pushes.is_empty() {
            write
                .entries
                .push(crate::store::journal::Entry::Pushes(pushes));
        }
        let mut delay = RETRY_FIRST;
        loop {
            match self.ctx.store.journal(write.clone()).await {
                Err(e) if e.is_transient() && self.ctx.lease.valid() => {
                    tracing::warn!(call = %self.unit.id, error = %e, "journal write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Ok(()) => {
                    // Written: the queue's monitors may hear of the caller's moves.
                    for (queue, data) in moves {
                        self.ctx.acd.send(crate::acd::hub::HubInput::QueueEvent {
                            app_id: self.unit.first.app_id.clone(),
                            queue,
                            data,
                        });
                    }
                    if ends {
                        let kind = self.unit.kind.as_str();
                        crate::telemetry::metrics::metrics().call_ended(kind);
                        tracing::info!(call = %self.unit.id, kind, "call ended; CDR written");
                    }
                    return Ok(());
                }
                result => return result,
            }
        }
    }

    fn follow(&mut self, leg: usize) {
        if let Some(node) = self.leg_node(leg) {
            let uuid = &self.engine.core.legs[leg].channel;
            let reg = node.register(uuid, leg, self.unit.generation, self.signals_tx.clone());
            self.follows.push(reg);
        }
    }

    /// Leg `leg`'s node, if it is known (looked up in the pool once per driver).
    fn leg_node(&mut self, leg: usize) -> Option<Arc<MediaNode>> {
        let name = &self.engine.core.legs[leg].node;
        if let Some(node) = self.nodes.get(name) {
            return Some(node.clone());
        }
        let node = self.ctx.media.node(name)?;
        self.nodes.insert(name.clone(), node.clone());
        Some(node)
    }

    fn dialing(&self) -> media::Dialing<'_> {
        media::Dialing {
            template: &self.ctx.settings.dial_string,
            device_template: &self.ctx.settings.agent_dial_string,
            sip_domain: &self.ctx.settings.sip_domain,
            installation: &self.ctx.settings.installation,
            max_secs: self.ctx.settings.channel_max_secs,
        }
    }

    async fn originate(&mut self, leg: usize, dial: &super::engine::Dial) {
        let Some(node) = self.leg_node(leg) else {
            self.inputs
                .push_back(Input::OriginateFailed(leg, crate::cdr::MEDIA_LOST.into()));
            return;
        };
        let ctx = self.ctx.clone();
        let route = device_route(&ctx, dial, &node.name).await;
        let mut dialing = self.dialing();
        if let Some(route) = &route {
            dialing.device_template = route;
        }
        let uuid = &self.engine.core.legs[leg].channel;
        let command = media::originate(uuid, dial, &dialing);
        let tx = self.signals_tx.clone();
        // The job's result comes straight from the node's connection; only a failure
        // matters (the channel's own events tell the rest).
        let sent = node
            .client
            .send_bgapi_with(&command, uuid, move |result| {
                let cause = match result {
                    Ok(out) if out.starts_with("+OK") => return,
                    Ok(out) | Err(EslError::Refused(out)) => cause_of(&out),
                    Err(e) => {
                        tracing::warn!(error = %e, "originate got no answer");
                        crate::cdr::MEDIA_LOST.into()
                    }
                };
                let _ = tx.send(LegSignal::OriginateFailed(leg, cause));
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "originate could not be sent");
            self.inputs
                .push_back(Input::OriginateFailed(leg, crate::cdr::MEDIA_LOST.into()));
        }
    }

    async fn execute(&mut self, leg: usize, app: &super::engine::App, run: u32) {
        let target = match app {
            super::engine::App::Bridge(target, _) => {
                Some(self.engine.core.legs[*target].channel.clone())
            }
            _ => None,
        };
        let node = self.leg_node(leg);
        let route = match (app, &node) {
            (super::engine::App::Bridge(_, dial), Some(node)) => {
                let ctx = self.ctx.clone();
                device_route(&ctx, dial, &node.name).await
            }
            _ => None,
        };
        let mut dialing = self.dialing();
        if let Some(route) = &route {
            dialing.device_template = route;
        }
        let (name, arg) = media::application(app, target.as_deref(), &dialing);
        let event_uuid = media::run_uuid(self.unit.generation, run);
        let Some(node) = node else {
            self.inputs.push_back(Input::Refused(leg, run));
            return;
        };
        let exec = Execute {
            app: name,
            arg: &arg,
            event_lock: true,
            event_uuid: Some(&event_uuid),
        };
        let tx = self.signals_tx.clone();
        let sent = node
            .client
            .send_execute_detached(&self.engine.core.legs[leg].channel, exec, move |_| {
                let _ = tx.send(LegSignal::Refused(leg, run));
            })
            .await;
        if sent.is_err() {
            self.inputs.push_back(Input::Refused(leg, run));
        }
    }

    /// Sends an `api` command on leg `leg`'s node; `then` turns its outcome into an input.
    async fn api(
        &mut self,
        leg: usize,
        line: String,
        then: impl FnOnce(Result<String, EslError>) -> Option<Input> + Send + 'static,
    ) {
        let Some(node) = self.leg_node(leg) else {
            self.inputs.extend(then(Err(EslError::NotConnected)));
            return;
        };
        match node.client.send_api(&line).await {
            Ok(out) => self.pending.push(Box::pin(async move { then(out.await) })),
            Err(e) => self.inputs.extend(then(Err(e))),
        }
    }
}

/// `-ERR USER_BUSY\n` → `USER_BUSY`.
fn cause_of(body: &str) -> String {
    let cause = body.trim().trim_start_matches("-ERR").trim();
    if cause.is_empty() {
        "NORMAL_TEMPORARY_FAILURE".into()
    } else {
        cause.to_string()
    }
}

/// How node `from` reaches an agent's device registered on another node: through
/// that node's internal profile (`sofia/internal/{sipNumber}@{its sip address}`, agents'
/// contract §11.3). `None`: the agent dial string as configured (the device is on
/// `from`, or nowhere known).
async fn device_route(ctx: &super::Ctx, dial: &super::engine::Dial, from: &str) -> Option<String> {
    if dial.endpoint != crate::orchestrator::engine::Endpoint::Device {
        return None;
    }
    let domain = &ctx.settings.sip_domain;
    let held = ctx.media.device_node(&dial.to, domain).await.ok()??;
    if held == from {
        return None;
    }
    let via = ctx.media.node(&held)?;
    Some(format!("sofia/internal/{{sipNumber}}@{}", via.sip))
}

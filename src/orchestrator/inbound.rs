//! Inbound calls (agents' contract §9, §11.1): every replica hears each DID channel park
//! on every node; the one whose claim lands handles it, so each call is handled exactly
//! once. A routed number's call becomes a conversation ([`super::flows::agent`]) whose
//! plan — the route, its prompts as files, the queues it can reach — is resolved here,
//! once. A number that no application routes (or that is granted to no account) is
//! refused with `UNALLOCATED_NUMBER`, as FreeSWITCH refuses an unknown number.

use crate::agents::events::{CallEvent, CallEventName, CallView};
use crate::agents::push::{EventKind, EventPush, PushTarget, conversation_key};
use crate::domain::agent_call::{CallSubtype, CallType};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Ctx;
use super::engine::Input;
use super::flows::StoredAgentConversation;
use super::flows::agent::{
    AnnouncePlan, CLAIMED_VAR, MAX_OVERFLOWS, Menu, Outbound, Plan, QueuePlan, Route, Step, Target,
};
use super::prompts::Builtin;
use super::unit::FREESWITCH_MUSIC_ON_HOLD;
use crate::domain::PromptName;
use crate::domain::route::{Ending, Route as DomainRoute, Step as DomainStep};
use crate::media::pool::{INSTALL_VAR, ParkedCall};
use crate::store::StoreError;
use crate::store::applications::ApplicationRecord;
use crate::store::inbound::NewInbound;
use crate::store::numbers::NumberRecord;

/// Tries of a database step for one parked call, and the first pause between them
/// (doubled each time): the event is heard once, so a short outage must not lose it.
const TRIES: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Starts handling the DID channels parking on the media servers.
pub(crate) fn start(ctx: Arc<Ctx>) {
    let mut parked = ctx.media.parked_calls();
    tokio::spawn(async move {
        while let Some(call) = parked.recv().await {
            tokio::spawn(handle(ctx.clone(), call));
        }
    });
}

/// Runs `step` until it succeeds or a permanent error or [`TRIES`] failures.
async fn retried<T, F, Fut>(call: &ParkedCall, what: &str, mut step: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=TRIES {
        match step().await {
            Ok(value) => return Some(value),
            Err(e) if e.is_transient() && attempt < TRIES => {
                tracing::warn!(channel = %call.uuid, error = %e, what, "inbound call: retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(channel = %call.uuid, did = %call.did, error = %e, what, "inbound call left unhandled");
                return None;
            }
        }
    }
    None
}

async fn handle(ctx: Arc<Ctx>, call: ParkedCall) {
    // A replica that is stopping leaves the call to the others.
    if ctx.placing_stopped.load(Ordering::Acquire) {
        return;
    }
    if call.agent_dial.is_some() {
        return phone_dial(ctx, call).await;
    }
    let Some(route) = retried(&call, "route lookup", || ctx.store.did_route(&call.did)).await
    else {
        return;
    };
    match route {
        Some(record) => open(ctx, call, record).await,
        None => refuse(ctx, call).await,
    }
}

/// Claims a routed call and drives its conversation.
async fn open(ctx: Arc<Ctx>, call: ParkedCall, record: NumberRecord) {
    if !ctx.lease.valid() {
        // Without a lease this process may not drive calls: the others claim it.
        return;
    }
    let app = ctx.app(&record.account_sid, &record.app_id).await;
    let plan = plan_of(&ctx, &call, &record, app.as_deref()).await;
    let now = chrono::Utc::now();
    let mut new = NewInbound {
        conversation_id: ctx.ids.conversation(now).to_string(),
        leg_id: call
            .call_sid
            .clone()
            .unwrap_or_else(|| ctx.ids.call(now).to_string()),
        request_id: ctx.ids.request(now).to_string(),
        account_sid: record.account_sid.clone(),
        app_id: record.app_id.clone(),
        params: serde_json::to_string(&StoredAgentConversation::Inbound {
            inbound: Box::new(plan),
        })
        .unwrap_or_default(),
        epoch: ctx.epoch(),
        created_at: ctx.media.now_ms_on(&call.node),
        arrival: None,
    };
    new.arrival = app
        .and_then(|a| a.push_target())
        .map(|target| arrival(target, &new, &call, ctx.settings.timezone));
    let claimed = retried(&call, "claim", || {
        ctx.store.open_inbound(&call, &ctx.instance, &new)
    })
    .await;
    if claimed != Some(true) {
        return;
    }
    tracing::info!(channel = %call.uuid, did = %call.did, conversation = %new.conversation_id, "inbound call claimed");
    mark(&ctx, &call, &new.conversation_id).await;
    let built = ctx.inbound(new.user_leg(&call), &call.channel_name).await;
    ctx.launch(built, vec![Input::Start], None);
}

/// The caller leg's `initiated` (callSubtype 1, no agent) for the application's
/// `eventUrl`, written with the claim.
fn arrival(
    target: PushTarget,
    new: &NewInbound,
    call: &ParkedCall,
    tz: chrono_tz::Tz,
) -> EventPush {
    let event = CallEvent {
        name: CallEventName::Initiated,
        call: CallView {
            agent_no: "",
            agent_number: "",
            call_type: CallType::DialIn,
            user_number: &call.caller,
            queue_sid: "",
            did_number: &call.did,
        },
        app_id: &new.app_id,
        conversation_sid: &new.conversation_id,
        call_sid: &new.leg_id,
        subtype: CallSubtype::User,
        bridged: false,
        failed_cause: "",
        completed_cause: "",
        co_agent_no: "",
        monitor_mode: "",
        user_data: "",
        at_ms: new.created_at,
        channel: &call.channel_name,
    };
    EventPush {
        target,
        ordering_key: conversation_key(&new.conversation_id),
        kind: EventKind::Call,
        data: event.data(tz).to_string(),
        channel: call.channel_name.clone(),
    }
}

/// An agent's phone dialling out (§11.2): claimed here, then written and driven as the
/// agent's call by the agents' side (which hangs it up if the agent may not call now).
async fn phone_dial(ctx: Arc<Ctx>, call: ParkedCall) {
    if !ctx.lease.valid() {
        return;
    }
    let claimed = retried(&call, "claim", || {
        ctx.store.claim_inbound(&call, &ctx.instance)
    })
    .await;
    if claimed != Some(true) {
        return;
    }
    let sink = ctx.phone_dials.lock().ok().and_then(|s| s.clone());
    match sink {
        Some(sink) => {
            if let Err(unsent) = sink.send(call) {
                reject(&ctx, &unsent.0, "CALL_REJECTED").await;
            }
        }
        None => reject(&ctx, &call, "CALL_REJECTED").await,
    }
}

/// Marks claimed channel `call` as conversation `conversation`'s (a later park opens
/// nothing) and as this installation's, so its events pass the node's event filter from
/// now on.
pub(super) async fn mark(ctx: &Ctx, call: &ParkedCall, conversation: &str) {
    let Some(node) = ctx.media.node(&call.node) else {
        return;
    };
    for (name, value) in [
        (CLAIMED_VAR, conversation),
        (INSTALL_VAR, ctx.settings.installation.as_str()),
    ] {
        let set = format!("uuid_setvar {} {name} {value}", call.uuid);
        if let Err(e) = node.client.api(&set).await {
            tracing::warn!(channel = %call.uuid, error = %e, "could not mark a claimed call");
        }
    }
}

/// Hangs up parked channel `call` with `cause`.
pub(super) async fn reject(ctx: &Ctx, call: &ParkedCall, cause: &str) {
    let Some(node) = ctx.media.node(&call.node) else {
        return;
    };
    let kill = format!("uuid_kill {} {cause}", call.uuid);
    if let Err(e) = node.client.api(&kill).await {
        tracing::warn!(channel = %call.uuid, error = %e, cause, "could not hang up a parked call");
    }
}

/// Refuses a call to a number nobody routes.
async fn refuse(ctx: Arc<Ctx>, call: ParkedCall) {
    let claimed = retried(&call, "claim", || {
        ctx.store.claim_inbound(&call, &ctx.instance)
    })
    .await;
    if claimed != Some(true) {
        return;
    }
    tracing::info!(channel = %call.uuid, did = %call.did, caller = %call.caller, "inbound call to a number without a route: refused");
    reject(&ctx, &call, "UNALLOCATED_NUMBER").await;
}

/// The conversation's plan: the route with its prompts as files, and every queue it can
/// reach (through menu keys, fallbacks and up to [`MAX_OVERFLOWS`] overflows).
async fn plan_of(
    ctx: &Ctx,
    call: &ParkedCall,
    record: &NumberRecord,
    app: Option<&ApplicationRecord>,
) -> Plan {
    let resolver = Resolver::new(ctx, &record.app_id, app);
    let routing = &record.routing;
    let route = match &routing.route {
        DomainRoute::Step(step) => Route::Step(resolver.step(step).await),
        DomainRoute::Menu(menu) => {
            let mut keys = std::collections::BTreeMap::new();
            for (key, step) in &menu.keys {
                keys.insert(*key, resolver.step(step).await);
            }
            Route::Menu(Menu {
                prompt: resolver.file(Some(&menu.prompt)).await,
                keys,
                timeout_secs: menu.timeout_secs,
                tries: menu.tries,
                default: resolver.step(&menu.default).await,
            })
        }
    };
    let first = routing
        .names()
        .queues
        .iter()
        .map(|q| q.to_string())
        .collect();
    let queues = resolver.queues(first).await;
    let welcome = ctx
        .prompt(&record.app_id, routing.welcome_prompt.as_ref())
        .await;
    Plan {
        did: call.did.clone(),
        user_number: call.caller.clone(),
        welcome,
        route,
        queues,
        failure: resolver.failure.clone(),
        outbound: None,
        agent_ring_secs: resolver.agent_ring_secs,
        call_out: None,
    }
}

impl Ctx {
    /// The plan of a backend outbound call (§3.6) of application `app` to `user_number`:
    /// once answered, the user waits for `target`.
    pub(crate) async fn outbound_plan(
        &self,
        app: &ApplicationRecord,
        user_number: &str,
        target: Target,
        outbound: Outbound,
    ) -> Plan {
        let resolver = Resolver::new(self, &app.app_id, Some(app));
        let (step, first) = match target {
            Target::Queue(sid) => (Step::Queue(sid.clone()), vec![sid]),
            Target::Agent(agent_no) => (
                Step::Agent {
                    agent_no,
                    fallback: Box::new(Step::Hangup(resolver.failure.clone())),
                },
                Vec::new(),
            ),
        };
        Plan {
            did: String::new(),
            user_number: user_number.to_string(),
            welcome: None,
            route: Route::Step(step),
            queues: resolver.queues(first).await,
            failure: resolver.failure.clone(),
            outbound: Some(outbound),
            agent_ring_secs: resolver.agent_ring_secs,
            call_out: None,
        }
    }

    /// Queue `queue` of application `app` and the queues its overflows reach, resolved
    /// for a caller transferred to it.
    pub(crate) async fn queue_plans(
        &self,
        app: &ApplicationRecord,
        queue: &str,
    ) -> std::collections::BTreeMap<String, QueuePlan> {
        let resolver = Resolver::new(self, &app.app_id, Some(app));
        resolver.queues(vec![queue.to_string()]).await
    }
}

/// Turns a stored route's steps into the plan's, prompts as files.
struct Resolver<'a> {
    ctx: &'a Ctx,
    app_id: &'a str,
    /// The built-in failure tone.
    failure: String,
    /// The application's musicOnHold, if it set one.
    app_music: Option<PromptName>,
    /// The application's agentRingTimeout.
    agent_ring_secs: u32,
}

impl<'a> Resolver<'a> {
    fn new(ctx: &'a Ctx, app_id: &'a str, app: Option<&ApplicationRecord>) -> Self {
        Resolver {
            ctx,
            app_id,
            failure: ctx.prompts.builtin(Builtin::Failure),
            app_music: app
                .map(|a| a.cti.music_on_hold.clone())
                .filter(|m| !m.is_empty())
                .and_then(|m| PromptName::parse("musicOnHold", &m).ok()),
            agent_ring_secs: app.map_or(20, |a| a.cti.agent_ring_timeout.clamp(5, 120) as u32),
        }
    }

    /// The queues `first` names and those their overflows reach (up to
    /// [`MAX_OVERFLOWS`] hops), by queueSid; a queue that is gone is left out.
    async fn queues(&self, mut next: Vec<String>) -> std::collections::BTreeMap<String, QueuePlan> {
        let mut queues = std::collections::BTreeMap::new();
        for _ in 0..=MAX_OVERFLOWS {
            let mut later = Vec::new();
            for sid in next.drain(..) {
                if queues.contains_key(&sid) {
                    continue;
                }
                let found = match self.ctx.store.find_queue(self.app_id, &sid).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(error = %e, queue = %sid, "queue unreadable; callers who reach it hear the failure tone");
                        None
                    }
                };
                let Some(queue) = found else { continue };
                let settings = &queue.settings;
                let overflow = self.ending(&settings.overflow).await;
                if let Step::Queue(other) = &overflow {
                    later.push(other.clone());
                }
                let music_name = settings.music_on_hold.as_ref().or(self.app_music.as_ref());
                let music = match self.ctx.prompt(self.app_id, music_name).await {
                    Some(path) => path,
                    None => FREESWITCH_MUSIC_ON_HOLD.into(),
                };
                queues.insert(
                    sid,
                    QueuePlan {
                        ring_timeout_secs: settings.ring_timeout_secs,
                        max_wait_secs: settings.max_wait_secs,
                        overflow,
                        music,
                        name: settings.name.clone(),
                        announce: match &settings.announce {
                            Some(a) => Some(AnnouncePlan {
                                every_secs: a.every_secs,
                                prompt: self.ctx.prompt(self.app_id, Some(&a.prompt)).await,
                            }),
                            None => None,
                        },
                    },
                );
            }
            next = later;
        }
        queues
    }
}

impl Resolver<'_> {
    async fn file(&self, prompt: Option<&PromptName>) -> String {
        match self.ctx.prompt(self.app_id, prompt).await {
            Some(path) => path,
            None => self.failure.clone(),
        }
    }

    async fn ending(&self, ending: &Ending) -> Step {
        match ending {
            Ending::Queue(sid) => Step::Queue(sid.clone()),
            Ending::Hangup(prompt) => Step::Hangup(self.file(prompt.as_ref()).await),
        }
    }

    async fn step(&self, step: &DomainStep) -> Step {
        match step {
            DomainStep::Queue(sid) => Step::Queue(sid.clone()),
            DomainStep::Agent { agent_no, fallback } => Step::Agent {
                agent_no: agent_no.as_str().to_string(),
                fallback: Box::new(self.ending(fallback).await),
            },
            DomainStep::Hangup(prompt) => Step::Hangup(self.file(prompt.as_ref()).await),
        }
    }
}

//! The matchmaker at work (agents' contract §9): one task per process runs an [`Acd`] per
//! application for the inbound callers this process drives. Callers' conversations tell it
//! who waits ([`QueueSignal`]); agents' changes (from any replica, through the agent bus)
//! tell it who may take an offer. An offer first claims the agent (its session moves to
//! `ringing` under its lock, so no two callers of any replica get the same agent), then
//! goes to the caller's conversation, which dials the agent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::dispatch::{Acd, Effect, Input};
use crate::agents::Agents;
use crate::orchestrator::Orchestrator;
use crate::orchestrator::flows::agent::{JoinType, QueueOrder, QueueSignal, Target};
use crate::store::StoreError;

/// The prefix of an agent's own line (backend outbound users waiting for that agent);
/// queueSids never start with it.
const OWN_LINE: &str = "@";

/// The line of the users waiting for agent `agent_no` alone.
fn own_line(agent_no: &str) -> String {
    format!("{OWN_LINE}{agent_no}")
}

/// How long callers taken over are gathered before they join (a stopped process's calls
/// are taken over within moments of each other).
const RESUME_GATHER: Duration = Duration::from_secs(1);

/// How often the agents of applications with waiting callers are read again (a notice
/// of a change can be missed).
const REFRESH: Duration = Duration::from_secs(2);

/// How soon an agent left to an older caller of another replica is looked at again (in
/// case that replica offers the caller another agent).
const DEFERRED_RETRY: Duration = Duration::from_millis(250);

/// The longest an agent is left to older callers of other replicas: past it, this
/// replica's callers get it as if no replica were older (a replica that never offers its
/// caller must not keep an agent idle).
const MAX_DEFERRED: Duration = Duration::from_secs(30);

/// The most inputs handled as one batch.
const MAX_BATCH: usize = 512;

/// What a batch of inputs needs of the store, read once for all of them (what is missing
/// is read when its input is handled).
#[derive(Default)]
struct Reads {
    /// The agents whose change is in the batch: the ready ones' offer data, `None` for
    /// the others.
    ready: HashMap<(String, String), Option<crate::store::acd::ReadyAgent>>,
    /// The queues callers of the batch join: whether a member is logged in.
    staffed: HashMap<(String, String), bool>,
}

/// What the matchmaker hears.
#[derive(Debug)]
pub enum HubInput {
    /// An inbound conversation of this process says something.
    Caller {
        /// Its application.
        app_id: String,
        /// `CV…`.
        conversation: String,
        /// What.
        signal: QueueSignal,
        /// The DID and the caller's number (what the agent's device shows).
        numbers: (String, String),
    },
    /// A queueEvent of a caller of this process, written: published to the queue's
    /// monitors on every replica.
    QueueEvent {
        /// Its application.
        app_id: String,
        /// The queue.
        queue: String,
        /// The caller's fields.
        data: serde_json::Value,
    },
    /// An offer the matchmaker made could not be carried out (the agent could not be
    /// claimed, or the caller no longer waits).
    OfferFailed {
        /// Its application.
        app_id: String,
        /// The caller.
        caller: String,
        /// The agent.
        agent: String,
        /// Why.
        why: Unmade,
    },
    /// An agent's session changed (on any replica).
    AgentChanged {
        /// Its application.
        app_id: String,
        /// The agent.
        agent_no: String,
        /// When this process heard of it.
        heard: tokio::time::Instant,
    },
}

/// Where the matchmaker's inputs go.
#[derive(Debug, Clone)]
pub struct AcdHandle(mpsc::UnboundedSender<HubInput>);

impl AcdHandle {
    /// A handle and the receiver [`run`] consumes.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<HubInput>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (AcdHandle(tx), rx)
    }

    /// Tells the matchmaker (dropped when it is gone: the process is stopping).
    pub fn send(&self, input: HubInput) {
        let _ = self.0.send(input);
    }
}

/// A caller the matchmaker knows.
struct Caller {
    did: String,
    user_number: String,
    /// When it joined its line, Unix ms.
    join_ms: i64,
    /// The agent it is offered first (its last agent), whatever waits elsewhere.
    last_agent: Option<String>,
}

impl Caller {
    /// A caller joining a line at `join_ms`, with the DID and its number.
    fn joined(
        (did, user_number): (String, String),
        join_ms: i64,
        last_agent: Option<String>,
    ) -> Self {
        Caller {
            did,
            user_number,
            join_ms,
            last_agent,
        }
    }
}

/// Why an offer was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmade {
    /// The agent could not be claimed, or the caller no longer waits.
    Failed,
    /// A caller of another replica waited longer for the agent: it is theirs.
    Deferred,
}

/// One application's matchmaker.
#[derive(Default)]
struct App {
    acd: Acd,
    callers: HashMap<String, Caller>,
    /// Queues whose strategy the matchmaker was given, with their last-agent window (ms)
    /// when they route to the last agent.
    rules: HashMap<String, Option<i64>>,
    /// Agents it believes available.
    available: HashSet<String>,
    /// Agents left to older callers of other replicas, since when (until they are taken).
    deferred_since: HashMap<String, tokio::time::Instant>,
}

struct Hub {
    agents: Arc<Agents>,
    orchestrator: Orchestrator,
    /// Carries out offers, each in a task of its own.
    offerer: Offerer,
    /// This matchmaker's own inputs (an offer that failed comes back through it).
    back: AcdHandle,
    apps: HashMap<String, App>,
    /// Callers taken over from a stopped process, held back together for a moment and
    /// then joined in their join order, so the first taken over does not jump the line.
    resumed: Vec<HubInput>,
    /// When the held-back callers join.
    resume_at: Option<tokio::time::Instant>,
    /// The agent whose change is being handled and when it was heard of: an offer it
    /// gets meanwhile is timed.
    became_ready: Option<(String, tokio::time::Instant)>,
    /// queueEvents to publish, in order, aside from the matchmaking.
    published: mpsc::UnboundedSender<(String, String, serde_json::Value)>,
}

/// Runs the matchmaker of this process until the handle's senders are gone.
pub async fn run(
    (back, mut inputs): (AcdHandle, mpsc::UnboundedReceiver<HubInput>),
    agents: Arc<Agents>,
    orchestrator: Orchestrator,
) {
    let (published, mut to_publish) =
        mpsc::unbounded_channel::<(String, String, serde_json::Value)>();
    let publisher = agents.clone();
    tokio::spawn(async move {
        // One at a time, so monitors hear a caller's moves in the order they happened.
        while let Some((app_id, queue, data)) = to_publish.recv().await {
            publisher.publish_queue_event(&app_id, &queue, &data).await;
        }
    });
    let mut hub = Hub {
        offerer: Offerer {
            agents: agents.clone(),
            orchestrator: orchestrator.clone(),
        },
        back,
        became_ready: None,
        published,
        agents,
        orchestrator,
        apps: HashMap::new(),
        resumed: Vec::new(),
        resume_at: None,
    };
    let mut refresh = tokio::time::interval(REFRESH);
    loop {
        let resume_at = hub.resume_at;
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => {
                    // What else is queued is handled with it, its reads made together.
                    let mut batch = vec![input];
                    while batch.len() < MAX_BATCH {
                        match inputs.try_recv() {
                            Ok(input) => batch.push(input),
                            Err(_) => break,
                        }
                    }
                    hub.on_batch(batch).await
                }
                None => return,
            },
            _ = async { tokio::time::sleep_until(resume_at.unwrap_or_else(tokio::time::Instant::now)).await }, if resume_at.is_some() => {
                hub.resume_at = None;
                let mut held = std::mem::take(&mut hub.resumed);
                held.sort_by_key(HubInput::join_ms);
                for input in held {
                    hub.on(input, &Reads::default()).await;
                }
            }
            _ = refresh.tick() => hub.refresh_all().await,
        }
    }
}

impl HubInput {
    /// Whether it is a caller taken over from another process joining again.
    fn is_resumed_join(&self) -> bool {
        matches!(
            self,
            HubInput::Caller {
                signal: QueueSignal::Join { resumed: true, .. },
                ..
            }
        )
    }

    /// A join's time (others: 0).
    fn join_ms(&self) -> i64 {
        match self {
            HubInput::Caller {
                signal: QueueSignal::Join { join_ms, .. },
                ..
            } => *join_ms,
            _ => 0,
        }
    }
}

impl Hub {
    /// Handles `batch` in order, with what its inputs need read in a few queries.
    async fn on_batch(&mut self, batch: Vec<HubInput>) {
        let mut now = Vec::with_capacity(batch.len());
        for input in batch {
            if input.is_resumed_join() {
                self.resume_at
                    .get_or_insert_with(|| tokio::time::Instant::now() + RESUME_GATHER);
                self.resumed.push(input);
                continue;
            }
            // A held-back caller that left meanwhile does not join.
            if let HubInput::Caller { conversation, .. } = &input {
                self.resumed.retain(
                    |h| !matches!(h, HubInput::Caller { conversation: c, .. } if c == conversation),
                );
            }
            now.push(input);
        }
        let reads = self.read_for(&now).await;
        for input in now {
            self.on(input, &reads).await;
        }
    }

    /// Reads what `inputs` need: the agents whose change they tell of and the queues
    /// their callers join, in one query each per application.
    async fn read_for(&self, inputs: &[HubInput]) -> Reads {
        let mut agents: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut queues: HashMap<&str, HashSet<&str>> = HashMap::new();
        for input in inputs {
            match input {
                HubInput::AgentChanged {
                    app_id, agent_no, ..
                } if self.apps.contains_key(app_id) => {
                    agents.entry(app_id).or_default().insert(agent_no);
                }
                HubInput::Caller {
                    app_id,
                    signal:
                        QueueSignal::Join {
                            target: Target::Queue(queue),
                            ..
                        },
                    ..
                } => {
                    queues.entry(app_id).or_default().insert(queue);
                }
                _ => {}
            }
        }
        let mut reads = Reads::default();
        let store = self.agents.store();
        for (app_id, wanted) in agents {
            let wanted: Vec<&str> = wanted.into_iter().collect();
            match store.ready_agents_among(app_id, &wanted).await {
                Ok(ready) => {
                    for agent_no in &wanted {
                        reads
                            .ready
                            .insert((app_id.to_string(), agent_no.to_string()), None);
                    }
                    for agent in ready {
                        let key = (app_id.to_string(), agent.agent_no.clone());
                        reads.ready.insert(key, Some(agent));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "matchmaker: agents unreadable"),
            }
        }
        for (app_id, wanted) in queues {
            let wanted: Vec<&str> = wanted.into_iter().collect();
            match store.staffed_among(app_id, &wanted).await {
                Ok(staffed) => {
                    for queue in wanted {
                        let key = (app_id.to_string(), queue.to_string());
                        reads.staffed.insert(key, staffed.contains(queue));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "matchmaker: members unreadable"),
            }
        }
        reads
    }

    async fn on(&mut self, input: HubInput, reads: &Reads) {
        match input {
            HubInput::Caller {
                app_id,
                conversation,
                signal,
                numbers,
            } => {
                self.caller(app_id, conversation, signal, numbers, reads)
                    .await
            }
            HubInput::QueueEvent {
                app_id,
                queue,
                data,
            } => {
                let _ = self.published.send((app_id, queue, data));
            }
            HubInput::OfferFailed {
                app_id,
                caller,
                agent,
                why,
            } => {
                if let Some(app) = self.apps.get_mut(&app_id) {
                    app.available.remove(&agent);
                }
                if why == Unmade::Deferred {
                    self.defer(&app_id, &agent);
                }
                let unavailable = Input::Unavailable {
                    agent: agent.clone(),
                };
                self.step(&app_id, unavailable).await;
                self.step(&app_id, Input::Missed { caller, agent }).await;
            }
            HubInput::AgentChanged {
                app_id,
                agent_no,
                heard,
            } => {
                if self.apps.contains_key(&app_id) {
                    let key = (app_id.clone(), agent_no.clone());
                    let ready = match reads.ready.get(&key) {
                        Some(ready) => Ok(ready.clone()),
                        None => self
                            .agents
                            .store()
                            .ready_agents_among(&app_id, &[agent_no.as_str()])
                            .await
                            .map(|mut ready| ready.pop()),
                    };
                    self.became_ready = Some((agent_no.clone(), heard));
                    match ready {
                        Ok(ready) => self.believe(&app_id, &agent_no, ready).await,
                        Err(e) => tracing::warn!(error = %e, "matchmaker: agent unreadable"),
                    }
                    self.became_ready = None;
                }
            }
        }
    }

    async fn caller(
        &mut self,
        app_id: String,
        conversation: String,
        signal: QueueSignal,
        (did, user_number): (String, String),
        reads: &Reads,
    ) {
        let input = match signal {
            QueueSignal::Join {
                target: Target::Agent(agent_no),
                join_ms,
                place,
                join_type: JoinType::Outbound,
                ..
            } => {
                // A backend outbound user waits for its agent: a line of its own, which
                // every available agent serves under its own name.
                self.ensure(&app_id).await;
                let caller = Caller::joined((did, user_number), join_ms, None);
                self.remember(&app_id, &conversation, caller);
                Input::Join {
                    caller: conversation,
                    queue: own_line(&agent_no),
                    join_ms,
                    place,
                    last_agent: None,
                }
            }
            QueueSignal::Join {
                target: Target::Agent(agent_no),
                ..
            } => {
                return self
                    .direct(&app_id, &conversation, &agent_no, &did, &user_number)
                    .await;
            }
            QueueSignal::Join {
                target: Target::Queue(queue),
                join_ms,
                place,
                join_type,
                ..
            } => {
                if let Err(e) = self.prepare(&app_id, &queue).await {
                    tracing::warn!(error = %e, "matchmaker: queue unreadable; the caller overflows");
                    return self.tell(&conversation, QueueOrder::NoAgents).await;
                }
                let staffed = match reads.staffed.get(&(app_id.clone(), queue.clone())) {
                    Some(staffed) => Ok(*staffed),
                    None => self
                        .agents
                        .store()
                        .staffed_among(&app_id, &[queue.as_str()])
                        .await
                        .map(|staffed| !staffed.is_empty()),
                };
                match staffed {
                    Ok(true) => {}
                    Ok(false) => return self.tell(&conversation, QueueOrder::NoAgents).await,
                    Err(e) => tracing::warn!(error = %e, "matchmaker: members unreadable"),
                }
                // A transferred caller goes to the queue's members, not back to the agent
                // who transferred it.
                let last_agent = match join_type {
                    JoinType::Transfer => None,
                    _ => self.last_agent(&app_id, &queue, &user_number).await,
                };
                let caller = Caller::joined((did, user_number), join_ms, last_agent.clone());
                self.remember(&app_id, &conversation, caller);
                Input::Join {
                    caller: conversation,
                    queue,
                    join_ms,
                    place,
                    last_agent,
                }
            }
            QueueSignal::Leave => {
                if let Some(app) = self.apps.get_mut(&app_id) {
                    app.callers.remove(&conversation);
                }
                Input::Leave {
                    caller: conversation,
                }
            }
            QueueSignal::Answered(agent) => {
                if let Some(app) = self.apps.get_mut(&app_id) {
                    app.callers.remove(&conversation);
                    app.available.remove(&agent);
                }
                Input::Answered {
                    caller: conversation,
                    agent,
                }
            }
            QueueSignal::Announce(queue) => return self.position(app_id, conversation, queue),
            QueueSignal::Missed(agent) => {
                if let Some(app) = self.apps.get_mut(&app_id) {
                    app.available.remove(&agent);
                }
                Input::Missed {
                    caller: conversation,
                    agent,
                }
            }
        };
        self.step(&app_id, input).await;
    }

    /// Leaves `agent_no` to an older caller of another replica: noted since when, and
    /// looked at again soon (that caller may get another agent).
    fn defer(&mut self, app_id: &str, agent_no: &str) {
        if let Some(app) = self.apps.get_mut(app_id) {
            let now = tokio::time::Instant::now();
            app.deferred_since
                .entry(agent_no.to_string())
                .or_insert(now);
        }
        let (back, app_id, agent_no) =
            (self.back.clone(), app_id.to_string(), agent_no.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(DEFERRED_RETRY).await;
            let heard = tokio::time::Instant::now();
            back.send(HubInput::AgentChanged {
                app_id,
                agent_no,
                heard,
            });
        });
    }

    /// Remembers a caller of `app_id` joining a line.
    fn remember(&mut self, app_id: &str, conversation: &str, caller: Caller) {
        let app = self.apps.entry(app_id.to_string()).or_default();
        app.callers.insert(conversation.to_string(), caller);
    }

    /// Makes sure the application's matchmaker knows the queue's strategy and its agents.
    async fn prepare(&mut self, app_id: &str, queue: &str) -> Result<(), StoreError> {
        let known = self
            .apps
            .get(app_id)
            .is_some_and(|a| a.rules.contains_key(queue));
        if known {
            return Ok(());
        }
        let record = self.agents.store().find_queue(app_id, queue).await?;
        self.ensure(app_id).await;
        let app = self.apps.entry(app_id.to_string()).or_default();
        let window = record.as_ref().and_then(|r| {
            let s = &r.settings;
            s.last_agent_routing
                .then(|| i64::from(s.last_agent_window_hours) * 3_600_000)
        });
        app.rules.insert(queue.to_string(), window);
        if let Some(record) = record {
            app.acd.step(Input::Rules {
                queue: queue.to_string(),
                strategy: record.settings.strategy,
            });
        }
        Ok(())
    }

    /// The agent the user last talked with, when `queue` routes to the last agent and one
    /// is known within its window.
    async fn last_agent(&self, app_id: &str, queue: &str, user_number: &str) -> Option<String> {
        let window = self.apps.get(app_id)?.rules.get(queue).copied().flatten()?;
        let since = crate::domain::time::now_ms() - window;
        match self
            .agents
            .store()
            .last_agent(app_id, user_number, since)
            .await
        {
            Ok(agent) => agent,
            Err(e) => {
                tracing::warn!(error = %e, "matchmaker: last agent unreadable; routing as usual");
                None
            }
        }
    }

    /// Makes sure the application has a matchmaker that knows its ready agents.
    async fn ensure(&mut self, app_id: &str) {
        if !self.apps.contains_key(app_id) {
            self.apps.insert(app_id.to_string(), App::default());
            self.refresh(app_id).await;
        }
    }

    /// Reads every ready agent of every application with callers again.
    async fn refresh_all(&mut self) {
        let apps: Vec<String> = self.apps.keys().cloned().collect();
        for app_id in apps {
            let idle = self.apps.get(&app_id).is_some_and(|a| a.callers.is_empty());
            if idle {
                // Nobody waits: forgotten until a caller comes again.
                self.apps.remove(&app_id);
                continue;
            }
            self.refresh(&app_id).await;
        }
    }

    async fn refresh(&mut self, app_id: &str) {
        let ready = match self.agents.store().ready_agents(app_id).await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "matchmaker: agents unreadable");
                return;
            }
        };
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let now: HashSet<String> = ready.iter().map(|r| r.agent_no.clone()).collect();
        let gone: Vec<String> = app.available.difference(&now).cloned().collect();
        for agent_no in gone {
            self.believe(app_id, &agent_no, None).await;
        }
        for agent in ready {
            let agent_no = agent.agent_no.clone();
            self.believe(app_id, &agent_no, Some(agent)).await;
        }
    }

    /// What the store says of an agent now.
    async fn believe(
        &mut self,
        app_id: &str,
        agent_no: &str,
        ready: Option<crate::store::acd::ReadyAgent>,
    ) {
        // A WebPhone takes offers only while it is registered (§11.3).
        let ready = match ready {
            Some(agent) => match &agent.webphone {
                Some(sip_number) => match self.orchestrator.registered(sip_number).await {
                    Ok(true) => Some(agent),
                    _ => None,
                },
                None => Some(agent),
            },
            None => None,
        };
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let input = match ready {
            Some(mut agent) => {
                app.available.insert(agent.agent_no.clone());
                agent.queues.push((own_line(&agent.agent_no), 10));
                Input::Available {
                    agent: agent.agent_no,
                    idle_since_ms: agent.idle_since_ms,
                    queues: agent.queues,
                }
            }
            None => {
                // Taken (or gone): whatever it was left to is over.
                app.deferred_since.remove(agent_no);
                if !app.available.remove(agent_no) {
                    return;
                }
                Input::Unavailable {
                    agent: agent_no.to_string(),
                }
            }
        };
        self.step(app_id, input).await;
    }

    /// Steps the application's matchmaker and carries out its offers (each may fail and
    /// step it again).
    async fn step(&mut self, app_id: &str, input: Input) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            let Some(app) = self.apps.get_mut(app_id) else {
                return;
            };
            for effect in app.acd.step(input) {
                // A withdrawal is the caller's own business: its conversation ends the
                // losing or abandoned offers itself.
                let Effect::Offer {
                    caller,
                    queue,
                    agent,
                } = effect
                else {
                    continue;
                };
                let app = self.apps.get(app_id);
                let known = app.and_then(|a| a.callers.get(&caller));
                let numbers = known
                    .map(|c| (c.did.clone(), c.user_number.clone()))
                    .unwrap_or_default();
                // Join order across replicas: a caller's turn, unless the agent is its last
                // or was left to other replicas' callers for too long.
                let overdue = app
                    .and_then(|a| a.deferred_since.get(&agent))
                    .is_some_and(|since| since.elapsed() >= MAX_DEFERRED);
                if overdue {
                    tracing::warn!(agent = %agent, "matchmaker: an older caller of another replica was not offered the agent for 30 s; offering it here");
                }
                let turn = known
                    .filter(|c| !overdue && c.last_agent.as_ref() != Some(&agent))
                    .map(|c| c.join_ms);
                // The claim and the dial take a few milliseconds of the database and the
                // caller's conversation: offers go on side by side meanwhile.
                let heard = self
                    .became_ready
                    .as_ref()
                    .filter(|(a, _)| *a == agent)
                    .map(|(_, heard)| *heard);
                let (offerer, back, app_id) =
                    (self.offerer.clone(), self.back.clone(), app_id.to_string());
                tokio::spawn(async move {
                    let proposal = Proposal {
                        caller: &caller,
                        queue: &queue,
                        agent_no: &agent,
                        numbers,
                        heard,
                        turn,
                    };
                    let made = offerer.offer(&app_id, proposal).await;
                    if let Err(why) = made {
                        back.send(HubInput::OfferFailed {
                            app_id,
                            caller,
                            agent,
                            why,
                        });
                    }
                });
            }
        }
    }

    /// An agent route: the agent now if it is ready, else the caller's fallback.
    async fn direct(
        &mut self,
        app_id: &str,
        conversation: &str,
        agent_no: &str,
        did: &str,
        user_number: &str,
    ) {
        let numbers = (did.to_string(), user_number.to_string());
        if self
            .offerer
            .offer(
                app_id,
                Proposal {
                    caller: conversation,
                    queue: "",
                    agent_no,
                    numbers,
                    heard: None,
                    turn: None,
                },
            )
            .await
            .is_err()
        {
            self.tell(conversation, QueueOrder::NoAgents).await;
        }
    }

    /// Tells the caller its position in `queue` (1 + callers ahead, of every replica, as
    /// the Live view lists them), read aside so the matchmaker goes on meanwhile.
    fn position(&self, app_id: String, conversation: String, queue: String) {
        let store = self.agents.store().clone();
        let orchestrator = self.orchestrator.clone();
        tokio::spawn(async move {
            let waiting = match store.waiting_in(&app_id, &queue).await {
                Ok(waiting) => waiting,
                Err(e) => {
                    tracing::warn!(error = %e, "matchmaker: queue unreadable; no announcement");
                    return;
                }
            };
            let Some(i) = waiting.iter().position(|(c, _)| *c == conversation) else {
                return;
            };
            if let Some(verdict) =
                orchestrator.queue_order(&conversation, QueueOrder::Announce(i + 1))
            {
                let _ = verdict.await;
            }
        });
    }

    async fn tell(&self, conversation: &str, order: QueueOrder) {
        if let Some(verdict) = self.orchestrator.queue_order(conversation, order) {
            let _ = verdict.await;
        }
    }
}

/// An offer the matchmaker decided on.
struct Proposal<'a> {
    /// The caller's conversation.
    caller: &'a str,
    /// Its line (`""` for an agent route).
    queue: &'a str,
    /// The agent.
    agent_no: &'a str,
    /// The DID and the caller's number.
    numbers: (String, String),
    /// When the change that made the agent ready was heard of, to time the offer.
    heard: Option<tokio::time::Instant>,
    /// The caller's join time when it takes its turn in join order across replicas
    /// (`None`: it goes first, as to its last agent or on an agent route).
    turn: Option<i64>,
}

/// What carries out the matchmaker's offers.
#[derive(Clone)]
struct Offerer {
    agents: Arc<Agents>,
    orchestrator: Orchestrator,
}

impl Offerer {
    /// Claims the proposal's agent and offers its caller to it; refused when the agent
    /// could not be claimed or the caller no longer waits (the agent is released again),
    /// or when a caller of another replica waited longer for the agent.
    async fn offer(&self, app_id: &str, proposal: Proposal<'_>) -> Result<(), Unmade> {
        let Proposal {
            caller,
            queue,
            agent_no,
            numbers: (did, user_number),
            heard,
            turn,
        } = proposal;
        let store = self.agents.store().clone();
        if let Some(join_ms) = turn {
            let epoch = self.orchestrator.lease_epoch();
            let older = store
                .older_caller_elsewhere(app_id, agent_no, (join_ms, caller), epoch)
                .await;
            match older {
                Ok(false) => {}
                Ok(true) => return Err(Unmade::Deferred),
                Err(e) => {
                    tracing::warn!(error = %e, "matchmaker: other replicas' callers unreadable");
                    return Err(Unmade::Deferred);
                }
            }
        }
        // An agent's own line is no queue for the contract.
        let queue = if queue.starts_with(OWN_LINE) {
            ""
        } else {
            queue
        };
        let offer = self
            .agents
            .claim_offer(app_id, agent_no, (did, user_number), queue)
            .await
            .map_err(|_| Unmade::Failed)?;
        let verdict = match self
            .orchestrator
            .queue_order(caller, QueueOrder::Offer(offer))
        {
            Some(verdict) => matches!(verdict.await, Ok(Ok(()))),
            None => false,
        };
        if !verdict {
            // The caller is gone: the agent goes back to what it was.
            self.agents.release_offer(app_id, agent_no).await;
        }
        if let Some(heard) = heard.filter(|_| verdict) {
            crate::telemetry::metrics::metrics().ready_to_offer(heard.elapsed());
        }
        if verdict { Ok(()) } else { Err(Unmade::Failed) }
    }
}

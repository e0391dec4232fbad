//! The media pool: one Event Socket client per media server (the in-process sandbox, or
//! the FreeSWITCH nodes of `VOICEPAAS_MEDIA`). A node is up while its client is
//! connected; the client reconnects by itself. `/readyz` and call acceptance ask
//! [`MediaPool::up`]: new calls are refused (-5 / 10005) only when no node is up.
//!
//! Each node's events are read by a task of its own, typed for the engine and routed by
//! `Unique-ID` to the call that registered the channel ([`MediaNode::register`]); a
//! connection loss and its return are told to every call with a leg on the node. New legs
//! go to the connected node with the most free capacity ([`MediaPool::pick`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{DEFAULT_NODE_CAPACITY, MediaSetting, Settings};
use crate::domain::time::now_ms;
use crate::esl::{EslClient, EslOptions, Incoming};
use crate::media::registrations::{Registrations, SUBCLASSES, Standing};
use crate::orchestrator::driver::media::{channel_event, probe_command};
use crate::orchestrator::engine::{LegIdx, MediaEvent};
use crate::telemetry::metrics::metrics;

/// How long start-up waits for the in-process sandbox's first connection (it is local and
/// comes up at once), and for a FreeSWITCH node's (which may be down: it is retried).
const FIRST_CONNECT_SANDBOX: Duration = Duration::from_secs(5);
const FIRST_CONNECT_NODE: Duration = Duration::from_secs(1);

/// The channel events the orchestrator follows.
pub const LEG_EVENTS: &[&str] = &[
    "CHANNEL_CREATE",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "DTMF",
];

/// The channel variable naming the installation that created a channel: the connection's
/// event filter lets through only channels carrying this installation's value (plus job
/// results and DTMF, whose events carry no channel variables), so a FreeSWITCH shared with
/// other systems does not flood the platform with their events.
pub const INSTALL_VAR: &str = "voicepaas_install";

/// A DID channel parked on a media node and not yet claimed, as its CHANNEL_PARK told
/// it (agents' contract §11.1: `voicepaas_did` set, `voicepaas_conversation` not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedCall {
    /// The media node.
    pub node: String,
    /// The channel's uuid.
    pub uuid: String,
    /// The number dialled (`voicepaas_did`; `""` for an agent's own dial-out).
    pub did: String,
    /// An agent's phone dialling out (§11.2), if it is one.
    pub agent_dial: Option<AgentDial>,
    /// The caller's number.
    pub caller: String,
    /// The callSid the sandbox gave its simulated caller (`voicepaas_call_sid`), if any.
    pub call_sid: Option<String>,
    /// Its `Channel-Name` (`""`: not given).
    pub channel_name: String,
}

/// What an agent's phone dialling out parks with (agents' contract §11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDial {
    /// The number it dialled (`voicepaas_agent_dial`).
    pub number: String,
    /// The device that dialled (`user_name`: its sipNumber).
    pub device: String,
}

impl ParkedCall {
    /// The parked DID channel an event on `node` announces, if it is one.
    pub fn of(node: &str, event: &crate::esl::Event) -> Option<Self> {
        if event.name() != "CHANNEL_PARK" {
            return None;
        }
        Self::described(node, |header| event.get(header))
    }

    /// The unclaimed DID channel whose headers (an event's, or a `uuid_dump … json`
    /// answer's fields) `header` reads, if it is one.
    fn described<'a>(node: &str, header: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        if header("variable_voicepaas_conversation").is_some() {
            return None;
        }
        let agent_dial = header("variable_voicepaas_agent_dial").map(|number| AgentDial {
            number: number.to_string(),
            device: header("variable_user_name").unwrap_or_default().to_string(),
        });
        let did = match (header("variable_voicepaas_did"), &agent_dial) {
            (Some(did), _) => did,
            (None, Some(_)) => "",
            (None, None) => return None,
        };
        Some(Self {
            node: node.to_string(),
            uuid: header("Unique-ID")?.to_string(),
            did: did.to_string(),
            agent_dial,
            caller: header("Caller-Caller-ID-Number")
                .unwrap_or_default()
                .to_string(),
            channel_name: header("Channel-Name")
                .filter(|n| n.len() <= 256)
                .unwrap_or_default()
                .to_string(),
            call_sid: header("variable_voicepaas_call_sid")
                .filter(|sid| crate::domain::ids::is_well_formed(sid, "CA"))
                .map(str::to_string),
        })
    }
}

/// What a call hears from a node about its legs.
#[derive(Debug)]
pub enum LegSignal {
    /// An event of the channel of leg `LegIdx` (boxed: a call's channel keeps room for 32
    /// signals from its start, so a signal is kept small).
    Event(LegIdx, Box<MediaEvent>),
    /// The node's connection was lost.
    NodeDown(String),
    /// The node is connected again (events in between may be missing).
    NodeUp(String),
    /// The node refused to run application run `u32` on the channel of leg `LegIdx`.
    Refused(LegIdx, u32),
    /// The originate of leg `LegIdx` failed with this cause.
    OriginateFailed(LegIdx, String),
    /// The node's channel list has left out leg `LegIdx`'s channel in two sweeps in a row.
    Unlisted(LegIdx),
}

/// Time between two sweeps of a node's channel list (`show channels as json`) against
/// the legs registered on it: a leg whose end went unheard is noticed within two sweeps
/// and asked about (`uuid_dump`), so it ends with its CDR within about half a minute.
pub const SWEEP_EVERY: Duration = Duration::from_secs(12);

/// Sweeps node `node`'s channels every [`SWEEP_EVERY`], and at once after each connect,
/// while it lives.
async fn sweep(node: std::sync::Weak<MediaNode>, connected: Arc<tokio::sync::Notify>) {
    let mut missed_before: HashSet<String> = Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = connected.notified() => {}
        }
        let Some(node) = node.upgrade() else { return };
        if !node.is_connected() {
            missed_before.clear();
            continue;
        }
        // Registered before the question: a leg registered later may not be listed yet.
        let registered: HashSet<String> = node
            .routes
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        let Ok(listing) = node.client.api("show channels as json").await else {
            continue;
        };
        let Some(listed) = listed_channels(&listing) else {
            continue;
        };
        let missing: HashSet<String> = registered
            .iter()
            .filter(|uuid| !listed.contains_key(*uuid))
            .cloned()
            .collect();
        for uuid in missing.intersection(&missed_before) {
            let route = node
                .routes
                .lock()
                .ok()
                .and_then(|r| r.get(uuid).map(|r| (r.tx.clone(), r.leg)));
            if let Some((tx, leg)) = route {
                tracing::info!(node = %node.name, channel = %uuid, "channel no longer listed by the node; asking about it");
                let _ = tx.send(LegSignal::Unlisted(leg));
            }
        }
        missed_before = missing;
        let parked_elsewhere = listed
            .into_iter()
            .filter(|(uuid, application)| application == "park" && !registered.contains(uuid));
        for (uuid, _) in parked_elsewhere {
            node.tell_if_unclaimed_did(&uuid).await;
        }
    }
}

/// The channels of a `show channels as json` answer, each uuid with its current
/// application (`None` if it is not such an answer).
fn listed_channels(listing: &str) -> Option<HashMap<String, String>> {
    let value: serde_json::Value = serde_json::from_str(listing.trim()).ok()?;
    value.get("row_count")?;
    let text = |row: &serde_json::Value, name: &str| {
        row.get(name).and_then(|v| v.as_str()).map(str::to_string)
    };
    Some(
        value
            .get("rows")
            .and_then(|r| r.as_array())
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| {
                        Some((
                            text(row, "uuid")?,
                            text(row, "application").unwrap_or_default(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Whether a `sofia_contact` reply is a contact (`sofia/internal/sip:…`) rather than
/// `error/user_not_registered` or another error.
fn is_contact(reply: &str) -> bool {
    let reply = reply.trim();
    !reply.is_empty() && !reply.starts_with("error/") && !reply.starts_with("-ERR")
}

/// Where a channel's events go: the call's signal queue, the leg, and the generation of
/// the call's driver (which tells its application runs from others').
struct Route {
    tx: mpsc::UnboundedSender<LegSignal>,
    leg: LegIdx,
    generation: u64,
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;

/// One media server.
pub struct MediaNode {
    /// `host:port`, for logs, `/readyz` and the calls table.
    pub name: String,
    /// Its Event Socket connection for commands (`api`, `bgapi`, `sendmsg`). FreeSWITCH
    /// runs an `api` inline on its connection and holds that connection's events until it
    /// answers, so commands never share the connection the channels' events come on.
    pub client: EslClient,
    /// Its Event Socket connection for channel events (filtered to this installation).
    events: EslClient,
    /// Most channels it should carry (free capacity = this − live channels).
    pub capacity: usize,
    /// Where its internal SIP profile listens (`?sip=`): devices registered here are
    /// reached from other nodes through it.
    pub sip: String,
    routes: Routes,
    /// The node's clock, from its latest event.
    clock: Arc<MediaClock>,
    /// Where DID channels parked on this node are told.
    parked: ParkedSink,
}

/// A node's clock as seen from here: the time of its latest event, carried forward at
/// our pace until the next one.
struct MediaClock {
    /// The node's event clock minus ours (ms), from the latest event.
    offset_ms: AtomicI64,
}

impl MediaClock {
    fn new() -> Self {
        MediaClock {
            offset_ms: AtomicI64::new(0),
        }
    }

    /// An event stamped `at` (the node's Unix ms) was heard now.
    fn heard(&self, at: i64) {
        self.offset_ms.store(at - now_ms(), Ordering::Relaxed);
    }

    /// The node's time now.
    fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// A call's subscription to one channel's events; dropping it unregisters.
pub struct Registration {
    uuid: String,
    routes: Routes,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&self.uuid);
        }
    }
}

impl MediaNode {
    /// Asks the node about parked channel `uuid` (`uuid_dump`) and, if it is a DID channel
    /// nobody claimed, tells it as its CHANNEL_PARK would have: its park came while the
    /// connection was down or before this process started. Claiming it in the database
    /// keeps it handled once, however often it is told and by how many replicas.
    async fn tell_if_unclaimed_did(&self, uuid: &str) {
        let Ok(dump) = self.client.api(&probe_command(uuid)).await else {
            return;
        };
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(dump.trim()) else {
            return;
        };
        let Some(call) = ParkedCall::described(&self.name, |h| fields.get(h)?.as_str()) else {
            return;
        };
        tracing::info!(node = %self.name, channel = %uuid, did = %call.did, "a parked DID channel no event told of");
        if let Ok(sink) = self.parked.lock()
            && let Some(sink) = sink.as_ref()
        {
            let _ = sink.send(call);
        }
    }

    /// Routes the events of channel `uuid` (leg `leg` of a call whose driver is of
    /// `generation`) to `tx`, from now on until the registration is dropped.
    pub fn register(
        &self,
        uuid: &str,
        leg: LegIdx,
        generation: u64,
        tx: mpsc::UnboundedSender<LegSignal>,
    ) -> Registration {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(
                uuid.to_string(),
                Route {
                    tx,
                    leg,
                    generation,
                },
            );
        }
        Registration {
            uuid: uuid.to_string(),
            routes: self.routes.clone(),
        }
    }

    /// Now on the node's clock (Unix ms): our clock plus the offset seen in its latest
    /// event. Times the platform records itself (a leg dialled) then agree with the
    /// times the node reports (FreeSWITCH's clock, or the sandbox's faster one).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Whether both its connections are up.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected() && self.events.is_connected()
    }

    /// Channels registered on this node now.
    pub fn live(&self) -> usize {
        self.routes.lock().map_or(0, |r| r.len())
    }
}

/// Every media server of this process.
pub struct MediaPool {
    nodes: Vec<Arc<MediaNode>>,
    registrations: Arc<Registrations>,
    parked: ParkedSink,
    /// How much faster than real time the media clock runs: the built-in sandbox's speed,
    /// else 1.
    rate: f64,
}

/// Where parked DID channels are told (nowhere until someone asks for them).
type ParkedSink = Arc<Mutex<Option<mpsc::UnboundedSender<ParkedCall>>>>;

impl MediaPool {
    /// Connects to the configured media servers (`sandbox` is the in-process one at
    /// `sandbox_addr`), waiting briefly for each first connection, and subscribes to the
    /// channel events legs follow.
    pub async fn connect(settings: &Settings, sandbox_addr: Option<SocketAddr>) -> MediaPool {
        let targets: Vec<(EslOptions, usize, String)> = match (&settings.media, sandbox_addr) {
            (MediaSetting::Sandbox, Some(addr)) => {
                vec![(
                    EslOptions::new(
                        addr.ip().to_string(),
                        addr.port(),
                        settings.sandbox_password.expose(),
                    ),
                    DEFAULT_NODE_CAPACITY,
                    format!("{}:5060", addr.ip()),
                )]
            }
            (MediaSetting::Sandbox, None) => Vec::new(),
            (MediaSetting::Nodes(nodes), _) => nodes
                .iter()
                .map(|n| {
                    let options = EslOptions::new(n.host.clone(), n.port, n.password.expose());
                    (options, n.capacity, n.sip.clone())
                })
                .collect(),
        };
        let wait = if matches!(settings.media, MediaSetting::Sandbox) {
            FIRST_CONNECT_SANDBOX
        } else {
            FIRST_CONNECT_NODE
        };
        let rate = match (&settings.media, sandbox_addr) {
            (MediaSetting::Sandbox, Some(_)) => settings.sandbox_speed,
            _ => 1.0,
        };
        let mut nodes = Vec::with_capacity(targets.len());
        let parked = ParkedSink::default();
        let registrations = Arc::new(Registrations::default());
        for (options, capacity, sip) in targets {
            let name = format!("{}:{}", options.host, options.port);
            let router = Arc::new(Router {
                name: name.clone(),
                routes: Routes::default(),
                clock: Arc::new(MediaClock::new()),
                connected: tokio::sync::Notify::new(),
                sweep_now: Arc::default(),
                parked: parked.clone(),
                registrations: registrations.clone(),
            });
            let sink = router.clone();
            let events = EslClient::start_with_sink(
                options.clone(),
                Arc::new(move |incoming| sink.route(incoming)),
            );
            // Its own state changes are the events connection's to report.
            let client = EslClient::start_with_sink(options, Arc::new(|_| {}));
            match tokio::time::timeout(wait, router.connected.notified()).await {
                Ok(()) => tracing::info!(node = %name, "media server connected"),
                Err(_) => {
                    tracing::warn!(node = %name, "media server not reachable yet; retrying in the background")
                }
            }
            // The command connection comes up alongside; a node counts as up with both.
            let started = tokio::time::Instant::now();
            while events.is_connected() && !client.is_connected() && started.elapsed() < wait {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Kept by the client and replayed after every reconnect, so a failure now
            // (not connected yet) is made good on connect.
            let filters = [
                (
                    format!("variable_{INSTALL_VAR}"),
                    settings.installation.clone(),
                ),
                ("Event-Name".to_string(), "DTMF".to_string()),
                // DID channels park without the installation's variable (§11.1).
                ("Event-Name".to_string(), "CHANNEL_PARK".to_string()),
            ]
            .into_iter()
            // Agents' devices coming and going (§11.3).
            .chain(
                SUBCLASSES
                    .iter()
                    .map(|s| ("Event-Subclass".to_string(), s.to_string())),
            )
            .collect::<Vec<_>>();
            for (header, value) in &filters {
                if let Err(e) = events.filter(header, value).await {
                    tracing::debug!(node = %name, error = %e, "filter deferred to the connection");
                }
            }
            let followed: Vec<&str> = LEG_EVENTS
                .iter()
                .copied()
                .chain(std::iter::once("CUSTOM"))
                .chain(SUBCLASSES)
                .collect();
            if let Err(e) = events.subscribe(&followed).await {
                tracing::debug!(node = %name, error = %e, "subscription deferred to the connection");
            }
            let node = Arc::new(MediaNode {
                name,
                client,
                events,
                capacity,
                sip,
                routes: router.routes.clone(),
                clock: router.clock.clone(),
                parked: parked.clone(),
            });
            tokio::spawn(sweep(Arc::downgrade(&node), router.sweep_now.clone()));
            nodes.push(node);
        }
        MediaPool {
            nodes,
            registrations,
            parked,
            rate,
        }
    }

    /// Real milliseconds for `media_ms` on the media clock (the built-in sandbox's clock
    /// runs at its speed).
    pub fn real_ms(&self, media_ms: i64) -> i64 {
        (media_ms as f64 / self.rate) as i64
    }

    /// The DID channels parking on any node from now on (agents' contract §11.1); a later
    /// call replaces the earlier receiver.
    pub fn parked_calls(&self) -> mpsc::UnboundedReceiver<ParkedCall> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut sink) = self.parked.lock() {
            *sink = Some(tx);
        }
        rx
    }

    /// How many nodes are connected, and how many there are.
    pub fn up(&self) -> (usize, usize) {
        (
            self.nodes.iter().filter(|n| n.is_connected()).count(),
            self.nodes.len(),
        )
    }

    /// Whether at least one node is connected.
    pub fn any_up(&self) -> bool {
        self.nodes.iter().any(|n| n.is_connected())
    }

    /// The connected node with the most free capacity (capacity is a weight, not a
    /// limit: when every node is full the least overloaded one still takes the call).
    pub fn pick(&self) -> Option<Arc<MediaNode>> {
        let loads: Vec<_> = self
            .nodes
            .iter()
            .map(|n| (n.is_connected(), n.capacity, n.live()))
            .collect();
        most_free(&loads).map(|i| self.nodes[i].clone())
    }

    /// The node device `user` (a sipNumber of `domain`) is registered on, if any: as the
    /// nodes' `sofia::*` events said, else asked of each connected node (`sofia_contact`,
    /// on the command connection) and remembered; an error when no node could be asked.
    pub async fn device_node(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<String>, crate::esl::EslError> {
        match self.registrations.standing(user) {
            Some(Standing::On(node)) => return Ok(Some(node)),
            Some(Standing::Off) => return Ok(None),
            None => {}
        }
        let mut last_error = None;
        for node in self.nodes.iter().filter(|n| n.is_connected()) {
            match node
                .client
                .api(&format!("sofia_contact {user}@{domain}"))
                .await
            {
                Ok(reply) if is_contact(&reply) => {
                    self.registrations
                        .set(user, Standing::On(node.name.clone()));
                    return Ok(Some(node.name.clone()));
                }
                Ok(_) => {}
                Err(e) => last_error = Some(e),
            }
        }
        match (last_error, self.any_up()) {
            (Some(e), _) => Err(e),
            (None, true) => {
                self.registrations.set(user, Standing::Off);
                Ok(None)
            }
            (None, false) => Err(crate::esl::EslError::NotConnected),
        }
    }

    /// The devices' registrations (their changes tell who may take offers again).
    pub fn registrations(&self) -> &Arc<Registrations> {
        &self.registrations
    }

    /// Has a connected node simulate caller `from` dialling DID `to`, with `call_sid` for
    /// the caller's leg (the sandbox's own `voicepaas_inbound`, agents' contract §12):
    /// `Ok(false)` when the node does not know the command (it is a real FreeSWITCH).
    pub async fn dial_in(
        &self,
        from: &str,
        to: &str,
        call_sid: &str,
    ) -> Result<bool, crate::esl::EslError> {
        let node = self.pick().ok_or(crate::esl::EslError::NotConnected)?;
        let reply = node
            .client
            .api(&format!("voicepaas_inbound {from} {to} {call_sid}"))
            .await?;
        Ok(reply.starts_with("+OK"))
    }

    /// Any node, connected or not (to ask about a channel whose node is unknown).
    pub fn any(&self) -> Option<Arc<MediaNode>> {
        self.nodes.first().cloned()
    }

    /// Now on the clock of node `name` (ours when there is no such node).
    pub fn now_ms_on(&self, name: &str) -> i64 {
        self.node(name).map_or_else(now_ms, |n| n.now_ms())
    }

    /// The node called `name` (as stored with a leg).
    pub fn node(&self, name: &str) -> Option<Arc<MediaNode>> {
        self.nodes.iter().find(|n| n.name == name).cloned()
    }
}

/// What a node's connection hands its events to: typed for the engine and routed by
/// `Unique-ID` to the call that follows the channel, from the connection's own task.
struct Router {
    name: String,
    routes: Routes,
    clock: Arc<MediaClock>,
    /// Told on every connect (start-up waits for the first).
    connected: tokio::sync::Notify,
    /// Told on every connect: the node's channels are swept at once.
    sweep_now: Arc<tokio::sync::Notify>,
    /// Where DID channels parking on this node are told.
    parked: ParkedSink,
    /// The devices' registrations, followed from this node's `sofia::*` events.
    registrations: Arc<Registrations>,
}

impl Router {
    fn route(&self, incoming: Incoming) {
        match incoming {
            Incoming::Event(event) => {
                let stamp = event.timestamp_ms();
                if let Some(at) = stamp {
                    self.clock.heard(at);
                }
                if event.name() == "CUSTOM" {
                    self.registrations.heard(&self.name, &event);
                    return;
                }
                let Some(uuid) = event.unique_id() else {
                    return;
                };
                let target = self
                    .routes
                    .lock()
                    .ok()
                    .and_then(|r| r.get(uuid).map(|r| (r.tx.clone(), r.leg, r.generation)));
                match target {
                    Some((tx, leg, generation)) => {
                        if let Some(typed) = channel_event(&event, generation, stamp) {
                            let _ = tx.send(LegSignal::Event(leg, Box::new(typed)));
                        }
                    }
                    None => {
                        if let Some(call) = ParkedCall::of(&self.name, &event)
                            && let Ok(sink) = self.parked.lock()
                            && let Some(sink) = sink.as_ref()
                        {
                            let _ = sink.send(call);
                        }
                    }
                }
            }
            Incoming::Disconnected(why) => {
                tracing::warn!(node = %self.name, reason = %why, legs = self.live(), "media server down");
                metrics().esl_node(&self.name, false);
                broadcast(&self.routes, || LegSignal::NodeDown(self.name.clone()));
            }
            Incoming::Connected | Incoming::Reconnected(_) => {
                tracing::info!(node = %self.name, "media server up");
                self.registrations.node_up(&self.name);
                metrics().esl_node(&self.name, true);
                self.connected.notify_one();
                self.sweep_now.notify_one();
                broadcast(&self.routes, || LegSignal::NodeUp(self.name.clone()));
            }
        }
    }

    fn live(&self) -> usize {
        self.routes.lock().map_or(0, |r| r.len())
    }
}

/// Tells every call with a leg in `routes` (once per call).
fn broadcast(routes: &Routes, signal: impl Fn() -> LegSignal) {
    let mut targets: Vec<mpsc::UnboundedSender<LegSignal>> = Vec::new();
    if let Ok(routes) = routes.lock() {
        for route in routes.values() {
            if !targets.iter().any(|t| t.same_channel(&route.tx)) {
                targets.push(route.tx.clone());
            }
        }
    }
    for tx in targets {
        let _ = tx.send(signal());
    }
}

/// Index of the connected node with the most free capacity, from `(connected, capacity,
/// live)`
/// of each node; ties go to the first.
fn most_free(nodes: &[(bool, usize, usize)]) -> Option<usize> {
    let free = |&(_, capacity, live): &(bool, usize, usize)| capacity as i64 - live as i64;
    let mut best: Option<usize> = None;
    for (i, node) in nodes.iter().enumerate().filter(|(_, n)| n.0) {
        if best.is_none_or(|b| free(node) > free(&nodes[b])) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::{listed_channels, most_free};

    #[test]
    fn channel_lists_read_as_freeswitch_writes_them() {
        // Shortened rows of a FreeSWITCH 1.10 answer (esl-transcripts 87).
        let listing = r#"{"row_count":2,"rows":[{"uuid":"9b529547","direction":"outbound","name":"loopback/7100-a","state":"CS_EXECUTE","application":"park","application_data":"","callstate":"ACTIVE"},{"uuid":"eae22f9d","direction":"inbound","application":"playback"}]}"#;
        let listed = listed_channels(listing).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed["9b529547"], "park");
        assert_eq!(listed["eae22f9d"], "playback");
        assert_eq!(
            listed_channels("{\"row_count\": 0}\n").map(|l| l.len()),
            Some(0)
        );
        assert_eq!(listed_channels("-ERR no reply\n"), None);
    }

    #[test]
    fn calls_go_where_capacity_is_free() {
        assert_eq!(most_free(&[]), None);
        assert_eq!(most_free(&[(false, 100, 0)]), None);
        assert_eq!(most_free(&[(true, 100, 90), (true, 50, 10)]), Some(1));
        assert_eq!(
            most_free(&[(true, 100, 10), (false, 1000, 0), (true, 100, 10)]),
            Some(0)
        );
        // Every node over its capacity: the least overloaded.
        assert_eq!(most_free(&[(true, 10, 30), (true, 10, 12)]), Some(1));
    }
}

#[test]
fn sofia_contact_replies() {
    assert!(is_contact("sofia/internal/sip:1000@127.0.0.1:5070"));
    assert!(!is_contact("error/user_not_registered"));
    assert!(!is_contact("-ERR no reply\n"));
    assert!(!is_contact(""));
}

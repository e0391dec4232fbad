//! Every agent conversation (agents' contract §7, §9, §3.3, §3.6) as one script over the
//! engine. A dial-in: the caller's channel already exists, parked on the media server; the
//! platform answers it, plays the number's welcome, follows its route (a queue, an agent, a
//! key menu, a hangup prompt), and while the caller waits in a queue with music the
//! application's matchmaker ([`crate::acd`]) sends it offers: each offer dials an agent's
//! device, and the first agent connected is bridged to the caller (`uuid_bridge`). A
//! backend outbound call dials its user first, then does the same. An agent's callOut
//! dials the agent's device first, then the user from the agent's channel. Once a user and
//! an agent talk, every conversation is the same: hold, transfer, consult, conference,
//! supervision, maxCallDuration and the recording.
//!
//! Legs: a dial-in's or backend outbound's user first (0), a callOut's agent first (0) and
//! its user (1); then one per offer, consult or supervisor, in the order they were
//! dialled. What a takeover needs (the phase, the queue and join time, the offers, a
//! decided byeType) is written as a snapshot whenever it changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::orders::{AgentOrder, OutsideNumber, TransferTo};

mod call_out;
mod consult;
mod monitor;
mod talk;
use super::click2call::MAX_DURATION_CAUSE;
use crate::acd::dispatch::Place;
use crate::cdr::{LegFacts, MEDIA_LOST};
use crate::domain::agent_call::{AgentBye, AgentCall, CallType};
use crate::orchestrator::engine::{
    App, CdrKind, Command, CommandToken, Core, Dial, Effect, Endpoint, Happened, Hears, LegIdx,
    MediaCommand, Refusal, ReplyToken, Timer, Write,
};
pub use consult::Consult;
pub use monitor::Monitor;

/// The user's leg of a dial-in or a backend outbound call.
pub const CALLER: LegIdx = 0;
/// A callOut's agent leg, dialled first.
pub const CALL_OUT_AGENT: LegIdx = 0;
/// A callOut's user leg, dialled from the agent's channel once it answered.
pub const CALL_OUT_USER: LegIdx = 1;
/// Overflows a caller may take; the next one is a hangup.
pub const MAX_OVERFLOWS: u8 = 5;
/// The channel variable that marks a DID channel as claimed (§9).
pub const CLAIMED_VAR: &str = "voicepaas_conversation";

/// Where a route, a menu key, a fallback or an overflow leads, prompts resolved to files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Join the queue of this queueSid.
    Queue(String),
    /// Offer the caller to this agent if it is ready; else, or when the offer fails,
    /// `fallback` (a queue or a hangup).
    Agent {
        /// The agent.
        agent_no: String,
        /// Where the caller goes otherwise.
        fallback: Box<Step>,
    },
    /// Play this file and hang up.
    Hangup(String),
}

/// A key menu, prompts resolved to files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Menu {
    /// Played for each try.
    pub prompt: String,
    /// Where each key leads.
    pub keys: BTreeMap<char, Step>,
    /// Seconds one key is waited for.
    pub timeout_secs: u32,
    /// Tries before `default`.
    pub tries: u32,
    /// Taken after the last try.
    pub default: Step,
}

/// A DID's route, prompts resolved to files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// A queue, an agent or a hangup.
    Step(Step),
    /// A key menu.
    Menu(Menu),
}

/// What the caller's conversation needs of a queue it may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuePlan {
    /// Seconds an offer rings.
    pub ring_timeout_secs: u32,
    /// Longest wait before overflow (0: none).
    pub max_wait_secs: u32,
    /// Where the caller goes after maxWaitSeconds or with no member logged in.
    pub overflow: Step,
    /// The file looped while the caller waits.
    pub music: String,
    /// The periodic position announcement, if the queue has one.
    #[serde(default)]
    pub announce: Option<AnnouncePlan>,
    /// Its name (queueEvent `queueName`).
    #[serde(default)]
    pub name: String,
}

/// A queue's position announcement (§3.2 `announce`), its prompt resolved to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncePlan {
    /// Seconds of waiting between announcements.
    pub every_secs: u32,
    /// Played before the position (`None`: the prompt is unavailable; the position alone).
    pub prompt: Option<String>,
}

/// Everything an inbound conversation follows, resolved when it is claimed and stored
/// with its user leg, so any process can take it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The number dialled.
    pub did: String,
    /// The caller's number.
    pub user_number: String,
    /// Played once before the route.
    pub welcome: Option<String>,
    /// The route.
    pub route: Route,
    /// The queues the route, its menu keys, fallbacks and overflows can reach.
    pub queues: BTreeMap<String, QueuePlan>,
    /// The built-in failure tone (a hangup route or overflow without a prompt, a queue
    /// that is gone, too many overflows).
    pub failure: String,
    /// A backend outbound call (§3.6): the user is dialled first.
    #[serde(default)]
    pub outbound: Option<Outbound>,
    /// Seconds an agent route's offer rings (the application's agentRingTimeout).
    #[serde(default = "default_agent_ring")]
    pub agent_ring_secs: u32,
    /// An agent's callOut (§7.1): its agent is dialled first, then its user.
    #[serde(default)]
    pub call_out: Option<Box<AgentCall>>,
}

fn default_agent_ring() -> u32 {
    20
}

impl Plan {
    /// The conversation's callType.
    pub fn call_type(&self) -> CallType {
        match (&self.call_out, &self.outbound) {
            (Some(call), _) => call.call_type,
            (None, Some(_)) => CallType::Outbound,
            (None, None) => CallType::DialIn,
        }
    }

    /// An agent's callOut: it has no route nor queues; a transfer that fails ends it with
    /// the failure tone `failure`.
    pub fn call_out(call: AgentCall, failure: String) -> Self {
        Plan {
            did: String::new(),
            user_number: call.user_number.clone(),
            welcome: None,
            route: Route::Step(Step::Hangup(failure.clone())),
            queues: BTreeMap::new(),
            failure,
            outbound: None,
            agent_ring_secs: call.agent_ring_timeout,
            call_out: Some(Box::new(call)),
        }
    }

    /// The `displayNum` the user was dialled with (`""`: none, or a dial-in).
    pub fn display_num(&self) -> &str {
        match (&self.call_out, &self.outbound) {
            (Some(call), _) => &call.display_num,
            (None, Some(outbound)) => &outbound.display_num,
            (None, None) => "",
        }
    }
}

/// What the application's CTI settings make of an agent conversation once a user and an
/// agent talk (§3.5), resolved when its driver starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TalkRules {
    /// What a user hears on hold outside any queue (the application's musicOnHold, or
    /// FreeSWITCH's own).
    pub music_on_hold: String,
    /// Seconds of talk allowed from the first connection (0: no limit).
    pub max_call_duration: u32,
    /// Where the recording goes on the media server (`recordAgentCalls`), if it is on.
    pub recording: Option<String>,
    /// The mod_conference profile a conference of the conversation uses (`""`:
    /// `default`).
    pub conference_profile: String,
}

/// How a backend outbound call dials its user and how long the user waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outbound {
    /// The caller id the user sees (`None`: the gateway's default).
    pub caller_id: Option<String>,
    /// The `displayNum` asked for (`""`: none).
    pub display_num: String,
    /// Seconds the user's phone rings.
    pub answer_timeout: u32,
    /// Longest wait for an agent once answered, seconds.
    pub max_wait_secs: u32,
}

/// How a caller came into a queue (queueEvent `joinType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinType {
    /// `1`: dialled in.
    DialIn,
    /// `2`: transferred by an agent.
    Transfer,
    /// `3`: overflowed from another queue.
    Overflow,
    /// `4`: a backend outbound call's user.
    Outbound,
}

impl JoinType {
    /// queueEvent `joinType`.
    pub fn code(self) -> i64 {
        match self {
            Self::DialIn => 1,
            Self::Transfer => 2,
            Self::Overflow => 3,
            Self::Outbound => 4,
        }
    }
}

/// What the caller waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    /// Any member of this queue.
    Queue(String),
    /// This agent (an agent route).
    Agent(String),
}

/// What an inbound conversation tells its application's matchmaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSignal {
    /// The caller waits for `target` from `join_ms`, in `place`.
    Join {
        /// A queue or an agent.
        target: Target,
        /// When it joined (Unix ms): its place in line.
        join_ms: i64,
        /// Its place.
        place: Place,
        /// How it came.
        join_type: JoinType,
        /// A caller taken over from another process, joining again in its place.
        resumed: bool,
    },
    /// The caller no longer waits (it hung up, overflowed, or the call ended).
    Leave,
    /// This agent was connected with the caller.
    Answered(String),
    /// This agent's offer failed (not answered, rejected, its device failed).
    Missed(String),
    /// The caller's position in this queue is wanted for an announcement.
    Announce(String),
}

/// An offer of the caller to an agent, from the matchmaker (the agent already claimed:
/// its session is `ringing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The agent.
    pub agent_no: String,
    /// Its device's number (sipNumber or pstnNumber).
    pub agent_number: String,
    /// What the number names.
    pub endpoint: Endpoint,
    /// The device answers by itself; the agent connects with `bridge`.
    pub auto_answer: bool,
    /// The number the device shows.
    pub shown: Option<String>,
    /// The agent's wrapupTime, seconds.
    pub wrapup_time: i64,
    /// The queue it is offered from (`""`: an agent route).
    pub queue: String,
}

impl Offer {
    /// An outside number a transfer or consult dials: no agent, shown its caller id.
    pub fn number(number: OutsideNumber) -> Self {
        Offer {
            agent_no: String::new(),
            agent_number: number.number,
            endpoint: Endpoint::Number,
            auto_answer: false,
            shown: number.caller_id,
            wrapup_time: 0,
            queue: String::new(),
        }
    }

    /// How its leg is dialled, ringing `timeout_secs` (a carrier's early media is no
    /// answer; parked, not hung up, when a bridge ends).
    pub fn dial(&self, timeout_secs: u32) -> Dial {
        Dial {
            to: self.agent_number.clone(),
            from: self.shown.clone(),
            timeout_secs,
            ignore_early_media: true,
            endpoint: self.endpoint,
            auto_answer: self.auto_answer,
            park_after_bridge: true,
            eavesdrop: None,
        }
    }
}

/// What the matchmaker tells an inbound conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOrder {
    /// Offer the caller to this agent.
    Offer(Offer),
    /// Nobody can take the caller: no member of the queue is logged in, or the agent of
    /// an agent route is not ready.
    NoAgents,
    /// Announce this position (1 + callers ahead) to the caller.
    Announce(usize),
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// A callOut's agent device is dialled.
    DialAgent,
    /// A callOut's user is dialled from the agent's channel.
    DialUser,
    /// The caller's channel is being answered.
    Answering,
    /// The welcome plays.
    Welcome,
    /// The menu plays or waits for a key.
    Menu,
    /// The caller waits (music) for a queue's agent or a named agent.
    Waiting,
    /// An agent and the caller talk.
    Talking,
    /// A hangup prompt plays; the call ends after it.
    Closing,
}

/// The caller's stay in a queue (or its wait for a named agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stay {
    /// What it waits for.
    pub target: Target,
    /// Since when (Unix ms).
    pub join_ms: i64,
    /// How it came.
    pub join_type: JoinType,
    /// maxWaitSeconds ran out while an offer rang: it leaves once that offer is over.
    pub timed_out: bool,
    /// Where it goes when nobody takes it (an agent route's fallback).
    pub otherwise: Option<Step>,
    /// It waits before the callers who joined normally (a failed transfer come back).
    #[serde(default)]
    pub head: bool,
}

/// One offer's leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferLeg {
    /// Its leg.
    pub leg: LegIdx,
    /// The offer.
    pub offer: Offer,
    /// The agent refused it (`hangup` while it rang).
    pub rejected: bool,
    /// The platform withdrew it (the caller left, another agent won).
    pub withdrawn: bool,
    /// When it was connected with the caller.
    pub bridged_at: Option<i64>,
    /// The agent who transferred the caller to this leg (callSubtype 3, coAgentNo).
    #[serde(default)]
    pub transferred_by: Option<String>,
    /// Its agent transferred the caller on (completedCause `transferred`).
    #[serde(default)]
    pub left: bool,
    /// A consult's leg: the leg of the agent who consulted (callSubtype 4 for this leg's
    /// agent, 5 for the consulting one).
    #[serde(default)]
    pub consulted_from: Option<LegIdx>,
    /// A supervisor's leg: whom it listens to, and how.
    #[serde(default)]
    pub monitor: Option<Monitor>,
    /// A supervisor's leg dialled to take over the agent leg it names (`intercept`).
    #[serde(default)]
    pub intercepts: Option<LegIdx>,
    /// A supervisor took the call over from this leg's agent (completedCause `forced`).
    #[serde(default)]
    pub intercepted: bool,
    /// A supervisor's offer that replaced this agent's ringing offer (`intercept`): if it
    /// is missed, the matchmaker hears that agent's offer is over too.
    #[serde(default)]
    pub replaces: Option<String>,
}

impl OfferLeg {
    /// Its callSubtype for its own agent: `3` when a transfer made it (or a consult became
    /// one), `4` a consult's, else `2`.
    pub fn subtype(&self) -> crate::domain::agent_call::CallSubtype {
        use crate::domain::agent_call::CallSubtype;
        match (&self.transferred_by, self.consulted_from) {
            (Some(_), _) => CallSubtype::Transfer,
            (None, Some(_)) => CallSubtype::ConsultIn,
            (None, None) => CallSubtype::Agent,
        }
    }
}

impl State {
    /// The offer of leg `leg`, if it is an agent's (or a number a transfer or consult
    /// dialled).
    pub fn offer(&self, leg: LegIdx) -> Option<&OfferLeg> {
        self.offers.iter().find(|o| o.leg == leg)
    }

    /// The other agent leg `leg`'s agent sees (coAgentNo): who transferred the caller to
    /// it, who consults it, or whom its supervisor listens to.
    pub fn co_agent(&self, leg: LegIdx) -> &str {
        let Some(o) = self.offer(leg) else {
            return "";
        };
        let agent_of = |leg: LegIdx| self.offer(leg).map_or("", |o| o.offer.agent_no.as_str());
        match (&o.transferred_by, o.consulted_from, o.monitor) {
            (Some(by), _, _) => by,
            (None, Some(from), _) => agent_of(from),
            (None, None, Some(m)) => agent_of(m.target),
            (None, None, None) => "",
        }
    }
}

/// How an agent's leg of the conversation went, for the agent's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// Still on (ringing, or answered and not connected yet).
    Pending,
    /// Connected with the caller.
    Connected,
    /// Not answered in time, or the device failed: `pause` / `no-answer`.
    Missed,
    /// Refused by the agent: `pause` / `rejected`.
    Rejected,
    /// Withdrawn by the platform: back to the chosen state.
    Withdrawn,
}

/// A caller's move in a queue: a queueEvent (agents' contract §8.4), published to the
/// queue's monitors once the conversation's journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMove {
    /// The queue.
    pub queue: String,
    /// When the caller joined it (Unix ms).
    pub join_ms: i64,
    /// How it came.
    pub join_type: JoinType,
    /// What happened.
    pub moved: Moved,
    /// When (Unix ms, the media clock).
    pub at_ms: i64,
}

/// What happened to a caller in a queue (queueEvent `eventName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// `joined`.
    Joined,
    /// `answered`: this agent was connected.
    Answered(String),
    /// `abandoned`: the caller hung up waiting or while an agent rang.
    Abandoned,
    /// `left`: maxWaitSeconds ran out or nobody could take it; then the overflow.
    Left(LeaveCause),
}

/// Why a caller left a queue without an agent (queueEvent `leaveCause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveCause {
    /// `timeout`: maxWaitSeconds.
    Timeout,
    /// `no-agents`: no member logged in.
    NoAgents,
}

impl Moved {
    /// The queueEvent `eventName`.
    pub fn event_name(&self) -> &'static str {
        match self {
            Moved::Joined => "joined",
            Moved::Answered(_) => "answered",
            Moved::Abandoned => "abandoned",
            Moved::Left(_) => "left",
        }
    }

    /// The queueEvent `leaveCause` (`""` unless `left`).
    pub fn leave_cause(&self) -> &'static str {
        match self {
            Moved::Left(LeaveCause::Timeout) => "timeout",
            Moved::Left(LeaveCause::NoAgents) => "no-agents",
            _ => "",
        }
    }
}

/// What a takeover needs to go on with the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Where it is.
    pub phase: Phase,
    /// The caller's current wait.
    pub stay: Option<Stay>,
    /// Milliseconds spent waiting in queues so far (the current stay not included).
    pub waited_ms: i64,
    /// The last queue the caller was in (`""`: none).
    pub last_queue: String,
    /// Overflows taken.
    pub overflows: u8,
    /// The music playing to the caller, if any.
    pub music: Option<String>,
    /// Menu tries so far and the key heard in the current one.
    pub menu_try: u32,
    /// The key pressed during the current menu try.
    pub key: Option<char>,
    /// Every offer made, by leg.
    pub offers: Vec<OfferLeg>,
    /// The agent leg connected with the caller.
    pub agent: Option<LegIdx>,
    /// The first agent connected (the CDR's agentNo) and when.
    pub first_agent: Option<(String, i64)>,
    /// The queue the caller was connected from (the CDR's queueSid).
    pub answered_queue: String,
    /// The conversation's userData.
    pub user_data: String,
    /// The caller is on hold.
    #[serde(default)]
    pub held: bool,
    /// The music is stopped for a position announcement.
    #[serde(default)]
    pub announcing: bool,
    /// The byeType, once decided.
    pub bye: Option<AgentBye>,
    /// The leg whose own hangup ended the conversation.
    pub first_gone: Option<LegIdx>,
    /// The agent who last transferred the caller: later offers are transfers from it.
    #[serde(default)]
    pub transferred_by: Option<String>,
    /// Queues a transfer reached that the plan did not name, by queueSid.
    #[serde(default)]
    pub transfer_queues: BTreeMap<String, QueuePlan>,
    /// A transfer failed with no queue to go back to: the failure tone ends the call
    /// (byeType 9).
    #[serde(default)]
    pub transfer_failed: bool,
    /// The consult under way (or the conference it became).
    #[serde(default)]
    pub consult: Option<Consult>,
    /// The caller waits parked with music, away from its agent (a consult, or after one
    /// until `retrieveCall`).
    #[serde(default)]
    pub parked: bool,
    /// The caller, its agent and the consulted party talk in a conference.
    #[serde(default)]
    pub conference: bool,
    /// maxCallDuration's deadline (Unix ms, media clock), from the first connection.
    #[serde(default)]
    pub deadline: Option<i64>,
    /// Legs whose maxCallDuration hangup is set on the media server.
    #[serde(default)]
    pub armed: Vec<LegIdx>,
    /// Legs cut by maxCallDuration.
    #[serde(default)]
    pub timed_out: Vec<LegIdx>,
    /// The recording (recordAgentCalls): asked for at this instant (Unix ms, media clock),
    /// and whether the media server confirmed it (after a takeover: assumed).
    #[serde(default)]
    pub recording: Option<(i64, bool)>,
}

/// An inbound conversation.
#[derive(Debug)]
pub struct AgentFlow {
    plan: Plan,
    state: State,
    /// The application run the flow waits for.
    run: Option<u32>,
    /// A bridge asked of the media server, and the offer leg it connects.
    bridging: Option<(ReplyToken, LegIdx)>,
    /// A `bridge` command waiting for that answer.
    bridge_command: Option<CommandToken>,
    /// A hold (`true`) or retrieve asked of the media server: its answer and the command
    /// waiting for it.
    holding: Option<(ReplyToken, CommandToken, bool)>,
    /// What the announcement under way has still to play.
    announcement: Vec<App>,
    /// The CTI settings it follows once a user and an agent talk.
    rules: TalkRules,
    /// The answer that tells whether the recording started.
    record_reply: Option<ReplyToken>,
}

impl AgentFlow {
    /// A new conversation following `plan` and `rules`, with its first userData.
    pub fn new(plan: Plan, rules: TalkRules, user_data: String) -> Self {
        let phase = match plan.call_out {
            Some(_) => Phase::DialAgent,
            None => Phase::Answering,
        };
        AgentFlow {
            plan,
            rules,
            record_reply: None,
            state: State {
                phase,
                stay: None,
                waited_ms: 0,
                last_queue: String::new(),
                overflows: 0,
                music: None,
                menu_try: 0,
                key: None,
                offers: Vec::new(),
                agent: None,
                first_agent: None,
                answered_queue: String::new(),
                user_data,
                held: false,
                announcing: false,
                bye: None,
                first_gone: None,
                transferred_by: None,
                transfer_queues: BTreeMap::new(),
                transfer_failed: false,
                consult: None,
                parked: false,
                conference: false,
                deadline: None,
                armed: Vec::new(),
                timed_out: Vec::new(),
                recording: None,
            },
            run: None,
            bridging: None,
            bridge_command: None,
            holding: None,
            announcement: Vec::new(),
        }
    }

    /// The conversation taken over, from its last snapshot (else as new).
    pub fn resumed(mut self, snapshot: Option<State>) -> Self {
        if let Some(state) = snapshot {
            self.state = state;
        }
        self
    }

    /// What it follows.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The user's leg.
    pub fn user(&self) -> LegIdx {
        match self.plan.call_out {
            Some(_) => CALL_OUT_USER,
            None => CALLER,
        }
    }

    /// The agent who placed it, if it is a callOut.
    pub fn call_out(&self) -> Option<&AgentCall> {
        self.plan.call_out.as_deref()
    }

    /// Whether leg `leg` is a callOut's agent leg.
    pub fn is_call_out_agent(&self, leg: LegIdx) -> bool {
        self.plan.call_out.is_some() && leg == CALL_OUT_AGENT
    }

    /// Where it is.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The offer of leg `leg`, if it is an agent's leg.
    pub fn offer(&self, leg: LegIdx) -> Option<&OfferLeg> {
        self.state.offer(leg)
    }

    /// How agent leg `leg` went so far.
    pub fn outcome(&self, core: &Core, leg: LegIdx) -> OfferOutcome {
        let Some(o) = self.offer(leg) else {
            return OfferOutcome::Withdrawn;
        };
        match () {
            _ if o.bridged_at.is_some() => OfferOutcome::Connected,
            _ if core.legs[leg].is_live() => OfferOutcome::Pending,
            _ if o.withdrawn => OfferOutcome::Withdrawn,
            _ if o.rejected => OfferOutcome::Rejected,
            _ => OfferOutcome::Missed,
        }
    }

    /// Milliseconds the caller spent in queues, up to `now`.
    pub fn wait_ms(&self, now: i64) -> i64 {
        let current = self
            .state
            .stay
            .as_ref()
            .map_or(0, |s| (now - s.join_ms).max(0));
        self.state.waited_ms + current
    }

    /// What the conversation knows of queue `sid`: from its plan, or reached by a transfer.
    pub fn queue(&self, sid: &str) -> Option<&QueuePlan> {
        self.plan
            .queues
            .get(sid)
            .or_else(|| self.state.transfer_queues.get(sid))
    }

    fn snapshot(&self, core: &mut Core) {
        core.snapshot_connected(self.state.phase == Phase::Talking, &self.state);
    }

    pub(super) fn start(&mut self, core: &mut Core) {
        match self.plan.call_out.as_deref().map(|c| c.call_type) {
            Some(CallType::PhoneDialOut) => return self.phone_dialled(core),
            Some(_) => return self.dial_agent(core),
            None => {}
        }
        self.snapshot(core);
        if let Some(outbound) = &self.plan.outbound {
            // A backend outbound call: the user is dialled; its answer starts the route.
            let dial = Dial {
                to: self.plan.user_number.clone(),
                from: outbound.caller_id.clone(),
                timeout_secs: outbound.answer_timeout,
                ignore_early_media: true,
                endpoint: Endpoint::Number,
                auto_answer: false,
                park_after_bridge: true,
                eavesdrop: None,
            };
            core.originate(self.user(), dial, false);
            return;
        }
        core.emit(Effect::Follow(self.user()));
        // It may have hung up before it was followed.
        core.probe(self.user());
        self.run = core.execute(self.user(), App::Answer);
    }

    pub(super) fn restored(&mut self, core: &mut Core) {
        if core.ending.is_some() {
            return;
        }
        self.restore_recording();
        if let Some(bye) = self.state.bye.take() {
            return self.end(core, bye);
        }
        self.restore_dialing(core);
        for (leg, cause) in core.unheard_hangups() {
            self.on_leg(core, leg, Happened::HangingUp(cause));
        }
        if self.state.bye.is_some() || core.ending.is_some() {
            return;
        }
        for leg in 0..core.legs.len() {
            self.arm(core, leg);
        }
        // Offers that ended while nobody drove the call.
        let over: Vec<LegIdx> = self
            .state
            .offers
            .iter()
            .filter(|o| o.bridged_at.is_none() && !core.legs[o.leg].is_live())
            .filter(|o| o.consulted_from.is_none())
            .map(|o| o.leg)
            .collect();
        for leg in over {
            self.offer_over(core, leg);
        }
        self.restore_consult(core);
        match self.state.phase {
            Phase::Answering if self.plan.outbound.is_some() => {
                if core.legs[self.user()].answered() {
                    self.route(core);
                }
            }
            Phase::Answering => self.run = core.execute(self.user(), App::Answer),
            Phase::Welcome => self.route(core),
            Phase::Menu => self.play_menu(core),
            Phase::Closing => self.end(core, self.closing_bye()),
            Phase::Talking | Phase::DialAgent | Phase::DialUser => {}
            Phase::Waiting => {
                // The matchmaker of this process learns of the caller, in its place.
                if let Some(stay) = self.state.stay.clone() {
                    core.emit(Effect::Queue(QueueSignal::Join {
                        target: stay.target,
                        join_ms: stay.join_ms,
                        place: match stay.head {
                            true => Place::Head,
                            false => Place::InTurn,
                        },
                        join_type: stay.join_type,
                        resumed: true,
                    }));
                    self.arm_wait(core);
                    self.arm_announce(core);
                    if self.state.music.is_none() {
                        // An announcement was cut short: it ends, the music comes back.
                        core.media(self.user(), MediaCommand::Park);
                        self.resume_music(core);
                    }
                }
                let answered: Vec<LegIdx> = self
                    .ringing(core)
                    .filter(|&l| core.legs[l].answered() && core.legs[l].up())
                    .collect();
                for leg in answered {
                    self.offer_answered(core, leg);
                }
            }
        }
    }

    /// The offer legs still on and not connected.
    fn ringing<'a>(&'a self, core: &'a Core) -> impl Iterator<Item = LegIdx> + 'a {
        self.state
            .offers
            .iter()
            .filter(|o| o.bridged_at.is_none() && !o.withdrawn && !o.rejected)
            .filter(|o| o.monitor.is_none() && o.intercepts.is_none())
            .filter(|o| core.legs[o.leg].is_live())
            .map(|o| o.leg)
    }

    pub(super) fn on_leg(&mut self, core: &mut Core, leg: LegIdx, happened: Happened) {
        if core.ending.is_some() || self.state.bye.is_some() {
            return;
        }
        let user = self.user();
        let answered = happened == Happened::Answered;
        let dialing = self.dialing();
        match (leg, happened) {
            (CALL_OUT_AGENT, Happened::Answered) if self.state.phase == Phase::DialAgent => {
                self.dial_user(core)
            }
            (_, Happened::Answered) if leg == user && self.state.phase == Phase::DialUser => {
                self.user_answered(core)
            }
            (_, Happened::HangingUp(cause)) if dialing => self.dial_over(core, leg, &cause),
            (_, Happened::HangingUp(cause))
                if cause == MAX_DURATION_CAUSE && self.state.deadline.is_some() =>
            {
                self.time_limit(core, leg)
            }
            (_, Happened::AppDone(Some(run))) if leg == user && self.run == Some(run) => {
                self.run = None;
                self.next(core);
            }
            (_, Happened::Answered)
                if leg == user
                    && self.plan.outbound.is_some()
                    && self.state.phase == Phase::Answering =>
            {
                self.route(core)
            }
            (_, Happened::Key(key)) if leg == user && self.state.phase == Phase::Menu => {
                self.state.key.get_or_insert(key);
            }
            (_, Happened::HangingUp(cause)) if leg == user => self.user_left(core, &cause),
            (_, Happened::Answered) if self.is_consult_leg(leg) => self.consult_answered(core, leg),
            (_, Happened::Answered) if self.is_monitor_leg(leg) => self.monitor_answered(core, leg),
            (_, Happened::Answered) if self.intercepting(leg).is_some() => {
                self.intercept_answered(core, leg)
            }
            (_, Happened::Ended) if self.intercepting(leg).is_some() => {}
            (_, Happened::Key(key)) if self.is_monitor_leg(leg) => self.monitor_key(core, leg, key),
            (_, Happened::Ended) if self.is_monitor_leg(leg) => {}
            (_, Happened::Answered) if leg != user => self.offer_answered(core, leg),
            (_, Happened::HangingUp(cause))
                if Some(leg) == self.state.agent
                    && cause != MEDIA_LOST
                    && self.agent_leaves_consult(core, leg) => {}
            (_, Happened::HangingUp(cause)) if Some(leg) == self.state.agent => {
                self.state.first_gone = Some(leg);
                let bye = match cause.as_str() {
                    MEDIA_LOST => AgentBye::MediaFailure,
                    _ => AgentBye::AgentHungUp,
                };
                self.end(core, bye);
            }
            (_, Happened::Ended) if self.is_consult_leg(leg) => {
                self.stop_monitors_of(core, leg);
                self.consult_over(core, leg)
            }
            (_, Happened::Ended) if leg != user && Some(leg) != self.state.agent => {
                self.stop_monitors_of(core, leg);
                self.offer_over(core, leg)
            }
            _ => {}
        }
        // Every leg that talks is cut at maxCallDuration's deadline.
        if answered && self.state.bye.is_none() && core.ending.is_none() {
            self.arm(core, leg);
        }
    }

    /// An application run on the caller ended: the next thing to do.
    fn next(&mut self, core: &mut Core) {
        match self.state.phase {
            Phase::Answering => match self.plan.welcome.clone() {
                Some(file) => {
                    self.state.phase = Phase::Welcome;
                    self.snapshot(core);
                    self.run = core.execute(self.user(), App::Playback(file));
                    if self.run.is_none() {
                        self.route(core);
                    }
                }
                None => self.route(core),
            },
            Phase::Welcome => self.route(core),
            Phase::Menu => self.menu_done(core),
            Phase::Closing => self.end(core, self.closing_bye()),
            Phase::Waiting => self.announce_next(core),
            Phase::Talking | Phase::DialAgent | Phase::DialUser => {}
        }
    }

    fn route(&mut self, core: &mut Core) {
        let join_type = match self.plan.outbound {
            Some(_) => JoinType::Outbound,
            None => JoinType::DialIn,
        };
        match self.plan.route.clone() {
            Route::Step(step) => self.take(core, step, join_type),
            Route::Menu(_) => {
                self.state.phase = Phase::Menu;
                self.state.menu_try = 1;
                self.play_menu(core);
            }
        }
    }

    fn play_menu(&mut self, core: &mut Core) {
        let Route::Menu(menu) = &self.plan.route else {
            return self.route(core);
        };
        self.state.key = None;
        let app = App::OneKey(menu.prompt.clone(), menu.timeout_secs * 1000);
        self.snapshot(core);
        self.run = core.execute(self.user(), app);
    }

    /// A menu try ended: the key's step, another try, or the default.
    fn menu_done(&mut self, core: &mut Core) {
        let Route::Menu(menu) = self.plan.route.clone() else {
            return;
        };
        let chosen = self
            .state
            .key
            .take()
            .and_then(|k| menu.keys.get(&k).cloned());
        match chosen {
            Some(step) => self.take(core, step, JoinType::DialIn),
            None if self.state.menu_try < menu.tries => {
                self.state.menu_try += 1;
                self.play_menu(core);
            }
            None => self.take(core, menu.default, JoinType::DialIn),
        }
    }

    /// Follows `step`.
    fn take(&mut self, core: &mut Core, step: Step, join_type: JoinType) {
        match step {
            Step::Queue(sid) => {
                self.join(core, Target::Queue(sid), (join_type, Place::InTurn), None)
            }
            Step::Agent { agent_no, fallback } => self.join(
                core,
                Target::Agent(agent_no),
                (join_type, Place::InTurn),
                Some(*fallback),
            ),
            Step::Hangup(file) => self.close(core, file),
        }
    }

    /// Plays `file`, then the call ends (byeType 8).
    fn close(&mut self, core: &mut Core, file: String) {
        self.state.phase = Phase::Closing;
        self.stop_music(core);
        self.snapshot(core);
        self.run = core.execute(self.user(), App::Playback(file));
        if self.run.is_none() {
            self.end(core, self.closing_bye());
        }
    }

    /// The byeType of a call ended by a hangup prompt or the failure tone.
    fn closing_bye(&self) -> AgentBye {
        match self.state.transfer_failed {
            true => AgentBye::TransferFailed,
            false => AgentBye::RouteHangup,
        }
    }

    /// Whatever the caller hears while it waits (the music, an announcement) stops.
    fn stop_music(&mut self, core: &mut Core) {
        let announcing = std::mem::take(&mut self.state.announcing);
        if announcing {
            self.announcement.clear();
            self.run = None;
        }
        if self.state.music.take().is_some() || announcing {
            core.media(self.user(), MediaCommand::Park);
        }
    }

    /// Loops `music` to the caller (it hears nothing else meanwhile).
    fn play_music(&mut self, core: &mut Core, music: String) {
        let endless = format!("endless_playback::{music}");
        core.media(self.user(), MediaCommand::Broadcast(endless, Hears::This));
        self.state.music = Some(music);
    }

    /// The caller starts waiting for `target`, with its music, in `place`.
    fn join(
        &mut self,
        core: &mut Core,
        target: Target,
        (join_type, place): (JoinType, Place),
        otherwise: Option<Step>,
    ) {
        let music = match &target {
            Target::Queue(sid) => match self.queue(sid) {
                Some(queue) => queue.music.clone(),
                // A queue deleted since the route was read.
                None => return self.close(core, self.plan.failure.clone()),
            },
            Target::Agent(_) => self.default_music(),
        };
        if let Target::Queue(sid) = &target {
            self.state.last_queue = sid.clone();
        }
        self.state.phase = Phase::Waiting;
        if self.state.music.as_deref() != Some(music.as_str()) {
            self.stop_music(core);
            self.play_music(core, music);
        }
        let join_ms = core.now;
        self.state.stay = Some(Stay {
            target: target.clone(),
            join_ms,
            join_type,
            timed_out: false,
            otherwise,
            head: place == Place::Head,
        });
        self.arm_wait(core);
        self.arm_announce(core);
        if let Target::Queue(sid) = &target {
            core.journal(Write::Waiting(Some((
                sid.clone(),
                join_ms,
                join_type.code(),
            ))));
        }
        self.moved(core, Moved::Joined);
        self.snapshot(core);
        core.emit(Effect::Queue(QueueSignal::Join {
            target,
            join_ms,
            place,
            join_type,
            resumed: false,
        }));
    }

    /// The music of a call that came through no queue (§3.5 `musicOnHold`): the
    /// application's, else FreeSWITCH's own music on hold.
    fn default_music(&self) -> String {
        match self.rules.music_on_hold.as_str() {
            "" => crate::orchestrator::unit::FREESWITCH_MUSIC_ON_HOLD.into(),
            music => music.into(),
        }
    }

    /// The longest a caller waits for `target` (0: no limit).
    fn max_wait_secs(&self, target: &Target) -> u32 {
        match (&self.plan.outbound, target) {
            (Some(outbound), _) => outbound.max_wait_secs,
            (None, Target::Queue(sid)) => self.queue(sid).map_or(0, |q| q.max_wait_secs),
            (None, Target::Agent(_)) => 0,
        }
    }

    /// maxWaitSeconds of the current queue, from its join time.
    fn arm_wait(&mut self, core: &mut Core) {
        let Some(stay) = &self.state.stay else {
            return;
        };
        let max = self.max_wait_secs(&stay.target);
        if max > 0 {
            let left = stay.join_ms + i64::from(max) * 1000 - core.now;
            core.emit(Effect::SetTimer(Timer::QueueWait, left.max(0)));
        } else {
            core.emit(Effect::CancelTimer(Timer::QueueWait));
        }
    }

    /// The position announcement of the current queue, if it has one.
    fn announce_plan(&self) -> Option<(&str, &AnnouncePlan)> {
        match &self.state.stay.as_ref()?.target {
            Target::Queue(sid) => Some((sid.as_str(), self.queue(sid)?.announce.as_ref()?)),
            Target::Agent(_) => None,
        }
    }

    /// The next position announcement: every `everySeconds` of the stay, from its join
    /// (a caller taken over keeps its rhythm).
    fn arm_announce(&mut self, core: &mut Core) {
        let (Some(stay), Some((_, announce))) = (&self.state.stay, self.announce_plan()) else {
            return core.emit(Effect::CancelTimer(Timer::Announce));
        };
        let every = i64::from(announce.every_secs.max(1)) * 1000;
        let into = (core.now - stay.join_ms).max(0) % every;
        core.emit(Effect::SetTimer(Timer::Announce, every - into));
    }

    /// The matchmaker gave the caller's position: the music stops, the prompt and the
    /// position play, then the music again (not while an agent is being connected).
    fn announce(&mut self, core: &mut Core, position: usize) {
        let connecting = self.bridging.is_some() || self.state.agent.is_some();
        if self.state.phase != Phase::Waiting || connecting || self.state.announcing {
            return;
        }
        let Some((_, announce)) = self.announce_plan() else {
            return;
        };
        let mut apps = vec![App::Say(format!("zh NUMBER PRONOUNCED {position}"))];
        apps.extend(announce.prompt.clone().map(App::Playback));
        self.stop_music(core);
        self.state.announcing = true;
        self.announcement = apps;
        self.snapshot(core);
        self.announce_next(core);
    }

    /// The announcement's next part, or, once it is over, the music again.
    fn announce_next(&mut self, core: &mut Core) {
        if !self.state.announcing {
            return;
        }
        while let Some(app) = self.announcement.pop() {
            self.run = core.execute(self.user(), app);
            if self.run.is_some() {
                return;
            }
        }
        self.resume_music(core);
    }

    /// A waiting caller whose music was stopped (an announcement over or cut short by a
    /// takeover) hears its queue's music again.
    fn resume_music(&mut self, core: &mut Core) {
        self.state.announcing = false;
        self.announcement.clear();
        let music = match &self.state.stay {
            Some(Stay {
                target: Target::Queue(sid),
                ..
            }) => self.queue(sid).map(|q| q.music.clone()),
            Some(Stay {
                target: Target::Agent(_),
                ..
            }) => Some(self.default_music()),
            None => None,
        };
        if let Some(music) = music.filter(|_| self.state.music.is_none()) {
            self.play_music(core, music);
        }
        self.snapshot(core);
    }

    /// The caller's wait ends now: its time counts, its Live-view row goes and its
    /// timers stop.
    fn end_stay(&mut self, core: &mut Core) -> Option<Stay> {
        let stay = self.state.stay.take()?;
        self.state.waited_ms += (core.now - stay.join_ms).max(0);
        core.journal(Write::Waiting(None));
        core.emit(Effect::CancelTimer(Timer::QueueWait));
        core.emit(Effect::CancelTimer(Timer::Announce));
        Some(stay)
    }

    /// The queueEvent of the caller's current stay, if it is in a queue.
    fn moved(&self, core: &mut Core, moved: Moved) {
        if let Some(Stay {
            target: Target::Queue(queue),
            join_ms,
            join_type,
            ..
        }) = &self.state.stay
        {
            core.journal(Write::QueueEvent(QueueMove {
                queue: queue.clone(),
                join_ms: *join_ms,
                join_type: *join_type,
                moved,
                at_ms: core.now,
            }));
        }
    }

    /// The caller stops waiting without an agent (`cause`): the matchmaker is told, then
    /// the queue's overflow (or the agent route's fallback) is taken.
    fn leave(&mut self, core: &mut Core, cause: LeaveCause) {
        self.moved(core, Moved::Left(cause));
        let Some(stay) = self.end_stay(core) else {
            return;
        };
        core.emit(Effect::Queue(QueueSignal::Leave));
        if stay.join_type == JoinType::Transfer && matches!(stay.target, Target::Agent(_)) {
            return self.transfer_failed(core);
        }
        let next = match (&stay.target, stay.otherwise) {
            // A backend outbound user who waited its maxWaitSeconds hears the failure tone.
            _ if self.plan.outbound.is_some() => Step::Hangup(self.plan.failure.clone()),
            (_, Some(otherwise)) => otherwise,
            (Target::Queue(sid), None) => self.queue(sid).map_or_else(
                || Step::Hangup(self.plan.failure.clone()),
                |q| q.overflow.clone(),
            ),
            (Target::Agent(_), None) => Step::Hangup(self.plan.failure.clone()),
        };
        match next {
            Step::Queue(_) | Step::Agent { .. } if self.state.overflows >= MAX_OVERFLOWS => {
                self.close(core, self.plan.failure.clone())
            }
            step @ (Step::Queue(_) | Step::Agent { .. }) => {
                self.state.overflows += 1;
                self.take(core, step, JoinType::Overflow)
            }
            step => self.take(core, step, JoinType::Overflow),
        }
    }

    pub(super) fn on_timer(&mut self, core: &mut Core, timer: Timer) {
        if core.ending.is_some() || self.state.bye.is_some() {
            return;
        }
        match timer {
            Timer::QueueWait if self.state.phase == Phase::Waiting => {
                // The wait ran out on the media clock, whose last event may be older.
                if let Some(stay) = &self.state.stay {
                    let max = self.max_wait_secs(&stay.target);
                    core.now = core.now.max(stay.join_ms + i64::from(max) * 1000);
                }
                if self.ringing(core).next().is_some() {
                    // The ringing offer finishes first.
                    if let Some(stay) = &mut self.state.stay {
                        stay.timed_out = true;
                    }
                } else {
                    self.leave(core, LeaveCause::Timeout);
                }
            }
            Timer::OfferBridge(leg) if self.offer(leg).is_some_and(|o| o.bridged_at.is_none()) => {
                core.hang_up(leg, "NO_ANSWER")
            }
            Timer::Announce if self.state.phase == Phase::Waiting => {
                if let Some((queue, announce)) = self.announce_plan() {
                    // The next one counts from this one (the media clock may lag).
                    let every = i64::from(announce.every_secs.max(1)) * 1000;
                    let queue = queue.to_string();
                    core.emit(Effect::SetTimer(Timer::Announce, every));
                    core.emit(Effect::Queue(QueueSignal::Announce(queue)));
                }
            }
            _ => {}
        }
    }

    /// An offer's device answered: connected at once, or — autoAnswer — once the agent
    /// asks with `bridge` (within the ringTimeout).
    fn offer_answered(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(offer) = self.offer(leg).cloned() else {
            return;
        };
        if offer.withdrawn || offer.rejected || self.state.phase != Phase::Waiting {
            return;
        }
        if self.state.agent.is_some() || self.bridging.is_some() {
            // Another agent won (ring-all).
            return self.withdraw(core, leg, "LOSE_RACE");
        }
        if offer.offer.auto_answer {
            let ring = self.ring_timeout(&offer.offer.queue);
            core.emit(Effect::SetTimer(
                Timer::OfferBridge(leg),
                i64::from(ring) * 1000,
            ));
            return;
        }
        self.connect(core, leg);
    }

    fn ring_timeout(&self, queue: &str) -> u32 {
        self.queue(queue).map_or(20, |q| q.ring_timeout_secs)
    }

    /// Bridges the caller with offer leg `leg` (whatever the caller hears stops).
    fn connect(&mut self, core: &mut Core, leg: LegIdx) {
        let channel = core.legs[leg].channel.clone();
        match core.ask(self.user(), MediaCommand::BridgeWith(channel)) {
            Some(reply) => self.bridging = Some((reply, leg)),
            None => self.withdraw(core, leg, "NORMAL_CLEARING"),
        }
    }

    /// The media server answered the bridge, or a hold or retrieve.
    pub(super) fn on_reply(&mut self, core: &mut Core, token: ReplyToken, ok: bool) {
        if self.recording_answered(core, token, ok) {
            return;
        }
        if let Some((_, command, hold)) = self.holding.filter(|(t, _, _)| *t == token) {
            self.holding = None;
            return self.held(core, command, hold, ok);
        }
        let Some((_, leg)) = self.bridging.filter(|(t, _)| *t == token) else {
            return;
        };
        self.bridging = None;
        let verdict = if ok && core.ending.is_none() && core.legs[leg].talking() {
            self.bridged(core, leg);
            Ok(())
        } else {
            // The agent's channel went away meanwhile: the offer is over.
            if core.ending.is_none() {
                core.hang_up(leg, "NORMAL_TEMPORARY_FAILURE");
            }
            Err(Refusal::State("the call could not be connected".into()))
        };
        if let Some(command) = self.bridge_command.take() {
            core.emit(Effect::Reply(command, verdict));
        }
    }

    fn bridged(&mut self, core: &mut Core, leg: LegIdx) {
        let now = core.now;
        let Some(index) = self.state.offers.iter().position(|o| o.leg == leg) else {
            return;
        };
        self.state.offers[index].bridged_at = Some(now);
        let agent_no = self.state.offers[index].offer.agent_no.clone();
        let queue = self.state.offers[index].offer.queue.clone();
        // The bridge ended the music or an announcement.
        self.state.music = None;
        self.state.announcing = false;
        self.state.parked = false;
        self.announcement.clear();
        self.state.agent = Some(leg);
        self.state.phase = Phase::Talking;
        self.state.answered_queue = queue;
        self.state
            .first_agent
            .get_or_insert((agent_no.clone(), now));
        self.moved(core, Moved::Answered(agent_no.clone()));
        self.end_stay(core);
        core.emit(Effect::CancelTimer(Timer::OfferBridge(leg)));
        let losers: Vec<LegIdx> = self.ringing(core).filter(|&l| l != leg).collect();
        for loser in losers {
            self.withdraw(core, loser, "LOSE_RACE");
        }
        core.journal(Write::Bridged(leg, now));
        self.talk_began(core, now);
        self.snapshot(core);
        // A number a transfer reached is no agent of the matchmaker's.
        if !agent_no.is_empty() {
            core.emit(Effect::Queue(QueueSignal::Answered(agent_no)));
        }
    }

    /// The platform withdraws offer `leg` (`failed (canceled)` for its agent).
    fn withdraw(&mut self, core: &mut Core, leg: LegIdx, cause: &str) {
        self.mark_withdrawn(core, leg);
        core.hang_up(leg, cause);
    }

    /// Offer `leg` is the platform's to end: withdrawn, and abandoned if it rings.
    fn mark_withdrawn(&mut self, core: &mut Core, leg: LegIdx) {
        if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
            o.withdrawn = true;
        }
        if !core.legs[leg].answered() {
            core.legs[leg].canceled = true;
        }
    }

    /// Offer leg `leg` ended without being connected.
    fn offer_over(&mut self, core: &mut Core, leg: LegIdx) {
        let outcome = self.outcome(core, leg);
        if !matches!(outcome, OfferOutcome::Missed | OfferOutcome::Rejected) {
            return;
        }
        let offer = self.offer(leg);
        let agent_no = offer.map(|o| o.offer.agent_no.clone());
        // A supervisor's intercept missed: the offer it replaced is over too.
        let replaced = offer.and_then(|o| o.replaces.clone());
        let intercept_missed = replaced.is_some();
        for agent_no in agent_no.into_iter().chain(replaced) {
            if !agent_no.is_empty() {
                core.emit(Effect::Queue(QueueSignal::Missed(agent_no)));
            }
        }
        if intercept_missed {
            self.back_to_head(core);
        }
        self.snapshot(core);
        if self.state.phase != Phase::Waiting || self.ringing(core).next().is_some() {
            return;
        }
        let Some(stay) = self.state.stay.as_ref() else {
            // The number a transfer dialled did not answer.
            return self.transfer_failed(core);
        };
        // An agent route, or a transfer to an agent, takes its fallback at once; a backend
        // outbound user waits on for its agent.
        let to_agent = matches!(stay.target, Target::Agent(_));
        let transfer = stay.join_type == JoinType::Transfer;
        if to_agent && (transfer || self.plan.outbound.is_none()) || stay.timed_out {
            self.leave(core, LeaveCause::Timeout);
        }
    }

    /// A waiting caller goes to the head of its line (a supervisor's intercept of its
    /// offer missed: §7.2), keeping its join time.
    fn back_to_head(&mut self, core: &mut Core) {
        let Some(stay) = self.state.stay.as_mut().filter(|s| !s.head) else {
            return;
        };
        stay.head = true;
        let stay = stay.clone();
        core.emit(Effect::Queue(QueueSignal::Leave));
        core.emit(Effect::Queue(QueueSignal::Join {
            target: stay.target,
            join_ms: stay.join_ms,
            place: Place::Head,
            join_type: stay.join_type,
            resumed: false,
        }));
    }

    /// The caller hangs up: abandoned unless it talked or heard the hangup prompt.
    fn user_left(&mut self, core: &mut Core, cause: &str) {
        self.state.first_gone = Some(self.user());
        let bye = match self.state.phase {
            _ if cause == MEDIA_LOST => AgentBye::MediaFailure,
            // A backend outbound user who never answered.
            _ if self.plan.outbound.is_some() && !core.legs[self.user()].answered() => {
                AgentBye::FirstNoAnswer
            }
            Phase::Talking => AgentBye::UserHungUp,
            Phase::Closing => self.closing_bye(),
            // Waiting for the number a transfer dials: it had talked with an agent.
            Phase::Waiting if self.state.stay.is_none() => AgentBye::UserHungUp,
            _ => AgentBye::Abandoned,
        };
        self.end(core, bye);
    }

    /// Ends the conversation: offers still ringing are withdrawn, every leg is hung up.
    fn end(&mut self, core: &mut Core, bye: AgentBye) {
        if self.state.bye.is_some() {
            return;
        }
        self.state.bye = Some(bye);
        if bye == AgentBye::Abandoned {
            self.moved(core, Moved::Abandoned);
        }
        if self.end_stay(core).is_some() {
            core.emit(Effect::Queue(QueueSignal::Leave));
        }
        // (A callOut's agent leg hanging up by itself ends as it does.)
        let ringing: Vec<LegIdx> = self
            .ringing(core)
            .filter(|&l| !self.is_call_out_agent(l) || core.legs[l].up())
            .collect();
        for leg in ringing {
            self.mark_withdrawn(core, leg);
        }
        // A callOut's user still ringing is abandoned.
        if self.plan.call_out.is_some()
            && let Some(l) = core.legs.get_mut(CALL_OUT_USER)
            && l.up()
            && !l.answered()
        {
            l.canceled = true;
        }
        self.snapshot(core);
        core.end_call("NORMAL_CLEARING");
    }

    pub(super) fn on_command(&mut self, core: &mut Core, token: CommandToken, command: Command) {
        let verdict = match command {
            _ if self.state.bye.is_some() || core.ending.is_some() => Err(Refusal::ended()),
            Command::Queue(QueueOrder::Offer(offer)) => self.make_offer(core, offer),
            Command::Queue(QueueOrder::Announce(position)) => {
                self.announce(core, position);
                Ok(Some(()))
            }
            Command::Queue(QueueOrder::NoAgents) => {
                if self.state.phase == Phase::Waiting && self.ringing(core).next().is_none() {
                    self.leave(core, LeaveCause::NoAgents);
                }
                Ok(Some(()))
            }
            Command::Agent(agent_no, order) => self.order(core, token, &agent_no, order),
            Command::Cancel | Command::AddCall(_) => Err(Refusal::State(
                "not a command of an agent's conversation".into(),
            )),
        };
        if let Some(verdict) = verdict.transpose() {
            core.emit(Effect::Reply(token, verdict));
        }
    }

    /// Dials the agent of `offer` (the caller keeps its music).
    fn make_offer(&mut self, core: &mut Core, offer: Offer) -> Result<Option<()>, Refusal> {
        if self.state.phase != Phase::Waiting {
            return Err(Refusal::State("the caller is not waiting".into()));
        }
        let queue = offer.queue.clone();
        let ring = match &self.state.stay {
            Some(Stay {
                target: Target::Agent(_),
                ..
            }) => self.ring_timeout(""),
            _ => self.ring_timeout(&queue),
        };
        self.dial_offer(core, offer, ring);
        Ok(Some(()))
    }

    /// An agent's command: which of its legs it is about decides what it does.
    fn order(
        &mut self,
        core: &mut Core,
        token: CommandToken,
        agent_no: &str,
        order: AgentOrder,
    ) -> Result<Option<()>, Refusal> {
        let leg = self
            .state
            .offers
            .iter()
            .rev()
            .find(|o| o.offer.agent_no == agent_no && !o.left && core.legs[o.leg].is_live())
            .map(|o| o.leg)
            .ok_or_else(|| Refusal::State("the agent has no leg in this call".into()))?;
        let connected = self.state.agent == Some(leg);
        let consulting = self.state.consult.is_some() || self.state.conference;
        let waiting = self.state.phase == Phase::Waiting;
        match order {
            AgentOrder::Hangup if self.dialing() => self.cancel_dialing(core),
            AgentOrder::Hangup if connected => {
                if !self.agent_leaves_consult(core, leg) {
                    // A consult still ringing is canceled first (§7.1): it ends before
                    // the agent's own leg.
                    if self.state.consult.is_none() {
                        self.state.first_gone = Some(leg);
                    }
                    self.end(core, AgentBye::AgentHungUp);
                }
            }
            // A supervisor stops listening.
            AgentOrder::Hangup if self.is_monitor_leg(leg) => core.hang_up(leg, "NORMAL_CLEARING"),
            AgentOrder::Monitor(supervision) if connected => {
                self.supervise(core, leg, supervision)?
            }
            AgentOrder::Intercept(interception) if connected => {
                self.intercept(core, leg, interception)?
            }
            AgentOrder::Intercept(interception)
                if waiting && self.ringing(core).any(|l| l == leg) && self.bridging.is_none() =>
            {
                self.intercept_offer(core, leg, interception)?
            }
            AgentOrder::Monitor(_) | AgentOrder::Intercept(_) => {
                return Err(Refusal::State(
                    "the agent is not talking with the caller".into(),
                ));
            }
            // The consulted agent leaves a consult it answered.
            AgentOrder::Hangup if self.is_consult_leg(leg) && core.legs[leg].answered() => {
                core.hang_up(leg, "NORMAL_CLEARING")
            }
            AgentOrder::ForceHangup if connected => self.end(core, AgentBye::Forced),
            AgentOrder::ForceHangup => {
                return Err(Refusal::State(
                    "forceHangup needs the agent connected to the caller".into(),
                ));
            }
            AgentOrder::Hangup => {
                if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
                    o.rejected = true;
                }
                core.hang_up(leg, "CALL_REJECTED");
            }
            AgentOrder::Bridge
                if waiting
                    && !connected
                    && !self.is_consult_leg(leg)
                    && core.legs[leg].talking()
                    && self.bridging.is_none() =>
            {
                self.connect(core, leg);
                if self.bridging.is_some() {
                    self.bridge_command = Some(token);
                    return Ok(None);
                }
                return Err(Refusal::State("the call could not be connected".into()));
            }
            AgentOrder::Bridge if self.is_call_out_agent(leg) => {
                return Err(Refusal::State(
                    "bridge connects an offer; a callOut connects by itself".into(),
                ));
            }
            AgentOrder::Bridge => {
                return Err(Refusal::State(
                    "bridge needs an offer answered and not connected".into(),
                ));
            }
            AgentOrder::SendDtmf(digits) if connected => {
                // Toward the party the agent talks to: the consulted one, else the caller.
                let to = match self.state.consult {
                    Some(c) if !self.state.conference && core.legs[c.leg].talking() => c.leg,
                    _ => self.user(),
                };
                core.media(to, MediaCommand::SendDtmf(digits))
            }
            AgentOrder::SendDtmf(_) => {
                return Err(Refusal::State("sendDtmf needs a connected call".into()));
            }
            AgentOrder::SetUserData(data) => {
                self.state.user_data = data;
                self.snapshot(core);
            }
            AgentOrder::Transfer(_) if consulting => {
                return Err(Refusal::State(
                    "a consult is under way: consultTransfer or cancelConsult".into(),
                ));
            }
            AgentOrder::Transfer(to) if connected => self.transfer(core, leg, to)?,
            AgentOrder::Consult(to) if connected => self.consult(core, leg, to)?,
            AgentOrder::ConsultTransfer if connected => self.consult_transfer(core)?,
            AgentOrder::ConsultConference if connected => self.consult_conference(core)?,
            AgentOrder::CancelConsult if connected => self.cancel_consult(core)?,
            AgentOrder::Transfer(_)
            | AgentOrder::Consult(_)
            | AgentOrder::ConsultTransfer
            | AgentOrder::ConsultConference
            | AgentOrder::CancelConsult => {
                return Err(Refusal::State(
                    "the agent is not connected to the caller".into(),
                ));
            }
            AgentOrder::Hold if connected && (self.state.parked || self.state.conference) => {
                return Err(Refusal::State(
                    "the caller is parked by a consult or in a conference".into(),
                ));
            }
            AgentOrder::Retrieve if connected && self.state.parked && consulting => {
                return Err(Refusal::State(
                    "a consult is under way: cancelConsult ends it".into(),
                ));
            }
            AgentOrder::Retrieve if connected && self.state.parked => {
                self.retrieve_parked(core, leg)
            }
            AgentOrder::Hold | AgentOrder::Retrieve => {
                let hold = order == AgentOrder::Hold;
                return self
                    .ask_hold(core, token, leg, connected, hold)
                    .map(|()| None);
            }
        }
        Ok(Some(()))
    }

    /// The music a caller hears while its agent holds it or transfers it to a number: its
    /// queue's, else the application's default.
    fn hold_music(&self) -> String {
        match self.queue(&self.state.answered_queue) {
            Some(queue) => queue.music.clone(),
            None => self.default_music(),
        }
    }

    /// `transfer` by the agent of connected leg `leg`: the agent leaves at once (its hold
    /// released first, so the music does not outlive it) and the caller, with music,
    /// waits for `to`.
    fn transfer(&mut self, core: &mut Core, leg: LegIdx, to: TransferTo) -> Result<(), Refusal> {
        if self.holding.is_some() {
            return Err(Refusal::State("a hold or retrieve is under way".into()));
        }
        let by = self.offer(leg).map(|o| o.offer.agent_no.clone());
        if std::mem::take(&mut self.state.held) {
            core.media(leg, MediaCommand::Hold(false));
        }
        if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
            o.left = true;
        }
        self.state.agent = None;
        self.state.phase = Phase::Waiting;
        // Parked by a consult that failed: it now waits for the transfer's target.
        self.state.parked = false;
        self.state.transferred_by = by;
        core.hang_up(leg, "NORMAL_CLEARING");
        match to {
            TransferTo::Queue { queue, plans } => {
                self.state.transfer_queues.extend(plans);
                let how = (JoinType::Transfer, Place::InTurn);
                self.join(core, Target::Queue(queue), how, None);
            }
            TransferTo::Agent(agent_no) => {
                let how = (JoinType::Transfer, Place::InTurn);
                self.join(core, Target::Agent(agent_no), how, None);
            }
            // The caller hears music while the number is dialled; it is connected once
            // the number answers.
            TransferTo::Number(number) => {
                let music = self.hold_music();
                self.play_music(core, music);
                let timeout_secs = number.timeout_secs;
                self.dial_offer(core, Offer::number(number), timeout_secs);
            }
        }
        Ok(())
    }

    /// Dials a new leg for `offer`, ringing `timeout_secs` (a transfer's, after one was
    /// made).
    fn dial_offer(&mut self, core: &mut Core, offer: Offer, timeout_secs: u32) {
        let leg = self.leg_for(core, &offer);
        let dial = offer.dial(timeout_secs);
        let by = self.state.transferred_by.clone();
        self.push_offer(leg, offer, by, None);
        self.snapshot(core);
        core.originate(leg, dial, true);
    }

    /// A new leg on the caller's node for `offer` (every leg of a conversation is on the
    /// caller's node: bridges, conferences and eavesdrop work within one media server).
    fn leg_for(&self, core: &mut Core, offer: &Offer) -> LegIdx {
        let node = core.legs[self.user()].node.clone();
        let from = offer.shown.clone().unwrap_or_default();
        core.add_leg(node, from, offer.agent_number.clone())
    }

    /// Notes new leg `leg` as `offer`'s.
    fn push_offer(
        &mut self,
        leg: LegIdx,
        offer: Offer,
        transferred_by: Option<String>,
        consulted_from: Option<LegIdx>,
    ) {
        self.state.offers.push(OfferLeg {
            leg,
            offer,
            rejected: false,
            withdrawn: false,
            bridged_at: None,
            transferred_by,
            left: false,
            consulted_from,
            monitor: None,
            intercepts: None,
            intercepted: false,
            replaces: None,
        });
    }

    /// A transfer's agent or number failed: the caller goes to the head of its last
    /// queue, else hears the failure tone and is hung up (byeType 9).
    fn transfer_failed(&mut self, core: &mut Core) {
        let last = self.state.last_queue.clone();
        if self.queue(&last).is_some() {
            let how = (JoinType::Transfer, Place::Head);
            return self.join(core, Target::Queue(last), how, None);
        }
        self.state.transfer_failed = true;
        self.close(core, self.plan.failure.clone());
    }

    /// Asks the media server to hold (`true`) or retrieve the caller: the agent's channel
    /// is held, so the caller hears the music. The command is answered with its reply.
    fn ask_hold(
        &mut self,
        core: &mut Core,
        token: CommandToken,
        leg: LegIdx,
        connected: bool,
        hold: bool,
    ) -> Result<(), Refusal> {
        if !connected || self.holding.is_some() || self.state.held == hold {
            return Err(Refusal::State(match hold {
                true => "holdCall needs a connected call that is not held".into(),
                false => "retrieveCall needs a held call".into(),
            }));
        }
        if hold {
            let music = self.hold_music();
            core.media(leg, MediaCommand::SetVar("hold_music".into(), music));
        }
        let reply = core
            .ask(leg, MediaCommand::Hold(hold))
            .ok_or(Refusal::NoMedia)?;
        self.holding = Some((reply, token, hold));
        Ok(())
    }

    /// The media server answered a hold or retrieve.
    fn held(&mut self, core: &mut Core, command: CommandToken, hold: bool, ok: bool) {
        let Some(leg) = self.state.agent else {
            return core.emit(Effect::Reply(command, Err(Refusal::ended())));
        };
        let verdict = match (hold, ok) {
            _ if core.ending.is_some() => Err(Refusal::ended()),
            (true, false) => Err(Refusal::NoMedia),
            (false, ok) => {
                if !ok {
                    // A leg that refuses the re-INVITE (esl-transcripts 80): the bridge
                    // itself ends the music and joins the two again.
                    let agent = core.legs[leg].channel.clone();
                    core.media(self.user(), MediaCommand::BridgeWith(agent));
                }
                Ok(())
            }
            (true, true) => Ok(()),
        };
        if verdict.is_ok() {
            self.state.held = hold;
            core.journal(Write::Held(leg, hold, core.now));
            self.snapshot(core);
        }
        core.emit(Effect::Reply(command, verdict));
    }

    /// The call is over: a `bridge` still waiting is refused; the matchmaker forgets the
    /// caller.
    pub(super) fn finished(&mut self, core: &mut Core) {
        let waiting = self.bridge_command.take();
        let holding = self.holding.take().map(|(_, command, _)| command);
        for command in waiting.into_iter().chain(holding) {
            core.emit(Effect::Reply(command, Err(Refusal::ended())));
        }
    }

    /// How leg `leg` ended (maxCallDuration applies to the legs it cut).
    pub(super) fn leg_facts(&self, core: &Core, leg: LegIdx) -> LegFacts {
        let l = &core.legs[leg];
        match l.end_kind() {
            _ if l.answered() && self.state.timed_out.contains(&leg) => {
                l.facts(crate::cdr::LegEnd::MaxDuration)
            }
            end => l.facts(end),
        }
    }

    /// The byeType (decided, or a media failure: an abort, a lost node) and the
    /// recording's length.
    pub(super) fn cdr_kind(&self, core: &Core) -> CdrKind {
        CdrKind::Agent {
            bye: self.state.bye.unwrap_or(AgentBye::MediaFailure),
            recording_ms: self.recording_ms(core),
        }
    }
}

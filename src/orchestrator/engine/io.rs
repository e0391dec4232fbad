//! What goes into the engine ([`Input`]) and what comes out ([`Effect`]): plain data, so a
//! test can feed any interleaving and assert on exactly what the engine asks for. Nothing
//! here names an ESL string; the driver turns effects into Event Socket commands.

use crate::cdr::LegFacts;

/// A leg's place in its conversation: its `callSeq`, the order it was dialled in.
pub type LegIdx = usize;

/// Something that happened on a leg's channel, typed from the media server's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The channel exists (CHANNEL_CREATE), at this instant.
    Created {
        /// Unix ms on the media server's clock.
        at: i64,
        /// Its `Channel-Name` (`sofia/internal/80000017@10.0.0.5:5060`; `""`: not given).
        name: String,
    },
    /// First ringing or early media (CHANNEL_PROGRESS / CHANNEL_PROGRESS_MEDIA).
    Progress {
        /// Unix ms.
        at: i64,
    },
    /// Answered (CHANNEL_ANSWER).
    Answered {
        /// Unix ms.
        at: i64,
    },
    /// The far end pressed a key.
    Dtmf(char),
    /// An application finished (CHANNEL_EXECUTE_COMPLETE). `run` is the engine's number of
    /// the run when this generation of the engine started it, `None` for anything else
    /// (an application an earlier owner started, a `uuid_broadcast`).
    AppDone {
        /// Which run ended.
        run: Option<u32>,
    },
    /// The hangup began (CHANNEL_HANGUP): its place in the node's event order tells which
    /// of two bridged channels hung up first.
    Hangup {
        /// `Event-Sequence`.
        seq: u64,
        /// `Hangup-Cause`.
        cause: String,
    },
    /// The channel is gone (CHANNEL_HANGUP_COMPLETE), with the media server's own record.
    HangupComplete {
        /// Unix ms of the event.
        at: i64,
        /// `Hangup-Cause`.
        cause: String,
        /// When it was answered (`answer_uepoch`), if it was; an answer whose event went
        /// missing shows here.
        answered_at: Option<i64>,
        /// What the far end's signalling said of the end.
        signalling: Signalling,
    },
}

/// What the far end's signalling said of a leg's end (SIP legs; empty otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signalling {
    /// The final SIP response code (`sip_term_status`), e.g. `486`.
    pub sip_status: Option<String>,
    /// The protocol's own cause (`proto_specific_hangup_cause`), e.g. `sip:486`.
    pub proto_cause: Option<String>,
}

/// What the media server says of a channel when asked (`uuid_dump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No such channel.
    Gone,
    /// The channel lives.
    Alive {
        /// Ringing or early media since (Unix ms), if so.
        progress_at: Option<i64>,
        /// Answered at (Unix ms), if so.
        answered_at: Option<i64>,
    },
    /// The question could not be asked (node down, no answer): nothing is known.
    Unknown,
}

/// A question the engine asked of the media server, answered later as [`Input::Reply`].
pub type ReplyToken = u32;

/// A command from the API, with what the API needs to answer.
#[derive(Debug)]
pub enum Command {
    /// cancelCall.
    Cancel,
    /// addCall, its prompts already resolved to files.
    AddCall(Box<super::super::flows::click2call::AddParty>),
    /// An agent's command on its conversation: the agent, and what it asks.
    Agent(String, super::super::flows::orders::AgentOrder),
    /// What the matchmaker says to an inbound caller's conversation.
    Queue(super::super::flows::agent::QueueOrder),
}

/// Where an API command's verdict goes.
pub type CommandToken = u64;

/// One input of the engine.
#[derive(Debug)]
pub enum Input {
    /// Start a fresh call (nothing dialled yet).
    Start,
    /// An event of leg `leg`'s channel.
    Media(LegIdx, MediaEvent),
    /// The leg's originate (or `bridge` dial) was refused or failed, with this cause.
    OriginateFailed(LegIdx, String),
    /// The media server refused to run application `run` on the leg (no such channel, no
    /// connection): the run is over before it began.
    Refused(LegIdx, u32),
    /// The media server's answer to a question the engine asked (`true`: it succeeded).
    Reply(ReplyToken, bool),
    /// What the media server says of leg `leg`'s channel.
    Probed(LegIdx, Probe),
    /// The media server's channel list has not shown leg `LegIdx`'s channel for a while
    /// (its end may have gone unheard): the engine asks about it.
    Unlisted(LegIdx),
    /// An API command.
    Command(CommandToken, Command),
    /// A timer the engine set has fired.
    Timer(Timer),
    /// The node's Event Socket connection was lost.
    NodeDown(String),
    /// The node is connected again (events in between may be missing).
    NodeUp(String),
    /// The platform failed in a way the engine cannot see (a driver that failed, a write
    /// refused): end the call, its live legs as failed.
    Abort,
}

/// A timer of the engine (a platform deadline in real time; the call's own timers, such as
/// the answer timeout and maxDuration, live on the media server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// A lost node's grace for this leg has run out.
    NodeGrace(LegIdx),
    /// The leg's originate failed; its channel's own hangup events did not follow in time.
    OriginateFailed(LegIdx),
    /// A hangup was asked for and the channel has not reported its end.
    KillWait(LegIdx),
    /// The leg has been dialling for longer than any answer timeout allows.
    DialWatchdog(LegIdx),
    /// An application run has not finished in any reasonable time.
    AppWatchdog(u32),
    /// The caller has waited its queue's maxWaitSeconds (the flow's own timer).
    QueueWait,
    /// An offer answered by itself (autoAnswer) waits for the agent's `bridge` no longer
    /// than the queue's ringTimeout (the flow's own timer).
    OfferBridge(LegIdx),
    /// The caller's next position announcement is due (the flow's own timer).
    Announce,
}

impl Timer {
    /// The leg the timer is about, if any.
    pub fn leg(self) -> Option<LegIdx> {
        match self {
            Timer::NodeGrace(leg)
            | Timer::OriginateFailed(leg)
            | Timer::KillWait(leg)
            | Timer::DialWatchdog(leg)
            | Timer::OfferBridge(leg) => Some(leg),
            Timer::AppWatchdog(_) | Timer::QueueWait | Timer::Announce => None,
        }
    }

    /// Whether the flow, not the core, handles it (a call's own timer, on the media clock).
    pub fn is_flow(self) -> bool {
        matches!(
            self,
            Timer::QueueWait | Timer::OfferBridge(_) | Timer::Announce
        )
    }
}

/// What a dial reaches: a phone number (`VOICEPAAS_DIAL_STRING`) or an agent's SIP or
/// WebPhone device by its sipNumber (`VOICEPAAS_AGENT_DIAL_STRING`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Endpoint {
    /// A phone number.
    #[default]
    Number,
    /// An agent's registered device.
    Device,
}

impl Endpoint {
    /// What an agent on `phone` is dialled at: a PSTN phone by its number, a SIP phone or
    /// WebPhone as a registered device.
    pub fn for_phone(phone: crate::domain::agent::PhoneType) -> Self {
        match phone {
            crate::domain::agent::PhoneType::Pstn => Endpoint::Number,
            crate::domain::agent::PhoneType::Sip | crate::domain::agent::PhoneType::WebPhone => {
                Endpoint::Device
            }
        }
    }
}

/// A channel variable set at dial time, or an argument of a dial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dial {
    /// The number.
    pub to: String,
    /// Caller id shown, if any.
    pub from: Option<String>,
    /// Seconds the far end may ring.
    pub timeout_secs: u32,
    /// Whether early media counts as progress only (and the platform plays ringback).
    pub ignore_early_media: bool,
    /// What `to` names.
    pub endpoint: Endpoint,
    /// The device answers by itself (`sip_auto_answer=true`).
    pub auto_answer: bool,
    /// A leg of an agent conversation: parked, not hung up, when its bridge ends
    /// (`park_after_bridge=true`).
    pub park_after_bridge: bool,
    /// A supervisor's leg: it listens in on a channel once answered
    /// (`&eavesdrop(<target>)` instead of `&park()`).
    pub eavesdrop: Option<Eavesdrop>,
}

/// How a supervisor's leg listens in (agents' contract §7.2): on channel `target`, its
/// mode changed later by keys (`eavesdrop_enable_dtmf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eavesdrop {
    /// The channel listened to (the agent's).
    pub target: String,
    /// The agent hears the supervisor (`eavesdrop_whisper_bleg`: whisper or barge).
    pub whisper_bleg: bool,
    /// The other party hears the supervisor too (`eavesdrop_whisper_aleg`: barge).
    pub whisper_aleg: bool,
}

/// An application run on a channel (`sendmsg … execute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// `playback <file>`.
    Playback(String),
    /// `say <args>`.
    Say(String),
    /// `set <name>=<value>`.
    Set(String, String),
    /// `bridge <dial>`: dials leg `LegIdx` (whose id is the new channel's uuid) from this
    /// channel and bridges to it when it answers.
    Bridge(LegIdx, Dial),
    /// `conference <room>`.
    Conference(String),
    /// `answer`.
    Answer,
    /// `play_and_get_digits` of one key (`0-9 * #`, no terminator) with this prompt and
    /// timeout (ms); the key comes back as the channel's DTMF event.
    OneKey(String, u32),
}

impl App {
    /// Whether it ends by itself within minutes, so one running far longer means a stuck
    /// media server. `bridge` and `conference` last as long as the call (its maxDuration
    /// and the channel's ceiling bound them).
    pub fn ends_by_itself(&self) -> bool {
        !matches!(self, App::Bridge(..) | App::Conference(_))
    }
}

/// Which channels a broadcast plays to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hears {
    /// The channel named only.
    This,
    /// The channel and its bridged partner.
    Both,
}

/// An API command aimed at a leg's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// `uuid_kill` with this cause.
    Kill(String),
    /// `uuid_break all`: stop the running application and drop those sent after it.
    BreakAll,
    /// `uuid_broadcast` now.
    Broadcast(String, Hears),
    /// `sched_hangup +secs` with this cause.
    HangupAfter(u32, String),
    /// `sched_broadcast +secs`.
    BroadcastAfter(u32, String, Hears),
    /// `uuid_setvar`.
    SetVar(String, String),
    /// `uuid_record start <path>`.
    RecordStart(String),
    /// `uuid_send_dtmf`: these keys toward the channel's far end.
    SendDtmf(String),
    /// `uuid_recv_dtmf`: these keys as if the channel's far end pressed them.
    RecvDtmf(String),
    /// `uuid_hold` (`true`) or `uuid_hold off` (`false`).
    Hold(bool),
    /// `uuid_bridge`: the channel and the one of this uuid talk (whatever either played
    /// stops).
    BridgeWith(String),
    /// `uuid_transfer <uuid> -both conference:<room> inline`: the channel and its partner
    /// into a conference.
    BothToConference(String),
    /// `uuid_transfer <uuid> conference:<room> inline`: the channel alone into a
    /// conference (whatever it played stops).
    ToConference(String),
    /// `uuid_transfer <uuid> park inline`: whatever the channel plays stops (the only
    /// reliable end of `endless_playback`) and it parks.
    Park,
}

/// A leg's status on its way to `completed` (§6.1), in contract order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Dialled.
    Initiated,
    /// Rings.
    Ringing,
    /// Answered.
    Answered,
    /// Over.
    Completed,
}

impl Status {
    /// Its name in status callbacks and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
        }
    }
}

/// What the CDR of a finished call says beyond its legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdrKind {
    /// A voice notice (§5), with the last key pressed.
    Notice {
        /// `inputkey`.
        inputkey: Option<char>,
    },
    /// A voice captcha (§5).
    Captcha,
    /// A click-to-call conversation (§6.2).
    Click2Call {
        /// byeType.
        bye: super::ByeType,
        /// The recording's length (ms), if one was made.
        recording_ms: Option<i64>,
    },
    /// An agent's conversation (agents' contract §10).
    Agent {
        /// byeType.
        bye: crate::domain::agent_call::AgentBye,
        /// The recording's length (ms), if one was made.
        recording_ms: Option<i64>,
    },
}

/// A durable write of the call's life (with the callbacks it implies).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Leg `leg` reached `status` at `at` (Unix ms); `Initiated` also records its node.
    Status(LegIdx, Status, i64),
    /// A new leg of a conversation, dialled now (`initiated`).
    NewLeg(LegIdx),
    /// Leg `leg` was put on hold (`true`) or taken off it, at `at` (agents' calls).
    Held(LegIdx, bool, i64),
    /// Agent leg `leg` was connected with the user at `at` (an offer bridged).
    Bridged(LegIdx, i64),
    /// Leg `leg` joined the conversation's conference at `at` (a consult conferenced).
    Conferenced(LegIdx, i64),
    /// The caller waits in queue `queue` since `join_ms`, having come as `join_type` (the
    /// queueEvent code), or (`None`) no longer waits.
    Waiting(Option<(String, i64, i64)>),
    /// A caller's move in a queue, published once written (no row of its own).
    QueueEvent(crate::orchestrator::flows::agent::QueueMove),
    /// Leg `leg` ended while the call goes on (`completed`).
    LegEnded(LegIdx, LegFacts),
    /// The conversation's stage for the API (`dialing`, `bridged`, `three_way`) and its
    /// state for a takeover.
    Snapshot(&'static str, serde_json::Value),
    /// The call is over: these legs end now (in this order), and the CDR.
    Finish {
        /// The legs ending now with their facts, oldest end first.
        ending: Vec<(LegIdx, LegFacts)>,
        /// Every leg's facts, in dialling order.
        legs: Vec<LegFacts>,
        /// The rest of the CDR.
        kind: CdrKind,
    },
}

/// One thing the engine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Durable writes, in one transaction, before anything after them happens.
    Journal(Vec<Write>),
    /// Listen for the events of leg `leg`'s channel (before it is dialled, or after a
    /// takeover).
    Follow(LegIdx),
    /// Dial leg `leg` parked (`bgapi originate … &park()`).
    Originate(LegIdx, Dial),
    /// Run an application on a leg; its end comes back as [`MediaEvent::AppDone`] with `run`.
    Execute {
        /// The channel.
        leg: LegIdx,
        /// What to run.
        app: App,
        /// The run's number.
        run: u32,
    },
    /// An API command on a leg's channel; with a token, its outcome comes back as
    /// [`Input::Reply`].
    Media(LegIdx, MediaCommand, Option<ReplyToken>),
    /// Ask the media server about leg `leg`'s channel; the answer comes back as [`Input::Probed`].
    Probe(LegIdx),
    /// Fire [`Input::Timer`] after this many ms (replacing the same timer if set).
    SetTimer(Timer, i64),
    /// Forget a timer.
    CancelTimer(Timer),
    /// Answer an API command.
    Reply(CommandToken, Result<(), Refusal>),
    /// Tell the matchmaker of the call's application (inbound callers in queues), after
    /// the writes before it.
    Queue(super::super::flows::agent::QueueSignal),
    /// The call is over and its end is written: the driver stops.
    Finished,
}

/// Why the engine refused an API command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    /// Not allowed in the conversation's current state (10007); the reason.
    State(String),
    /// The conversation's media server is down (10005).
    NoMedia,
}

impl Refusal {
    /// The conversation is over (10007).
    pub fn ended() -> Self {
        Refusal::State(super::ENDED.into())
    }
}

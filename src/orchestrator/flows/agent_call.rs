//! An agent's conversation (agents' contract §7.1) as a script over the engine. callOut:
//! the agent's device is dialled first, answering by itself; once it answers, the user is
//! dialled from the agent's channel (`bridge`, so the agent hears the network's ringback
//! and early media); the user answers and both talk, under maxCallDuration's
//! `sched_hangup`. The agent's commands (`hangup`, `sendDtmf`, `setUserData`) act on it
//! wherever it is driven.
//!
//! Legs: 0 the agent (A), 1 the user (U). What a takeover needs (phase, the userData, a
//! decided byeType, maxCallDuration's deadline) is written as a snapshot whenever it
//! changes.

use serde::{Deserialize, Serialize};

use super::click2call::MAX_DURATION_CAUSE;
use crate::cdr::{LegEnd, LegFacts};
use crate::domain::agent::PhoneType;
use crate::domain::agent_call::{AgentBye, AgentCall};
use crate::orchestrator::engine::{
    CdrKind, Command, CommandToken, Core, Dial, Effect, Endpoint, Happened, LegIdx, MediaCommand,
    Refusal, ReplyToken, Write,
};

/// The agent's leg.
pub const AGENT: LegIdx = 0;
/// The user's leg.
pub const USER: LegIdx = 1;

/// What an agent asks of its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentOrder {
    /// `hangup`: end the call (cancel a callOut still ringing).
    Hangup,
    /// `forceHangup` of a supervisor: end the connected call, every leg (byeType 6).
    ForceHangup,
    /// `sendDtmf` toward the user.
    SendDtmf(String),
    /// `setUserData`: the conversation's userData from now on.
    SetUserData(String),
    /// `holdCall`: the user hears the music on hold.
    Hold,
    /// `retrieveCall`: the user and the agent talk again.
    Retrieve,
    /// `answer` / `bridge`: connect an offer the device answered by itself.
    Bridge,
    /// `transfer`: the agent leaves; the user goes to an agent, a queue or a number.
    Transfer(TransferTo),
    /// `consult`: the user waits with music while the agent calls another agent (claimed
    /// already: its offer) or a number.
    Consult(ConsultTo),
    /// `consultTransfer`: the user and the consulted party talk; the agent leaves.
    ConsultTransfer,
    /// `consultConference`: the user, the agent and the consulted party talk together.
    ConsultConference,
    /// `cancelConsult`: the consulted party is hung up; the agent and the user talk again.
    CancelConsult,
    /// `monitor`, `whisper`, `barge` of a supervisor on the agent's leg.
    Monitor(Supervision),
    /// `intercept`: a supervisor takes the agent's call over.
    Intercept(Interception),
}

/// A supervisor taking an agent's call over (agents' contract §7.2 `intercept`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interception {
    /// The supervisor.
    pub supervisor: String,
    /// Its leg's offer, the supervisor claimed for it; `None`: it listens in already.
    pub offer: Option<super::inbound::Offer>,
}

/// A supervisor listening in on an agent's leg (agents' contract §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supervision {
    /// The supervisor.
    pub supervisor: String,
    /// Its leg's offer, the supervisor claimed for it; `None`: it listens in already and
    /// only the mode changes.
    pub offer: Option<super::inbound::Offer>,
    /// How it listens.
    pub mode: crate::domain::agent_call::MonitorMode,
}

/// An outside number a transfer or consult dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutsideNumber {
    /// The number dialled.
    pub number: String,
    /// The caller id it sees (`None`: the gateway's default).
    pub caller_id: Option<String>,
    /// Seconds it rings.
    pub timeout_secs: u32,
}

/// Whom a `consult` calls (agents' contract §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsultTo {
    /// An agent, claimed for it (its session `ringing`).
    Agent(super::inbound::Offer),
    /// An outside number.
    Number(OutsideNumber),
}

/// Where a `transfer` sends the user (agents' contract §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransferTo {
    /// An agent, offered the user as a transfer (callSubtype 3).
    Agent(String),
    /// A queue, joined at its tail (joinType 2).
    Queue {
        /// The queue.
        queue: String,
        /// It and the queues its overflows reach.
        plans: std::collections::BTreeMap<String, super::inbound::QueuePlan>,
    },
    /// An outside number, bridged with the user once it answers.
    Number(OutsideNumber),
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The agent's device is dialled.
    DialAgent,
    /// The user is dialled from the agent's channel.
    DialUser,
    /// Agent and user talk.
    Talking,
}

/// What a takeover needs to go on with the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where it is.
    pub phase: Phase,
    /// The conversation's userData.
    pub user_data: String,
    /// maxCallDuration's deadline (Unix ms, media clock).
    pub deadline: Option<i64>,
    /// Legs whose maxCallDuration hangup is set on the media server.
    pub armed: Vec<LegIdx>,
    /// Legs cut by maxCallDuration.
    pub timed_out: Vec<LegIdx>,
    /// The byeType, once decided.
    pub bye: Option<AgentBye>,
    /// The leg whose own hangup ended the conversation (the side that hung up first).
    #[serde(default)]
    pub first_gone: Option<LegIdx>,
    /// The user is on hold.
    #[serde(default)]
    pub held: bool,
    /// The recording (recordAgentCalls): asked for at this instant (Unix ms, media clock),
    /// and whether the media server confirmed it (after a takeover: assumed).
    #[serde(default)]
    pub recording: Option<(i64, bool)>,
}

/// The media files of an agent's conversation, resolved when its driver starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// What the user hears on hold (the application's musicOnHold, or FreeSWITCH's own).
    pub music: String,
    /// Where the recording goes on the media server.
    pub recording: String,
}

/// A hold or retrieve asked of the media server, whose answer decides the command's.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The media server's answer.
    reply: ReplyToken,
    /// The command waiting for it.
    command: CommandToken,
    /// `true`: a hold; `false`: a retrieve.
    hold: bool,
}

/// An agent's conversation.
#[derive(Debug)]
pub struct AgentCallFlow {
    call: AgentCall,
    state: State,
    files: Files,
    pending: Option<Pending>,
    /// The answer that tells whether the recording started.
    record_reply: Option<ReplyToken>,
}

impl AgentCallFlow {
    /// A new conversation with its first userData and its media files.
    pub fn new(call: AgentCall, user_data: String, files: Files) -> Self {
        AgentCallFlow {
            call,
            files,
            pending: None,
            record_reply: None,
            state: State {
                phase: Phase::DialAgent,
                user_data,
                deadline: None,
                armed: Vec::new(),
                timed_out: Vec::new(),
                bye: None,
                first_gone: None,
                held: false,
                recording: None,
            },
        }
    }

    /// A conversation taken over, from its last snapshot (else as new).
    pub fn resumed(
        call: AgentCall,
        user_data: String,
        files: Files,
        snapshot: Option<State>,
    ) -> Self {
        match snapshot {
            Some(state) => AgentCallFlow {
                call,
                state,
                files,
                pending: None,
                record_reply: None,
            },
            None => Self::new(call, user_data, files),
        }
    }

    /// What the conversation is.
    pub fn call(&self) -> &AgentCall {
        &self.call
    }

    /// Whether a supervisor ended the call (forceHangup).
    pub fn forced(&self) -> bool {
        self.state.bye == Some(AgentBye::Forced)
    }

    /// The leg whose own hangup ended the conversation, if one did.
    pub fn first_gone(&self) -> Option<LegIdx> {
        self.state.first_gone
    }

    /// Its userData now.
    pub fn user_data(&self) -> &str {
        &self.state.user_data
    }

    fn snapshot(&self, core: &mut Core) {
        core.snapshot_connected(self.state.phase == Phase::Talking, &self.state);
    }

    pub(super) fn start(&mut self, core: &mut Core) {
        if self.state.bye.is_some() {
            return;
        }
        self.snapshot(core);
        let call = &self.call;
        let dial = Dial {
            to: call.agent_number.clone(),
            from: call.shown_to_agent(),
            timeout_secs: call.agent_ring_timeout,
            ignore_early_media: true,
            endpoint: match call.phone_type {
                PhoneType::Pstn => Endpoint::Number,
                PhoneType::Sip | PhoneType::WebPhone => Endpoint::Device,
            },
            auto_answer: true,
            park_after_bridge: true,
            eavesdrop: None,
        };
        core.originate(AGENT, dial, false);
    }

    pub(super) fn restored(&mut self, core: &mut Core) {
        if core.ending.is_some() {
            return;
        }
        if let Some(bye) = self.state.bye.take() {
            return self.end(core, bye);
        }
        // Asked for, answer unknown: assume it runs.
        self.state.recording = self.state.recording.map(|(at, _)| (at, true));
        match self.state.phase {
            Phase::DialAgent if core.legs[AGENT].answered() && core.legs[AGENT].up() => {
                self.dial_user(core)
            }
            Phase::DialUser if core.legs.get(USER).is_some_and(|l| l.answered()) => {
                self.user_answered(core)
            }
            _ => {}
        }
        for (leg, cause) in core.unheard_hangups() {
            self.on_leg(core, leg, Happened::HangingUp(cause));
        }
        if self.state.bye.is_none() {
            for leg in 0..core.legs.len() {
                self.arm(core, leg);
            }
            self.snapshot(core);
        }
    }

    pub(super) fn on_leg(&mut self, core: &mut Core, leg: LegIdx, happened: Happened) {
        if core.ending.is_some() {
            return;
        }
        match happened {
            Happened::Answered if leg == AGENT && self.state.phase == Phase::DialAgent => {
                self.dial_user(core)
            }
            Happened::Answered if leg == USER && self.state.phase == Phase::DialUser => {
                self.user_answered(core)
            }
            Happened::HangingUp(cause) => self.on_hanging_up(core, leg, &cause),
            _ => {}
        }
    }

    /// Dials the user from the agent's channel.
    fn dial_user(&mut self, core: &mut Core) {
        let call = &self.call;
        let node = core.legs[AGENT].node.clone();
        let from = call.caller_id.clone().unwrap_or_default();
        let leg = core.add_leg(node, from, call.user_number.clone());
        debug_assert_eq!(leg, USER);
        self.state.phase = Phase::DialUser;
        self.snapshot(core);
        let dial = Dial {
            to: self.call.user_number.clone(),
            from: self.call.caller_id.clone(),
            timeout_secs: self.call.answer_timeout,
            ignore_early_media: false,
            endpoint: Endpoint::Number,
            auto_answer: false,
            park_after_bridge: true,
            eavesdrop: None,
        };
        core.bridge(AGENT, USER, dial);
    }

    fn user_answered(&mut self, core: &mut Core) {
        self.state.phase = Phase::Talking;
        if let (max @ 1.., Some(at)) = (self.call.max_call_duration, core.legs[USER].answer_ms) {
            self.state.deadline = Some(at + i64::from(max) * 1000);
        }
        for leg in [AGENT, USER] {
            self.arm(core, leg);
        }
        if self.call.record && self.state.recording.is_none() {
            // On the agent's channel, which hears both sides, from the first connection
            // to the end.
            let path = self.files.recording.clone();
            self.record_reply = core.ask(AGENT, MediaCommand::RecordStart(path));
            self.state.recording = self.record_reply.map(|_| (core.now, false));
        }
        self.snapshot(core);
    }

    /// maxCallDuration on a talking leg: `sched_hangup` at the deadline, on the media server.
    fn arm(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(deadline) = self.state.deadline else {
            return;
        };
        if !core.legs[leg].talking() || self.state.armed.contains(&leg) {
            return;
        }
        self.state.armed.push(leg);
        core.hang_up_at(leg, deadline, MAX_DURATION_CAUSE);
    }

    /// The first hangup decides the byeType (§10).
    fn on_hanging_up(&mut self, core: &mut Core, leg: LegIdx, cause: &str) {
        if self.state.bye.is_some() {
            return;
        }
        self.state.first_gone = Some(leg);
        if cause == crate::cdr::MEDIA_LOST {
            return self.end(core, AgentBye::MediaFailure);
        }
        if cause == MAX_DURATION_CAUSE && self.state.phase == Phase::Talking {
            self.state.timed_out = (0..core.legs.len())
                .filter(|&l| l == leg || core.legs[l].talking())
                .collect();
            return self.end(core, AgentBye::MaxDuration);
        }
        let bye = match (leg, self.state.phase) {
            (AGENT, _) => self.agent_left(),
            (_, Phase::Talking) => AgentBye::UserHungUp,
            _ => AgentBye::SecondNoAnswer,
        };
        self.end(core, bye);
    }

    /// The byeType of the agent leaving (hanging up, or `hangup`) in the current phase.
    fn agent_left(&self) -> AgentBye {
        match self.state.phase {
            Phase::DialAgent => AgentBye::FirstNoAnswer,
            Phase::DialUser => AgentBye::FirstHungUpDialing,
            Phase::Talking => AgentBye::AgentHungUp,
        }
    }

    /// Ends the conversation: legs still ringing are abandoned, every leg is hung up.
    fn end(&mut self, core: &mut Core, bye: AgentBye) {
        if self.state.bye.is_some() {
            return;
        }
        self.state.bye = Some(bye);
        for leg in core.legs.iter_mut().filter(|l| l.up() && !l.answered()) {
            leg.canceled = true;
        }
        self.snapshot(core);
        core.end_call("NORMAL_CLEARING");
    }

    pub(super) fn on_command(&mut self, core: &mut Core, token: CommandToken, command: Command) {
        let verdict = match command {
            _ if self.state.bye.is_some() || core.ending.is_some() => Err(Refusal::ended()),
            Command::Agent(_, order) => self.order(core, token, order),
            Command::Cancel | Command::AddCall(_) | Command::Queue(_) => Err(Refusal::State(
                "not a command of an agent's conversation".into(),
            )),
        };
        // `None`: answered once the media server has.
        if let Some(verdict) = verdict.transpose() {
            core.emit(Effect::Reply(token, verdict));
        }
    }

    /// The media server answered a hold, a retrieve or the recording.
    pub(super) fn on_reply(&mut self, core: &mut Core, token: ReplyToken, ok: bool) {
        if self.record_reply == Some(token) {
            self.record_reply = None;
            // Refused: no recording, no recordingUrl.
            self.state.recording = self
                .state
                .recording
                .filter(|_| ok)
                .map(|(at, _)| (at, true));
            self.snapshot(core);
            return;
        }
        let Some(pending) = self.pending.filter(|p| p.reply == token) else {
            return;
        };
        self.pending = None;
        let verdict = match (pending.hold, ok) {
            _ if core.ending.is_some() => Err(Refusal::ended()),
            (true, true) => {
                self.held(core, true);
                Ok(())
            }
            (true, false) => Err(Refusal::NoMedia),
            (false, ok) => {
                if !ok {
                    // A leg that refuses the re-INVITE (esl-transcripts 80): the bridge
                    // itself ends the music and joins the two again.
                    let agent = core.legs[AGENT].channel.clone();
                    core.media(USER, MediaCommand::BridgeWith(agent));
                }
                self.held(core, false);
                Ok(())
            }
        };
        core.emit(Effect::Reply(pending.command, verdict));
    }

    /// The call is over: a hold or retrieve still waiting is refused.
    pub(super) fn finished(&mut self, core: &mut Core) {
        if let Some(pending) = self.pending.take() {
            let ended = Refusal::ended();
            core.emit(Effect::Reply(pending.command, Err(ended)));
        }
    }

    fn held(&mut self, core: &mut Core, held: bool) {
        self.state.held = held;
        core.journal(Write::Held(AGENT, held, core.now));
        self.snapshot(core);
    }

    /// Carries out an order; `Ok(None)`: answered once the media server has.
    fn order(
        &mut self,
        core: &mut Core,
        token: CommandToken,
        order: AgentOrder,
    ) -> Result<Option<()>, Refusal> {
        match order {
            AgentOrder::Hold => self.ask_hold(core, token, true).map(|()| None),
            AgentOrder::Bridge => Err(Refusal::State(
                "bridge connects an offer; a callOut connects by itself".into(),
            )),
            AgentOrder::Retrieve => self.ask_hold(core, token, false).map(|()| None),
            AgentOrder::Hangup => {
                self.end(core, self.agent_left());
                Ok(Some(()))
            }
            AgentOrder::ForceHangup if self.state.phase == Phase::Talking => {
                self.end(core, AgentBye::Forced);
                Ok(Some(()))
            }
            AgentOrder::ForceHangup => {
                Err(Refusal::State("forceHangup needs a connected call".into()))
            }
            AgentOrder::SendDtmf(digits) if self.state.phase == Phase::Talking => {
                core.media(USER, MediaCommand::SendDtmf(digits));
                Ok(Some(()))
            }
            AgentOrder::SendDtmf(_) => {
                Err(Refusal::State("sendDtmf needs a connected call".into()))
            }
            AgentOrder::SetUserData(data) => {
                self.state.user_data = data;
                self.snapshot(core);
                Ok(Some(()))
            }
            AgentOrder::Transfer(_)
            | AgentOrder::Consult(_)
            | AgentOrder::ConsultTransfer
            | AgentOrder::ConsultConference
            | AgentOrder::CancelConsult
            | AgentOrder::Monitor(_)
            | AgentOrder::Intercept(_) => Err(Refusal::State(
                "transfers, consults and supervision are not available in a callOut yet: only \
                 for callers who dialled in or were called by backend outbound"
                    .into(),
            )),
        }
    }

    /// Asks the media server to hold (`true`) or retrieve the user; the command is
    /// answered with its reply.
    fn ask_hold(
        &mut self,
        core: &mut Core,
        token: CommandToken,
        hold: bool,
    ) -> Result<(), Refusal> {
        let talking = self.state.phase == Phase::Talking;
        if !talking || self.pending.is_some() || self.state.held == hold {
            return Err(Refusal::State(match hold {
                true => "holdCall needs a connected call that is not held".into(),
                false => "retrieveCall needs a held call".into(),
            }));
        }
        if hold {
            let music = self.files.music.clone();
            core.media(AGENT, MediaCommand::SetVar("hold_music".into(), music));
        }
        let reply = core
            .ask(AGENT, MediaCommand::Hold(hold))
            .ok_or(Refusal::NoMedia)?;
        self.pending = Some(Pending {
            reply,
            command: token,
            hold,
        });
        Ok(())
    }

    /// How leg `leg` ended (maxCallDuration applies to the legs it cut).
    pub(super) fn leg_facts(&self, core: &Core, leg: LegIdx) -> LegFacts {
        let l = &core.legs[leg];
        match l.end_kind() {
            _ if l.answered() && self.state.timed_out.contains(&leg) => {
                l.facts(LegEnd::MaxDuration)
            }
            end => l.facts(end),
        }
    }

    /// The byeType: decided, or that of the state it was in (an abort, a lost node).
    pub(super) fn bye(&self) -> AgentBye {
        self.state.bye.unwrap_or(AgentBye::MediaFailure)
    }

    pub(super) fn cdr_kind(&self, core: &Core) -> CdrKind {
        CdrKind::Agent {
            bye: self.bye(),
            recording_ms: self.recording_ms(core),
        }
    }

    /// The recording's length: from its start to the end of the agent's leg, if it ran.
    fn recording_ms(&self, core: &Core) -> Option<i64> {
        let (from, on) = self.state.recording?;
        let end = core.legs[AGENT].ended.as_ref().map_or(core.now, |e| e.at);
        on.then(|| (end - from).max(0))
    }
}

//! Click-to-call (API.md §6) as a script over the engine: dial the caller → answer →
//! `greetVoice` → dial the callee from the caller's channel (`bridge`; ringbackMode 0
//! passes the callee's early media through, 1 plays `ringbackVoice` and on failure
//! `failVoice`) → bridged → `calleeVoice` / `callerVoice`; recording; maxDuration with its
//! last-minute prompt as timers on the media server, on every talking leg; cancelCall in
//! every state; addCall dials a party and moves everyone into one conference.
//!
//! Legs: 0 the caller, 1 the callee, 2… parties added. The state that a takeover needs
//! (phase, conference, the party being added, recording, deadline, a decided byeType) is
//! written as a snapshot whenever it changes.

mod parties;
mod phases;
mod recording;
mod restore;

use serde::{Deserialize, Serialize};

use crate::cdr::{LegEnd, LegFacts};
use crate::domain::click2call::RecordMode;
use crate::orchestrator::engine::{
    ByeType, CdrKind, Command, CommandToken, Core, Dial, Effect, Happened, LegIdx, Refusal,
    ReplyToken,
};

pub use parties::AddParty;
pub use recording::Recording;

/// Hangup cause of cancelCall; a leg ending with it (also when another process or an
/// operator sent it) counts as canceled.
pub const CANCEL_CAUSE: &str = "MANAGER_REQUEST";
/// Hangup cause of maxDuration (`sched_hangup`'s default).
pub const MAX_DURATION_CAUSE: &str = "ALLOTTED_TIMEOUT";
/// The rule addCall's refusals start with.
pub const ADD_CALL_RULE: &str =
    "addCall is allowed only while the conversation is two-party and bridged";

const CALLER: LegIdx = 0;
const CALLEE: LegIdx = 1;

/// How the callee is dialled and what each side hears, with prompts resolved to files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalleePlan {
    /// The callee's number.
    pub to: String,
    /// Caller id shown to the callee (`calleeCli`, or else the caller's number).
    pub from: String,
    /// Played to the caller before the callee is dialled.
    pub greet: Option<String>,
    /// ringbackMode 1: the ringback the platform plays (ringbackMode 0: `None`).
    pub ringback: Option<String>,
    /// Played to the caller when the callee cannot be reached (ringbackMode 1).
    pub fail_voice: String,
    /// Played to the callee right after the bridge.
    pub callee_voice: Option<String>,
    /// Played to the caller right after the bridge.
    pub caller_voice: Option<String>,
    /// When recording starts.
    pub record: RecordMode,
}

/// Everything a conversation needs from its request, prompts resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The caller's dial.
    pub caller: Dial,
    /// The callee.
    pub callee: CalleePlan,
    /// Seconds each leg is rung.
    pub answer_timeout: u32,
    /// Seconds of talk allowed.
    pub max_duration: Option<u32>,
    /// The prompt 60 s before maxDuration.
    pub last_minute: String,
    /// Where the recording goes on the media server.
    pub recording_path: String,
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Dialling the caller.
    DialCaller,
    /// The caller hears `greetVoice` (run).
    Greeting(u32),
    /// The callee is dialled from the caller's channel.
    DialCallee,
    /// The callee could not be reached; the caller hears `failVoice` (run).
    FailVoice(u32),
    /// Parties talk: bridged, or in the conference.
    Talking,
}

/// What a takeover needs to go on with the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Where it is.
    pub phase: Phase,
    /// Everyone is in the conference (after the first addCall).
    pub in_conference: bool,
    /// The party being added, and how.
    pub adding: Option<(LegIdx, AddParty)>,
    /// The recording, if one was asked for.
    pub recording: Option<Recording>,
    /// maxDuration's deadline (Unix ms, media clock).
    pub deadline: Option<i64>,
    /// Legs whose maxDuration timers are set on the media server.
    pub armed: Vec<LegIdx>,
    /// Legs cut by maxDuration.
    pub timed_out: Vec<LegIdx>,
    /// The byeType, once decided.
    pub bye: Option<ByeType>,
}

impl State {
    fn fresh() -> Self {
        State {
            phase: Phase::DialCaller,
            in_conference: false,
            adding: None,
            recording: None,
            deadline: None,
            armed: Vec::new(),
            timed_out: Vec::new(),
            bye: None,
        }
    }
}

/// A click-to-call conversation.
#[derive(Debug)]
pub struct Click2CallFlow {
    plan: Plan,
    state: State,
    /// The reply that tells whether the recording started.
    record_reply: Option<ReplyToken>,
}

impl Click2CallFlow {
    /// A new conversation.
    pub fn new(plan: Plan) -> Self {
        Click2CallFlow {
            plan,
            state: State::fresh(),
            record_reply: None,
        }
    }

    /// A conversation taken over, from its last snapshot (a fresh state when it has none).
    pub fn resumed(plan: Plan, snapshot: Option<State>) -> Self {
        Click2CallFlow {
            plan,
            state: snapshot.unwrap_or_else(State::fresh),
            record_reply: None,
        }
    }

    /// Writes the state for the API and a later takeover.
    fn snapshot(&self, core: &mut Core) {
        let talking = core.legs.iter().filter(|l| l.talking()).count();
        let stage = match self.state.phase {
            Phase::Talking if self.state.adding.is_none() && talking >= 3 => "three_way",
            Phase::Talking => "bridged",
            _ => "dialing",
        };
        core.snapshot(stage, &self.state);
    }

    pub(super) fn start(&mut self, core: &mut Core) {
        if self.state.bye.is_some() {
            return;
        }
        self.snapshot(core);
        core.originate(CALLER, self.plan.caller.clone(), false);
    }

    pub(super) fn on_leg(&mut self, core: &mut Core, leg: LegIdx, happened: Happened) {
        if core.ending.is_some() {
            // Over: answers and prompts finishing change nothing any more.
            return;
        }
        match happened {
            Happened::Answered => self.on_answered(core, leg),
            Happened::Ringing
                if leg == CALLEE && self.plan.callee.record == RecordMode::FromCalleeRinging =>
            {
                self.start_recording(core)
            }
            Happened::AppDone(Some(run)) => match self.state.phase {
                Phase::Greeting(g) if g == run => self.dial_callee(core),
                Phase::FailVoice(f) if f == run => self.end(core, ByeType::CalleeNoAnswer),
                _ => {}
            },
            Happened::HangingUp(cause) => self.on_hanging_up(core, leg, &cause),
            _ => {}
        }
    }

    fn on_answered(&mut self, core: &mut Core, leg: LegIdx) {
        match (leg, self.state.phase) {
            (CALLER, Phase::DialCaller) => self.caller_answered(core),
            (CALLEE, Phase::DialCallee) => self.callee_answered(core),
            _ if self.state.adding.as_ref().is_some_and(|(p, _)| *p == leg) => {
                self.party_answered(core, leg)
            }
            _ => {}
        }
    }

    /// A leg's hangup began: the first one decides what happens (API.md §6.2).
    fn on_hanging_up(&mut self, core: &mut Core, leg: LegIdx, cause: &str) {
        if self.state.bye.is_some() || core.ending.is_some() {
            // Decided already (or the platform ended the call).
            return;
        }
        let answered = core.legs[leg].answered();
        let cause = self.cause_of(core, cause);
        if cause == CANCEL_CAUSE {
            return self.cancel(core);
        }
        if cause == MAX_DURATION_CAUSE && answered {
            self.state.timed_out = core
                .legs
                .iter()
                .enumerate()
                .filter(|(i, l)| *i == leg || l.talking())
                .map(|(i, _)| i)
                .collect();
            return self.end(core, ByeType::MaxDuration);
        }
        match leg {
            CALLER => self.caller_hung_up(core),
            CALLEE => self.callee_hung_up(core, answered),
            _ => self.party_hung_up(core, leg, answered),
        }
    }

    /// A channel lost while nobody watched, past maxDuration's deadline, was cut by it.
    fn cause_of(&self, core: &Core, cause: &str) -> String {
        match self.state.deadline {
            Some(deadline) if cause == crate::cdr::MEDIA_LOST && core.now >= deadline => {
                MAX_DURATION_CAUSE.to_string()
            }
            _ => cause.to_string(),
        }
    }

    /// Ends the conversation with `bye`: legs still ringing are abandoned (canceled), every
    /// leg is hung up.
    fn end(&mut self, core: &mut Core, bye: ByeType) {
        if self.state.bye.is_some() {
            return;
        }
        self.state.bye = Some(bye);
        // Legs still ringing are abandoned; a leg whose own hangup ended it is not.
        for leg in core.legs.iter_mut().filter(|l| l.up() && !l.answered()) {
            leg.canceled = true;
        }
        let cause = if bye == ByeType::Canceled {
            CANCEL_CAUSE
        } else {
            "NORMAL_CLEARING"
        };
        if bye == ByeType::Canceled {
            // A cancel is written before its hangups, so a takeover finishes it as one.
            self.snapshot(core);
        }
        core.end_call(cause);
    }

    fn cancel(&mut self, core: &mut Core) {
        self.end(core, ByeType::Canceled);
    }

    pub(super) fn on_command(&mut self, core: &mut Core, token: CommandToken, command: Command) {
        let verdict = if self.state.bye.is_some() || core.ending.is_some() {
            Err(Refusal::ended())
        } else {
            match command {
                Command::Cancel => {
                    self.cancel(core);
                    Ok(())
                }
                Command::AddCall(party) => self.add_call(core, *party),
                Command::Agent(..) | Command::Queue(_) => Err(Refusal::State(
                    "not a command of a click-to-call conversation".into(),
                )),
            }
        };
        core.emit(Effect::Reply(token, verdict));
    }

    pub(super) fn on_reply(&mut self, core: &mut Core, token: ReplyToken, ok: bool) {
        if self.record_reply == Some(token) {
            self.record_reply = None;
            self.recording_answered(core, ok);
        }
    }

    /// How leg `leg` ended for the contract (maxDuration applies to the legs it cut).
    pub(super) fn leg_facts(&self, core: &Core, leg: LegIdx) -> LegFacts {
        let l = &core.legs[leg];
        let cut = self.state.timed_out.contains(&leg);
        let lost = l
            .ended
            .as_ref()
            .is_some_and(|e| e.cause == crate::cdr::MEDIA_LOST);
        match (l.end_kind(), self.state.deadline) {
            (LegEnd::Completed, _) if cut => l.facts(LegEnd::MaxDuration),
            // Cut by maxDuration (the customer's deadline or the channel's own time cap),
            // then gone while nobody watched: maxDuration's hangup ended it.
            (LegEnd::Failed, deadline) if cut && lost && l.answered() => {
                let mut facts = l.facts(LegEnd::MaxDuration);
                if let Some(deadline) = deadline {
                    facts.end_ms =
                        deadline.clamp(facts.answer_ms.unwrap_or(facts.start_ms), facts.end_ms);
                }
                facts.hangup_cause = MAX_DURATION_CAUSE.to_string();
                facts
            }
            (end, _) => l.facts(end),
        }
    }

    pub(super) fn cdr_kind(&self, core: &Core) -> CdrKind {
        CdrKind::Click2Call {
            bye: self.bye(core),
            recording_ms: self.recording_ms(core),
        }
    }

    /// The byeType: decided, or (a conversation that ended without a rule firing, such as
    /// an abort) the one of the state it was in.
    fn bye(&self, core: &Core) -> ByeType {
        if let Some(bye) = self.state.bye {
            return bye;
        }
        match self.state.phase {
            Phase::DialCaller if !core.legs[CALLER].answered() => ByeType::CallerNoAnswer,
            Phase::DialCaller | Phase::Greeting(_) => ByeType::CallerHungUp,
            Phase::DialCallee | Phase::FailVoice(_) => ByeType::CalleeNoAnswer,
            Phase::Talking => ByeType::CallerHungUp,
        }
    }
}

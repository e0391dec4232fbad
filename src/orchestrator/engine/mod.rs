//! The conversation engine: one call as a pure state machine. [`Conversation::step`] takes
//! the time and one [`Input`] (a media event, an API command, a timer, a probe's answer, a
//! lost or returned node, a failure to give up on) and returns the [`Effect`]s it wants done
//! (media commands, journal writes with their callbacks, timers, replies). No I/O happens
//! here: the driver (`orchestrator::driver`) is the only code that talks to the media
//! server and the database for a call.
//!
//! The [`core`] owns what every call shares (legs, hangups, lost nodes, takeover probes,
//! the end with its CDR); a [`Flow`] scripts one kind of call on top of it.

pub mod core;
pub mod io;
pub mod leg;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use self::core::{Core, Happened, Limits};
pub use io::{
    App, CdrKind, Command, CommandToken, Dial, Eavesdrop, Effect, Endpoint, Hears, Input, LegIdx,
    MediaCommand, MediaEvent, Probe, Refusal, ReplyToken, Signalling, Status, Timer, Write,
};
pub use leg::{Ended, Leg};

use super::flows::Flow;

/// byeType of a conversation's CDR (API.md §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ByeType {
    /// 0: the caller leg ended unanswered.
    CallerNoAnswer,
    /// 1: the caller hung up while the callee was dialled.
    CallerHungUpDialing,
    /// 2: the callee did not answer (or failed).
    CalleeNoAnswer,
    /// 3: the caller hung up.
    CallerHungUp,
    /// 4: the callee (or, in a conference, the last other party) hung up.
    CalleeHungUp,
    /// 5: maxDuration was reached.
    MaxDuration,
    /// 6: ended by cancelCall.
    Canceled,
}

impl ByeType {
    /// Its number in the CDR.
    pub fn code(self) -> u8 {
        match self {
            Self::CallerNoAnswer => 0,
            Self::CallerHungUpDialing => 1,
            Self::CalleeNoAnswer => 2,
            Self::CallerHungUp => 3,
            Self::CalleeHungUp => 4,
            Self::MaxDuration => 5,
            Self::Canceled => 6,
        }
    }
}

/// The refusal of a command that reached a call already over.
pub const ENDED: &str = "conversation has already ended";

/// One call: its legs and shared state, and the flow scripting it.
#[derive(Debug)]
pub struct Conversation {
    /// What every call shares.
    pub core: Core,
    /// The script of this kind of call.
    pub flow: Flow,
    /// Taken over from another process: the flow resumes once every live leg was probed.
    awaiting_restore: bool,
}

impl Conversation {
    /// A call that starts fresh (on [`Input::Start`]).
    pub fn new(core: Core, flow: Flow) -> Self {
        Conversation {
            core,
            flow,
            awaiting_restore: false,
        }
    }

    /// A call taken over: on [`Input::Start`] its live legs are probed, then the flow
    /// resumes from what they say.
    pub fn restored(core: Core, flow: Flow) -> Self {
        Conversation {
            core,
            flow,
            awaiting_restore: true,
        }
    }

    /// Whether the call is over and its end written (asked for).
    pub fn is_finished(&self) -> bool {
        self.core.finished
    }

    /// Handles one input at `now` (Unix ms on the media server's clock) and returns what
    /// to do, in order.
    pub fn step(&mut self, now: i64, input: Input) -> Vec<Effect> {
        if self.core.finished {
            return match input {
                Input::Command(token, _) => {
                    vec![Effect::Reply(token, Err(Refusal::ended()))]
                }
                _ => Vec::new(),
            };
        }
        self.core.now = self.core.now.max(now);
        let core = &mut self.core;
        match input {
            Input::Start if self.awaiting_restore => {
                for leg in 0..core.legs.len() {
                    if core.legs[leg].is_live() && core.legs[leg].dialed {
                        core.restore_probe(leg);
                    }
                }
            }
            Input::Start => self.flow.start(core),
            Input::Media(leg, event) if leg < core.legs.len() => core.on_media(leg, event),
            Input::OriginateFailed(leg, cause) if leg < core.legs.len() => {
                core.on_originate_failed(leg, cause)
            }
            Input::Refused(leg, run) if leg < core.legs.len() => core.on_refused(leg, run),
            Input::Reply(token, ok) => self.flow.on_reply(core, token, ok),
            Input::Probed(leg, probe) if leg < core.legs.len() => core.on_probed(leg, probe),
            Input::Unlisted(leg) if leg < core.legs.len() && core.legs[leg].is_live() => {
                core.probe(leg)
            }
            Input::Command(token, command) => self.flow.on_command(core, token, command),
            Input::Timer(timer)
                if timer.is_flow() && timer.leg().is_none_or(|l| l < core.legs.len()) =>
            {
                self.flow.on_timer(core, timer)
            }
            Input::Timer(timer) if timer.leg().is_none_or(|l| l < core.legs.len()) => {
                core.on_timer(timer)
            }
            Input::NodeDown(node) => core.on_node_down(&node),
            Input::NodeUp(node) => core.on_node_up(&node),
            Input::Abort => core.abort(),
            Input::Media(..)
            | Input::OriginateFailed(..)
            | Input::Probed(..)
            | Input::Unlisted(_)
            | Input::Refused(..)
            | Input::Timer(_) => {}
        }
        self.settle();
        self.core.take_effects()
    }

    /// Lets the flow hear everything that happened, then writes the end once every leg
    /// has ended.
    fn settle(&mut self) {
        loop {
            while let Some((leg, happened)) = self.core.next_heard() {
                let ended = happened == Happened::Ended;
                if !self.awaiting_restore {
                    self.flow.on_leg(&mut self.core, leg, happened);
                }
                if ended && self.core.ending.is_none() && !self.awaiting_restore {
                    self.leg_left(leg);
                }
            }
            if self.awaiting_restore && !self.core.restoring() {
                self.awaiting_restore = false;
                self.flow.restored(&mut self.core);
                // Legs that ended while the process was away, in a call that goes on.
                for leg in 0..self.core.legs.len() {
                    if !self.core.legs[leg].is_live() && self.core.ending.is_none() {
                        self.leg_left(leg);
                    }
                }
                continue;
            }
            break;
        }
        if self.core.ending.is_some() && self.core.all_ended() && !self.core.finished {
            self.finish();
        }
    }

    /// A leg ended while the call goes on: its `completed` now (unless the flow wrote it).
    fn leg_left(&mut self, leg: LegIdx) {
        if self.core.legs[leg].reported == Some(Status::Completed) {
            return;
        }
        let facts = self.flow.leg_facts(&self.core, leg);
        self.core.leg_ended(leg, facts);
    }

    fn finish(&mut self) {
        let legs: Vec<_> = (0..self.core.legs.len())
            .map(|leg| self.flow.leg_facts(&self.core, leg))
            .collect();
        let mut ending: Vec<_> = (0..self.core.legs.len())
            .filter(|&leg| self.core.legs[leg].reported != Some(Status::Completed))
            .map(|leg| (leg, legs[leg].clone()))
            .collect();
        ending.sort_by_key(|(leg, facts)| (facts.end_ms, *leg));
        for (leg, _) in &ending {
            self.core.legs[*leg].reported = Some(Status::Completed);
        }
        let kind = self.flow.cdr_kind(&self.core);
        self.core.journal(Write::Finish { ending, legs, kind });
        self.flow.finished(&mut self.core);
        self.core.emit(Effect::Finished);
        self.core.finished = true;
    }
}

//! Going on with a conversation taken over from a process that stopped: its last snapshot
//! says where it was, the probes of its live legs say what happened since. Answers that
//! came while nobody watched are acted on as if just heard, then the hangups, in dialling
//! order (which of two gone channels hung up first cannot be known any more).

use super::{CALLEE, CALLER, Click2CallFlow, Phase};
use crate::domain::click2call::RecordMode;
use crate::orchestrator::engine::{ByeType, Core, Happened};

impl Click2CallFlow {
    pub(crate) fn restored(&mut self, core: &mut Core) {
        if core.ending.is_some() {
            // Ended (aborted) while the legs were asked about.
            return;
        }
        if let Some(bye) = self.state.bye.take() {
            // Decided (a cancel) before the process stopped.
            return self.end(core, bye);
        }
        if let Some(rec) = self
            .state
            .recording
            .as_mut()
            .filter(|r| !r.on && !r.started)
        {
            // Asked for, answer unknown: assume it runs.
            rec.on = true;
            rec.started = true;
        }
        self.resume_answers(core);
        for (leg, cause) in core.unheard_hangups() {
            self.on_leg(core, leg, Happened::HangingUp(cause));
        }
        if self.state.bye.is_none() {
            self.resume_timers(core);
            self.snapshot(core);
        }
    }

    /// What the snapshot had not seen answer yet.
    fn resume_answers(&mut self, core: &mut Core) {
        match self.state.phase {
            Phase::DialCaller if core.legs[CALLER].answered() => {
                if core.legs[CALLER].up() {
                    self.caller_answered(core);
                } else {
                    // It answered and hung up while nobody watched.
                    self.state.phase = Phase::Greeting(0);
                }
            }
            // The greeting may have finished unheard: go on.
            Phase::Greeting(_) if core.legs[CALLER].up() => self.dial_callee(core),
            Phase::DialCallee if core.legs.get(CALLEE).is_some_and(|l| l.answered()) => {
                self.callee_answered(core)
            }
            Phase::DialCallee
                if core.legs.get(CALLEE).is_some_and(|l| l.ring_ms.is_some())
                    && self.plan.callee.record == RecordMode::FromCalleeRinging =>
            {
                self.start_recording(core)
            }
            Phase::FailVoice(_) => self.end(core, ByeType::CalleeNoAnswer),
            Phase::Talking => {
                if let Some(leg) = self
                    .state
                    .adding
                    .as_ref()
                    .map(|(l, _)| *l)
                    .filter(|&l| core.legs.get(l).is_some_and(|l| l.answered()))
                {
                    self.party_answered(core, leg);
                }
            }
            _ => {}
        }
    }

    /// maxDuration timers for talking legs that have none yet; a recording whose channel
    /// left continues elsewhere.
    fn resume_timers(&mut self, core: &mut Core) {
        if self.state.phase != Phase::Talking {
            return;
        }
        if self.plan.callee.record == RecordMode::FromCalleeAnswer
            || self.plan.callee.record == RecordMode::FromCalleeRinging
        {
            self.start_recording(core);
        }
        if let Some(rec) = &self.state.recording
            && !core.legs[rec.leg].up()
        {
            self.move_recording(core);
        }
        for leg in 0..core.legs.len() {
            self.arm_timers(core, leg);
        }
    }
}

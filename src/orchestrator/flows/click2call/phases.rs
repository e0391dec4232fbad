//! The two-party path: the caller answers, hears the greeting, the callee is dialled from
//! the caller's channel and answers (talking, with its timers), and who hangs up first.

use super::{CALLEE, CALLER, Click2CallFlow, MAX_DURATION_CAUSE, Phase};
use crate::domain::click2call::RecordMode;
use crate::orchestrator::engine::{App, ByeType, Core, Dial, Hears, LegIdx, MediaCommand};

impl Click2CallFlow {
    pub(super) fn caller_answered(&mut self, core: &mut Core) {
        let greeting = self
            .plan
            .callee
            .greet
            .clone()
            .and_then(|greet| core.execute(CALLER, App::Playback(greet)));
        match greeting {
            Some(run) => {
                self.state.phase = Phase::Greeting(run);
                self.snapshot(core);
            }
            None => self.dial_callee(core),
        }
    }

    /// Dials the callee from the caller's channel (`bridge`).
    pub(super) fn dial_callee(&mut self, core: &mut Core) {
        let callee = &self.plan.callee;
        let node = core.legs[CALLER].node.clone();
        let leg = core.add_leg(node, callee.from.clone(), callee.to.clone());
        debug_assert_eq!(leg, CALLEE);
        self.state.phase = Phase::DialCallee;
        self.snapshot(core);
        if let Some(ringback) = self.plan.callee.ringback.clone() {
            core.execute(CALLER, App::Set("ringback".into(), ringback));
        }
        let dial = Dial {
            to: self.plan.callee.to.clone(),
            from: Some(self.plan.callee.from.clone()),
            timeout_secs: self.plan.answer_timeout,
            ignore_early_media: self.plan.callee.ringback.is_some(),
            ..Dial::default()
        };
        core.bridge(CALLER, CALLEE, dial);
    }

    /// The callee answered: the two talk.
    pub(super) fn callee_answered(&mut self, core: &mut Core) {
        self.state.phase = Phase::Talking;
        if let (Some(max), Some(answered)) = (self.plan.max_duration, core.legs[CALLEE].answer_ms) {
            self.state.deadline = Some(answered + i64::from(max) * 1000);
        }
        if self.plan.callee.record != RecordMode::Off {
            // Mode 1 started at ringing, if ringing came; mode 2 (and mode 1 without
            // ringing) starts now.
            self.start_recording(core);
        }
        for leg in [CALLER, CALLEE] {
            self.arm_timers(core, leg);
        }
        self.snapshot(core);
        let callee = &self.plan.callee;
        if let Some(voice) = callee.callee_voice.clone() {
            core.media(CALLEE, MediaCommand::Broadcast(voice, Hears::This));
        }
        if let Some(voice) = self.plan.callee.caller_voice.clone() {
            core.media(CALLER, MediaCommand::Broadcast(voice, Hears::This));
        }
    }

    /// maxDuration on a talking leg: `sched_hangup` at the deadline and the last-minute
    /// prompt 60 s before it, on the media server.
    pub(super) fn arm_timers(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(deadline) = self.state.deadline else {
            return;
        };
        if !core.legs[leg].talking() || self.state.armed.contains(&leg) {
            return;
        }
        self.state.armed.push(leg);
        let secs = core.hang_up_at(leg, deadline, MAX_DURATION_CAUSE);
        if secs > 60 {
            let last = self.plan.last_minute.clone();
            core.media(
                leg,
                MediaCommand::BroadcastAfter(secs - 60, last, Hears::This),
            );
        }
    }

    pub(super) fn caller_hung_up(&mut self, core: &mut Core) {
        match self.state.phase {
            Phase::DialCaller if !core.legs[CALLER].answered() => {
                self.end(core, ByeType::CallerNoAnswer)
            }
            Phase::DialCaller | Phase::Greeting(_) => self.end(core, ByeType::CallerHungUp),
            Phase::DialCallee => self.end(core, ByeType::CallerHungUpDialing),
            Phase::FailVoice(_) => self.end(core, ByeType::CalleeNoAnswer),
            Phase::Talking if self.state.in_conference && self.talking(core) >= 2 => {
                self.party_left(core, CALLER)
            }
            Phase::Talking => self.end(core, ByeType::CallerHungUp),
        }
    }

    pub(super) fn callee_hung_up(&mut self, core: &mut Core, answered: bool) {
        if answered || self.state.phase != Phase::DialCallee {
            // The original callee leaving ends the conversation.
            return self.end(core, ByeType::CalleeHungUp);
        }
        let fail_voice = self.plan.callee.fail_voice.clone();
        let failing = self
            .plan
            .callee
            .ringback
            .is_some()
            .then(|| core.execute(CALLER, App::Playback(fail_voice)))
            .flatten();
        match failing {
            Some(run) => {
                self.state.phase = Phase::FailVoice(run);
                self.snapshot(core);
            }
            None => self.end(core, ByeType::CalleeNoAnswer),
        }
    }

    /// Parties answered and not hanging up.
    pub(super) fn talking(&self, core: &Core) -> usize {
        core.legs.iter().filter(|l| l.talking()).count()
    }
}

//! What every agent conversation does once a user and an agent talk, from the CTI
//! settings (agents' contract §3.5): maxCallDuration bounds the talk from the first
//! connection (`sched_hangup` on every leg that talks, then completedCause `time-limit`
//! and byeType 5), and `recordAgentCalls` records the user's channel from the first
//! connection to its end.

use super::AgentFlow;
use crate::domain::agent_call::AgentBye;
use crate::orchestrator::engine::{Core, LegIdx, MediaCommand, ReplyToken};
use crate::orchestrator::flows::click2call::MAX_DURATION_CAUSE;

impl AgentFlow {
    /// The first connection of the user with an agent, at `at`: maxCallDuration counts
    /// from it and the recording starts.
    pub(super) fn talk_began(&mut self, core: &mut Core, at: i64) {
        if self.state.deadline.is_none() && self.rules.max_call_duration > 0 {
            self.state.deadline = Some(at + i64::from(self.rules.max_call_duration) * 1000);
        }
        for leg in 0..core.legs.len() {
            self.arm(core, leg);
        }
        if let (Some(path), None) = (self.rules.recording.clone(), self.state.recording) {
            // On the user's channel, which hears every party and outlives them.
            self.record_reply = core.ask(self.user(), MediaCommand::RecordStart(path));
            self.state.recording = self.record_reply.map(|_| (core.now, false));
        }
    }

    /// maxCallDuration on a talking leg: `sched_hangup` at the deadline, on the media
    /// server.
    pub(super) fn arm(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(deadline) = self.state.deadline else {
            return;
        };
        if !core.legs[leg].talking() || self.state.armed.contains(&leg) {
            return;
        }
        self.state.armed.push(leg);
        core.hang_up_at(leg, deadline, MAX_DURATION_CAUSE);
    }

    /// maxCallDuration cut leg `leg`: the conversation ends (byeType 5) and the legs that
    /// talked end with `time-limit`.
    pub(super) fn time_limit(&mut self, core: &mut Core, leg: LegIdx) {
        self.state.first_gone = Some(leg);
        self.state.timed_out = (0..core.legs.len())
            .filter(|&l| l == leg || core.legs[l].talking())
            .collect();
        self.end(core, AgentBye::MaxDuration);
    }

    /// The media server answered `token`; `true` if it was the recording's answer.
    pub(super) fn recording_answered(
        &mut self,
        core: &mut Core,
        token: ReplyToken,
        ok: bool,
    ) -> bool {
        if self.record_reply != Some(token) {
            return false;
        }
        self.record_reply = None;
        // Refused: no recording, no recordingUrl.
        self.state.recording = self
            .state
            .recording
            .filter(|_| ok)
            .map(|(at, _)| (at, true));
        self.snapshot(core);
        true
    }

    /// A takeover: a recording asked for whose answer is unknown is assumed to run.
    pub(super) fn restore_recording(&mut self) {
        self.state.recording = self.state.recording.map(|(at, _)| (at, true));
    }

    /// The recording's length: from its start to the end of the user's leg, if it ran.
    pub(super) fn recording_ms(&self, core: &Core) -> Option<i64> {
        let (from, on) = self.state.recording?;
        let end = core
            .legs
            .get(self.user())
            .and_then(|l| l.ended.as_ref())
            .map_or(core.now, |e| e.at);
        on.then(|| (end - from).max(0))
    }
}

//! The conversation's recording: `uuid_record` on the caller's channel (it hears both
//! sides); when that channel leaves a conference that goes on, the recording continues on
//! another party's channel, appended to the same file (`RECORD_APPEND`). A recording the
//! media server refused leaves no `recordingUrl`.

use serde::{Deserialize, Serialize};

use super::{CALLEE, CALLER, Click2CallFlow};
use crate::orchestrator::engine::{Core, LegIdx, MediaCommand};

/// A recording asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The channel it runs on.
    pub leg: LegIdx,
    /// Its current segment was confirmed (or, after a takeover, is assumed) to run.
    pub on: bool,
    /// When the current segment was asked for (Unix ms).
    pub asked_at: i64,
    /// Length of the segments before the current one (ms).
    pub done_ms: i64,
    /// At least one segment ran: the file exists.
    pub started: bool,
}

impl Click2CallFlow {
    /// Starts the recording (once) on the caller's channel, or the callee's if the caller
    /// has left.
    pub(super) fn start_recording(&mut self, core: &mut Core) {
        if self.state.recording.is_some() {
            return;
        }
        let leg = if core.legs[CALLER].up() {
            CALLER
        } else {
            CALLEE
        };
        self.record_on(core, leg, 0, false);
    }

    fn record_on(&mut self, core: &mut Core, leg: LegIdx, done_ms: i64, started: bool) {
        let path = self.plan.recording_path.clone();
        if started {
            core.media(
                leg,
                MediaCommand::SetVar("RECORD_APPEND".into(), "true".into()),
            );
        }
        self.record_reply = core.ask(leg, MediaCommand::RecordStart(path));
        self.state.recording = (self.record_reply.is_some() || started).then_some(Recording {
            leg,
            on: false,
            asked_at: core.now,
            done_ms,
            started,
        });
        self.snapshot(core);
    }

    /// The media server answered `uuid_record`.
    pub(super) fn recording_answered(&mut self, core: &mut Core, ok: bool) {
        let Some(rec) = self.state.recording.as_mut() else {
            return;
        };
        if ok {
            rec.on = true;
            rec.started = true;
        } else if !rec.started {
            self.state.recording = None;
        }
        self.snapshot(core);
    }

    /// Whether the recording runs (or was asked to run) on `leg`.
    pub(super) fn recording_on(&self, leg: LegIdx) -> bool {
        self.state.recording.as_ref().is_some_and(|r| r.leg == leg)
    }

    /// The recorder's channel leaves: the recording goes on on a talking party's channel.
    pub(super) fn move_recording(&mut self, core: &mut Core) {
        let Some(rec) = self.state.recording.clone() else {
            return;
        };
        let done = rec.done_ms
            + if rec.on {
                (core.now - rec.asked_at).max(0)
            } else {
                0
            };
        let next = [CALLEE]
            .into_iter()
            .chain(2..core.legs.len())
            .find(|&l| core.legs[l].talking());
        match next {
            Some(leg) => self.record_on(core, leg, done, rec.started || rec.on),
            None => {
                if let Some(r) = self.state.recording.as_mut() {
                    r.done_ms = done;
                    r.on = false;
                }
            }
        }
    }

    /// The recording's length (ms), if there is one.
    pub(super) fn recording_ms(&self, core: &Core) -> Option<i64> {
        let rec = self.state.recording.as_ref()?;
        if !rec.started && !rec.on {
            return None;
        }
        let running = if rec.on {
            let end = core.legs[rec.leg].ended.as_ref().map_or(core.now, |e| e.at);
            (end - rec.asked_at).max(0)
        } else {
            0
        };
        Some(rec.done_ms + running)
    }
}

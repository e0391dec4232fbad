//! What every call shares, whatever its flow: legs and their life (dialled → ringing →
//! answered → hanging up → ended, each status written once and in order), hangups that
//! are confirmed or given up on, lost nodes, probes after a takeover, application runs,
//! and the end of the call (every leg hung up, then its CDR). Flows script calls on top
//! of this through its methods; the effects collect here in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::io::{
    App, Dial, Effect, LegIdx, MediaCommand, MediaEvent, Probe, ReplyToken, Signalling, Status,
    Timer, Write,
};
use super::leg::{Ended, Leg};
use crate::cdr::MEDIA_LOST;
use crate::domain::IdGenerator;

/// Cause sent to the media server when the platform ends a call because of its own failure.
pub const ABORT_CAUSE: &str = "NORMAL_TEMPORARY_FAILURE";
/// Cause of a leg the platform hangs up because it rang past any answer timeout.
const WATCHDOG_CAUSE: &str = "NO_ANSWER";
/// Hangups re-sent before a channel that will not end is given up on.
const KILL_TRIES: u8 = 3;

/// The platform's own deadlines (real time, ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a leg waits for its lost node before it ends as failed.
    pub node_grace_ms: i64,
    /// How long a hangup may take before the channel is asked about.
    pub kill_wait_ms: i64,
    /// How long a failed originate waits for its channel's hangup events.
    pub originate_failed_wait_ms: i64,
    /// How far past its answer timeout a dialling leg is hung up by the platform.
    pub dial_slack_ms: i64,
    /// Longest an application may run.
    pub app_watchdog_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            node_grace_ms: 10_000,
            kill_wait_ms: 10_000,
            originate_failed_wait_ms: 2_000,
            dial_slack_ms: 30_000,
            app_watchdog_ms: 20 * 60_000,
        }
    }
}

/// What a flow hears about one of its legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// It rings (first progress).
    Ringing,
    /// It answered.
    Answered,
    /// A key.
    Key(char),
    /// Application run `run` (of this generation, or `None`) finished.
    AppDone(Option<u32>),
    /// Its hangup began, with this cause: the first of these decides who hung up.
    HangingUp(String),
    /// It is over.
    Ended,
}

/// The shared part of a conversation's state.
#[derive(Debug)]
pub struct Core {
    /// The call's id: `CA…` of a notice or captcha, `CV…` of a conversation.
    pub id: String,
    /// Its legs, in dialling order.
    pub legs: Vec<Leg>,
    /// Now, on the media server's clock (Unix ms), as of the input being handled.
    pub now: i64,
    /// Deadlines.
    pub limits: Limits,
    /// The call is over; every leg still live is hung up with this cause.
    pub ending: Option<String>,
    /// The platform ended the call because of its own failure.
    pub aborted: bool,
    /// The end is written.
    pub finished: bool,
    /// Ringing and the answer are written with the leg's end rather than as they happen
    /// (calls without status callbacks: a takeover asks the media server for them).
    pub quiet_progress: bool,
    effects: Vec<Effect>,
    writes: Vec<Write>,
    /// What the flow has not heard yet, in order.
    heard: std::collections::VecDeque<(LegIdx, Happened)>,
    next_run: u32,
    next_reply: ReplyToken,
    /// Application runs not finished yet: their legs, and whether they end by themselves
    /// ([`App::ends_by_itself`]). A leg runs its applications one after another in the
    /// order they were sent; the oldest one of each leg has a watchdog if it ends by
    /// itself.
    runs: BTreeMap<u32, (LegIdx, bool)>,
    /// Legs whose queued applications were dropped (`uuid_break all`): every run of the
    /// leg up to this one is over once the first of the leg's runs reports its end.
    flushing: BTreeMap<LegIdx, u32>,
    ids: Arc<IdGenerator>,
}

impl Core {
    /// A call `id` with `legs` (known so far).
    pub fn new(id: String, legs: Vec<Leg>, limits: Limits, ids: Arc<IdGenerator>) -> Self {
        Core {
            id,
            legs,
            now: 0,
            limits,
            ending: None,
            aborted: false,
            finished: false,
            quiet_progress: false,
            effects: Vec::new(),
            writes: Vec::new(),
            heard: std::collections::VecDeque::new(),
            next_run: 1,
            next_reply: 1,
            runs: BTreeMap::new(),
            flushing: BTreeMap::new(),
            ids,
        }
    }

    // ---- effects -------------------------------------------------------------------

    /// Adds a durable write; consecutive writes go in one transaction, before any effect
    /// that follows them.
    pub fn journal(&mut self, write: Write) {
        self.writes.push(write);
    }

    /// Writes an agent conversation's state for a takeover, its stage `bridged` once the
    /// parties are `connected`, else `dialing`.
    pub fn snapshot_connected<T: serde::Serialize>(&mut self, connected: bool, state: &T) {
        let stage = if connected { "bridged" } else { "dialing" };
        self.snapshot(stage, state);
    }

    /// Writes a flow's state for the API (`stage`) and a later takeover.
    pub fn snapshot<T: serde::Serialize>(&mut self, stage: &'static str, state: &T) {
        let data = serde_json::to_value(state).unwrap_or_default();
        self.journal(Write::Snapshot(stage, data));
    }

    /// Hangs leg `leg` up at `deadline` (media clock) with `cause`, on the media server
    /// (`sched_hangup`, at least 1 s from now); the seconds until then.
    pub fn hang_up_at(&mut self, leg: LegIdx, deadline: i64, cause: &str) -> u32 {
        let left_ms = (deadline - self.now).max(1000);
        let secs = u32::try_from((left_ms + 999) / 1000).unwrap_or(u32::MAX);
        self.media(leg, MediaCommand::HangupAfter(secs, cause.into()));
        secs
    }

    /// The legs whose hangup began while nobody watched (a takeover) and was not reported,
    /// with its cause, in dialling order: the flow hears them as if just now.
    pub fn unheard_hangups(&self) -> Vec<(LegIdx, String)> {
        self.legs
            .iter()
            .enumerate()
            .filter(|(_, l)| !(l.is_live() && l.hangup.is_none()))
            .filter(|(_, l)| l.reported != Some(Status::Completed))
            .filter_map(|(i, l)| l.hangup.as_ref().map(|(_, cause)| (i, cause.clone())))
            .collect()
    }

    /// Adds an effect after the writes before it.
    pub fn emit(&mut self, effect: Effect) {
        self.flush();
        self.effects.push(effect);
    }

    fn flush(&mut self) {
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            self.effects.push(Effect::Journal(writes));
        }
    }

    /// Everything asked for since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.flush();
        std::mem::take(&mut self.effects)
    }

    // ---- legs ----------------------------------------------------------------------

    /// A new leg to `to` on `node` (its id made now).
    pub fn add_leg(&mut self, node: String, from: String, to: String) -> LegIdx {
        let at = chrono::DateTime::from_timestamp_millis(self.now).unwrap_or_default();
        let id = self.ids.call(at).to_string();
        self.legs.push(Leg::new(id, node, from, to, self.now));
        self.legs.len() - 1
    }

    /// Writes the end of leg `leg`, which ended while the call goes on, now: a flow that
    /// acts on the end writes it first, so what it does follows the leg's `completed`.
    pub fn leg_ended(&mut self, leg: LegIdx, facts: crate::cdr::LegFacts) {
        if self.legs[leg].reported == Some(Status::Completed) {
            return;
        }
        self.legs[leg].reported = Some(Status::Completed);
        self.journal(Write::LegEnded(leg, facts));
    }

    /// Writes that `leg` reached `status` (once, and never going back).
    pub fn report(&mut self, leg: LegIdx, status: Status, at: i64) {
        if self.legs[leg].reported.is_some_and(|r| r >= status) {
            return;
        }
        self.legs[leg].reported = Some(status);
        if !(self.quiet_progress && matches!(status, Status::Ringing | Status::Answered)) {
            self.journal(Write::Status(leg, status, at));
        }
    }

    /// Dials the leg parked: written as `initiated` first, then the originate. A leg no
    /// media node could take ends at once as failed.
    pub fn originate(&mut self, leg: LegIdx, dial: Dial, new_leg: bool) {
        if self.legs[leg].node.is_empty() {
            self.unreachable(leg, new_leg);
            return;
        }
        self.start_dial(leg, &dial, new_leg);
        self.emit(Effect::Originate(leg, dial));
    }

    /// Dials `leg` from channel `from` with the `bridge` application.
    pub fn bridge(&mut self, from: LegIdx, leg: LegIdx, dial: Dial) -> bool {
        if !self.legs[from].up() {
            self.unreachable(leg, true);
            return false;
        }
        self.start_dial(leg, &dial, true);
        self.execute(from, App::Bridge(leg, dial)).is_some()
    }

    /// A leg that cannot be dialled ends at once as failed (a new one is written first, so
    /// every leg of the CDR has its row and its statuses).
    fn unreachable(&mut self, leg: LegIdx, new_leg: bool) {
        if new_leg {
            self.legs[leg].reported = Some(Status::Initiated);
            self.journal(Write::NewLeg(leg));
        }
        self.end_now(leg, MEDIA_LOST);
    }

    fn start_dial(&mut self, leg: LegIdx, dial: &Dial, new_leg: bool) {
        let now = self.now;
        let l = &mut self.legs[leg];
        l.start_ms = now;
        l.dialed = true;
        l.reported = Some(Status::Initiated);
        if new_leg {
            self.journal(Write::NewLeg(leg));
        } else {
            self.journal(Write::Status(leg, Status::Initiated, now));
        }
        self.emit(Effect::Follow(leg));
        let watchdog = i64::from(dial.timeout_secs) * 1000 + self.limits.dial_slack_ms;
        self.emit(Effect::SetTimer(Timer::DialWatchdog(leg), watchdog));
    }

    /// Runs an application on `leg` (if it is up) after those already sent to it;
    /// returns the run's number.
    pub fn execute(&mut self, leg: LegIdx, app: App) -> Option<u32> {
        if !self.legs[leg].up() || !self.legs[leg].dialed {
            return None;
        }
        let run = self.next_run;
        self.next_run += 1;
        let ends = app.ends_by_itself();
        let watched = ends && self.oldest_run(leg).is_none();
        self.runs.insert(run, (leg, ends));
        self.emit(Effect::Execute { leg, app, run });
        if watched {
            let limit = self.limits.app_watchdog_ms;
            self.emit(Effect::SetTimer(Timer::AppWatchdog(run), limit));
        }
        Some(run)
    }

    /// The oldest unfinished run of `leg` (the one its channel runs now), and whether it
    /// ends by itself.
    fn oldest_run(&self, leg: LegIdx) -> Option<(u32, bool)> {
        self.runs
            .iter()
            .find(|(_, (l, _))| *l == leg)
            .map(|(r, (_, ends))| (*r, *ends))
    }

    /// Run `run` is over (done or refused); `None` if it was not running. Runs its leg
    /// dropped with a `uuid_break all` are over with it, and the watchdog passes to the
    /// leg's next run.
    fn run_over(&mut self, run: u32) -> Option<LegIdx> {
        let (leg, _) = *self.runs.get(&run)?;
        let watched = self.oldest_run(leg);
        self.runs.remove(&run);
        if let Some(upto) = self.flushing.remove(&leg) {
            self.runs.retain(|r, (l, _)| *l != leg || *r > upto);
        }
        let next = self.oldest_run(leg);
        if watched != next {
            if let Some((watched, true)) = watched {
                self.emit(Effect::CancelTimer(Timer::AppWatchdog(watched)));
            }
            if let Some((next, true)) = next {
                let limit = self.limits.app_watchdog_ms;
                self.emit(Effect::SetTimer(Timer::AppWatchdog(next), limit));
            }
        }
        Some(leg)
    }

    /// An API command on `leg`'s channel (if it is up).
    pub fn media(&mut self, leg: LegIdx, command: MediaCommand) {
        if self.legs[leg].up() && self.legs[leg].dialed {
            if command == MediaCommand::BreakAll
                && let Some(last) = self.runs.iter().rev().find(|(_, (l, _))| *l == leg)
            {
                self.flushing.insert(leg, *last.0);
            }
            self.emit(Effect::Media(leg, command, None));
        }
    }

    /// An API command on `leg`'s channel whose outcome comes back as a reply.
    pub fn ask(&mut self, leg: LegIdx, command: MediaCommand) -> Option<ReplyToken> {
        if !self.legs[leg].up() || !self.legs[leg].dialed {
            return None;
        }
        let token = self.next_reply;
        self.next_reply += 1;
        self.emit(Effect::Media(leg, command, Some(token)));
        Some(token)
    }

    /// Hangs the leg up with `cause` (once); a leg never dialled just ends, and one whose
    /// hangup already began is only waited for.
    pub fn hang_up(&mut self, leg: LegIdx, cause: &str) {
        let l = &self.legs[leg];
        if !l.is_live() || l.kill.is_some() {
            return;
        }
        if !l.dialed {
            self.end_now(leg, cause);
            return;
        }
        self.legs[leg].kill = Some((cause.to_string(), 1));
        if self.legs[leg].hangup.is_none() {
            self.emit(Effect::Media(
                leg,
                MediaCommand::Kill(cause.to_string()),
                None,
            ));
        }
        let wait = self.limits.kill_wait_ms;
        self.emit(Effect::SetTimer(Timer::KillWait(leg), wait));
    }

    /// The call is over: every live leg is hung up with `cause`; when all have ended the
    /// flow writes the end.
    pub fn end_call(&mut self, cause: &str) {
        if self.ending.is_some() {
            return;
        }
        self.ending = Some(cause.to_string());
        for leg in 0..self.legs.len() {
            self.hang_up(leg, cause);
        }
    }

    /// The platform failed: live legs end as failed.
    pub fn abort(&mut self) {
        if self.finished {
            return;
        }
        self.aborted = true;
        for leg in self.legs.iter_mut().filter(|l| l.is_live()) {
            leg.failed = true;
        }
        // A hangup already under way is not re-sent; the others are hung up now.
        self.ending.get_or_insert_with(|| ABORT_CAUSE.to_string());
        for leg in 0..self.legs.len() {
            self.hang_up(leg, ABORT_CAUSE);
        }
    }

    /// Whether every leg has ended.
    pub fn all_ended(&self) -> bool {
        !self.legs.iter().any(Leg::is_live)
    }

    /// Ends `leg` now (the platform's own knowledge: lost, never dialled, given up).
    pub fn end_now(&mut self, leg: LegIdx, cause: &str) {
        self.end_at(leg, self.now, cause, Signalling::default());
    }

    fn end_at(&mut self, leg: LegIdx, at: i64, cause: &str, signalling: Signalling) {
        if !self.legs[leg].is_live() {
            return;
        }
        self.hanging_up(leg, u64::MAX, cause.to_string());
        let l = &self.legs[leg];
        let at = at.max(l.answer_ms.or(l.ring_ms).unwrap_or(l.start_ms));
        self.legs[leg].ended = Some(Ended {
            at,
            cause: cause.to_string(),
            signalling,
        });
        self.legs[leg].unverified = false;
        self.forget_timers(leg);
        self.heard.push_back((leg, Happened::Ended));
    }

    /// The next thing the flow should hear.
    pub fn next_heard(&mut self) -> Option<(LegIdx, Happened)> {
        self.heard.pop_front()
    }

    fn forget_timers(&mut self, leg: LegIdx) {
        for timer in [
            Timer::NodeGrace(leg),
            Timer::OriginateFailed(leg),
            Timer::KillWait(leg),
            Timer::DialWatchdog(leg),
            Timer::OfferBridge(leg),
        ] {
            self.effects.push(Effect::CancelTimer(timer));
        }
        let runs: Vec<u32> = self
            .runs
            .iter()
            .filter(|(_, (l, _))| *l == leg)
            .map(|(r, _)| *r)
            .collect();
        for run in runs {
            self.runs.remove(&run);
            self.effects
                .push(Effect::CancelTimer(Timer::AppWatchdog(run)));
        }
        self.flushing.remove(&leg);
    }

    // ---- inputs --------------------------------------------------------------------

    /// An event of `leg`'s channel; what the flow should hear of it is queued.
    pub fn on_media(&mut self, leg: LegIdx, event: MediaEvent) {
        if !self.legs[leg].is_live() {
            return;
        }
        match event {
            MediaEvent::Created { at, name } => {
                let l = &mut self.legs[leg];
                if !name.is_empty() {
                    l.channel_name = name;
                }
                if !l.answered() && l.ring_ms.is_none() {
                    l.start_ms = at;
                }
            }
            MediaEvent::Progress { at } => self.progress(leg, at),
            MediaEvent::Answered { at } => self.answered(leg, at),
            MediaEvent::Dtmf(key) => {
                if self.legs[leg].up() {
                    self.heard.push_back((leg, Happened::Key(key)));
                }
            }
            MediaEvent::AppDone { run } => {
                if let Some(run) = run
                    && self.run_over(run).is_none()
                {
                    return;
                }
                self.heard.push_back((leg, Happened::AppDone(run)));
            }
            MediaEvent::Hangup { seq, cause } => {
                if self.legs[leg].hangup.is_none() {
                    // Its end should follow at once; if it does not, the channel is asked about.
                    let wait = self.limits.kill_wait_ms;
                    self.emit(Effect::SetTimer(Timer::KillWait(leg), wait));
                }
                self.hanging_up(leg, seq, cause);
            }
            MediaEvent::HangupComplete {
                at,
                cause,
                answered_at,
                signalling,
            } => {
                if let Some(answered) = answered_at {
                    self.answered(leg, answered);
                }
                self.end_at(leg, at, &cause, signalling);
            }
        }
    }

    fn progress(&mut self, leg: LegIdx, at: i64) {
        let l = &mut self.legs[leg];
        if l.ring_ms.is_some() || l.answered() || l.hangup.is_some() {
            return;
        }
        let at = at.max(l.start_ms);
        l.ring_ms = Some(at);
        self.report(leg, Status::Ringing, at);
        self.heard.push_back((leg, Happened::Ringing));
    }

    fn answered(&mut self, leg: LegIdx, at: i64) {
        let l = &mut self.legs[leg];
        if l.answered() {
            return;
        }
        let at = at.max(l.ring_ms.unwrap_or(l.start_ms));
        l.answer_ms = Some(at);
        self.emit(Effect::CancelTimer(Timer::DialWatchdog(leg)));
        self.report(leg, Status::Answered, at);
        self.heard.push_back((leg, Happened::Answered));
    }

    fn hanging_up(&mut self, leg: LegIdx, seq: u64, cause: String) {
        if self.legs[leg].hangup.is_some() {
            return;
        }
        self.legs[leg].hangup = Some((seq, cause.clone()));
        self.heard.push_back((leg, Happened::HangingUp(cause)));
    }

    /// The leg's originate failed: its channel's own events normally follow at once.
    pub fn on_originate_failed(&mut self, leg: LegIdx, cause: String) {
        let l = &mut self.legs[leg];
        if !l.is_live() || l.originate_failed.is_some() {
            return;
        }
        l.originate_failed = Some(cause);
        let wait = self.limits.originate_failed_wait_ms;
        self.emit(Effect::SetTimer(Timer::OriginateFailed(leg), wait));
    }

    /// Application run `run` was refused: it is over; the channel is asked about.
    pub fn on_refused(&mut self, leg: LegIdx, run: u32) {
        if self.run_over(run).is_none() {
            return;
        }
        self.heard.push_back((leg, Happened::AppDone(Some(run))));
        if self.legs[leg].is_live() {
            self.probe(leg);
        }
    }

    /// A node's connection was lost: its legs wait for it.
    pub fn on_node_down(&mut self, node: &str) {
        for leg in 0..self.legs.len() {
            let l = &mut self.legs[leg];
            if l.node == node && l.is_live() && l.dialed && !l.lost {
                l.lost = true;
                let grace = self.limits.node_grace_ms;
                self.emit(Effect::SetTimer(Timer::NodeGrace(leg), grace));
            }
        }
    }

    /// A node is back: its lost legs are asked about.
    pub fn on_node_up(&mut self, node: &str) {
        for leg in 0..self.legs.len() {
            let l = &self.legs[leg];
            if l.node == node && l.is_live() && l.lost {
                self.probe(leg);
            }
        }
    }

    /// Asks the media server about `leg`'s channel.
    pub fn probe(&mut self, leg: LegIdx) {
        if self.legs[leg].probing {
            return;
        }
        self.legs[leg].probing = true;
        self.emit(Effect::Probe(leg));
    }

    /// What the media server said of `leg`'s channel.
    pub fn on_probed(&mut self, leg: LegIdx, probe: Probe) {
        self.legs[leg].probing = false;
        self.legs[leg].unverified = false;
        if !self.legs[leg].is_live() {
            return;
        }
        match probe {
            Probe::Gone => {
                // Its end was not heard: the cause of the hangup seen or asked for, else lost.
                let l = &self.legs[leg];
                let cause = match (&l.hangup, &l.kill) {
                    (Some((_, cause)), _) | (None, Some((cause, _))) => cause.clone(),
                    (None, None) => MEDIA_LOST.to_string(),
                };
                self.end_now(leg, &cause);
            }
            Probe::Alive {
                progress_at,
                answered_at,
            } => {
                if self.legs[leg].lost {
                    self.legs[leg].lost = false;
                    self.emit(Effect::CancelTimer(Timer::NodeGrace(leg)));
                }
                if let Some(at) = progress_at {
                    self.progress(leg, at);
                }
                if let Some(at) = answered_at {
                    self.answered(leg, at);
                }
                if let Some((cause, tries)) = self.legs[leg].kill.clone() {
                    self.retry_kill(leg, cause, tries);
                } else if self.legs[leg].hangup.is_some() {
                    self.emit(Effect::SetTimer(
                        Timer::KillWait(leg),
                        self.limits.kill_wait_ms,
                    ));
                }
            }
            Probe::Unknown => {
                if !self.legs[leg].lost {
                    self.legs[leg].lost = true;
                    let grace = self.limits.node_grace_ms;
                    self.emit(Effect::SetTimer(Timer::NodeGrace(leg), grace));
                }
            }
        }
    }

    fn retry_kill(&mut self, leg: LegIdx, cause: String, tries: u8) {
        if tries >= KILL_TRIES {
            // The media server will not end it: stop waiting for it.
            self.end_now(leg, MEDIA_LOST);
            return;
        }
        self.legs[leg].kill = Some((cause.clone(), tries + 1));
        self.emit(Effect::Media(leg, MediaCommand::Kill(cause), None));
        let wait = self.limits.kill_wait_ms;
        self.emit(Effect::SetTimer(Timer::KillWait(leg), wait));
    }

    /// A core timer fired.
    pub fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::NodeGrace(leg) if self.legs[leg].lost => self.end_now(leg, MEDIA_LOST),
            Timer::OriginateFailed(leg) => {
                if let Some(cause) = self.legs[leg].originate_failed.clone() {
                    self.end_now(leg, &cause);
                }
            }
            Timer::KillWait(leg) if self.legs[leg].is_live() => self.probe(leg),
            Timer::DialWatchdog(leg) if !self.legs[leg].answered() => {
                self.hang_up(leg, WATCHDOG_CAUSE)
            }
            Timer::AppWatchdog(run) if self.runs.remove(&run).is_some() => self.abort(),
            _ => {}
        }
    }

    /// Follows a taken-over leg and asks the media server about it; the flow resumes once
    /// every such leg has been answered for ([`Core::restoring`]).
    pub fn restore_probe(&mut self, leg: LegIdx) {
        self.legs[leg].unverified = true;
        self.emit(Effect::Follow(leg));
        self.probe(leg);
    }

    /// Whether a taken-over leg still waits for its probe.
    pub fn restoring(&self) -> bool {
        self.legs.iter().any(|l| l.unverified)
    }
}

//! One simulated channel: its life from originate to destroy as a task, driven by the far
//! end's [`Outcome`], by commands (sendmsg, uuid_*), and by timers on the sandbox clock.
//! It emits the events FreeSWITCH emits for the same thing, in the same order (ESL.md §3,
//! the transcripts in `shared/esl-transcripts`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::outcome::Outcome;
use super::switch::Switch;
use crate::esl::Event;

/// What a channel can be told.
#[derive(Debug)]
pub enum Command {
    /// `sendmsg` execute: queue an application.
    Execute(App),
    /// Hang up (uuid_kill, sendmsg hangup, a bridged partner leaving).
    Hangup(String),
    /// Keys pressed by the far end (uuid_send_dtmf / uuid_recv_dtmf).
    Dtmf(String),
    /// Stop the running application (uuid_break); `all` also drops the applications
    /// queued behind it (`uuid_break <uuid> all`).
    Break {
        /// `all` was given.
        all: bool,
    },
    /// Hang up after this much sandbox time (sched_hangup).
    ScheduleHangup(Duration, String),
    /// Play a file after this much sandbox time (sched_broadcast) or now (uuid_broadcast),
    /// to this channel, its bridged partner, or both.
    Broadcast(Duration, String, Legs),
    /// Start or stop recording to a path (uuid_record).
    Record { start: bool, path: String },
    /// Bridged to another channel (uuid_bridge, or a bridge app's B leg answering); only
    /// the originating leg (`true`) reports CHANNEL_BRIDGE.
    Bridged(String, bool),
    /// The bridged partner hung up.
    PartnerGone,
    /// A bridge app's B leg failed with this cause.
    BridgeFailed(String),
    /// Read a channel variable.
    GetVar(String, oneshot::Sender<Option<String>>),
    /// Set a channel variable (uuid_setvar).
    SetVar(String, String),
    /// Describe the channel (uuid_dump): its headers and variables as a CHANNEL_DATA event.
    Dump(oneshot::Sender<Event>),
    /// uuid_transfer to an inline application: leave any bridge (without hanging up the
    /// partner), drop what runs or is queued, run `App`; `true` = the partner too.
    Transfer(App, bool),
    /// `uuid_hold` (`true`) or `uuid_hold off`, as a SIP leg takes it (esl-transcripts 80).
    Hold(bool),
    /// The channel of this uuid starts (`true`) or stops eavesdropping on this one: its
    /// media bug (MEDIA_BUG_START / MEDIA_BUG_STOP here, esl-transcripts 84).
    Eavesdropped(String, bool),
    /// The channel eavesdropped on is gone: the eavesdrop ends and so does the channel.
    EavesdropEnded,
}

/// Which legs a broadcast plays to (`uuid_broadcast`/`sched_broadcast`'s last argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legs {
    /// The channel named (the default).
    Aleg,
    /// Its bridged partner.
    Bleg,
    /// Both.
    Both,
}

impl Legs {
    /// `aleg`, `bleg` or `both` (anything else: `aleg`).
    pub fn parse(s: &str) -> Self {
        match s {
            "bleg" => Self::Bleg,
            "both" => Self::Both,
            _ => Self::Aleg,
        }
    }
}

/// A queued application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Name (`playback`, `say`, …).
    pub name: String,
    /// Argument.
    pub arg: String,
    /// `event-uuid` of the sendmsg, echoed as `Application-UUID`.
    pub event_uuid: Option<String>,
}

/// Where the channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Answered,
}

#[derive(Debug)]
enum Timer {
    Answer,
    NoAnswer,
    /// A caller waiting to be answered hangs up.
    GiveUp,
    RemoteHangup,
    Press(char),
    AppDone,
    DigitsTimeout,
    Hangup(String),
    Broadcast(String, Legs),
    /// A broadcast played over a bridge or conference has finished.
    OverlayDone(String),
}

/// The running application.
#[derive(Debug)]
struct Running {
    app: App,
    /// For play_and_get_digits: (min, max, terminators, variable, digits so far).
    digits: Option<(usize, usize, String, String, String)>,
    /// Whether it ends by itself (has an AppDone timer) or runs until something happens.
    playing: Option<String>,
}

/// How the channel came to be.
pub struct Spawn {
    /// Its uuid.
    pub uuid: String,
    /// The dialled number (last `/` segment of the dial string).
    pub number: String,
    /// The dial string.
    pub dial: String,
    /// `{k=v}` variables.
    pub vars: HashMap<String, String>,
    /// The first application (`park`, from `&park()`), if any.
    pub first_app: Option<App>,
    /// For bgapi: `(Job-UUID, command, args)`, answered with BACKGROUND_JOB.
    pub job: Option<(String, String, String)>,
    /// For api originate: told the result.
    pub result: Option<oneshot::Sender<String>>,
    /// For a bridge app's B leg: the A leg.
    pub bridge_for: Option<String>,
    /// For a simulated caller dialling in: its own number (the channel is inbound and
    /// `number` is the DID it dialled).
    pub caller: Option<String>,
}

/// The channel task's state.
pub struct Channel {
    switch: Arc<Switch>,
    uuid: String,
    number: String,
    name: String,
    vars: HashMap<String, String>,
    outcome: Outcome,
    phase: Phase,
    created_us: i64,
    progress_us: Option<i64>,
    answered_us: Option<i64>,
    hangup_cause: Option<String>,
    queue: VecDeque<App>,
    running: Option<Running>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    partner: Option<String>,
    bridge_for: Option<String>,
    /// The file being recorded, since when, and whether it is appended to.
    recording: Option<(String, i64, bool)>,
    conference: Option<String>,
    /// The channel this one eavesdrops on.
    eavesdropping: Option<String>,
    /// The channels eavesdropping on this one.
    eavesdroppers: Vec<String>,
    job: Option<(String, String, String)>,
    result: Option<oneshot::Sender<String>>,
    /// The caller's number when the channel dials in (inbound), else `None`.
    caller: Option<String>,
    rx: mpsc::Receiver<Command>,
}

/// The context agents' phones dial from (the directory's `user_context`, §11.2).
pub const AGENTS_CONTEXT: &str = "voicepaas_agents";

/// How long a simulated caller waits unanswered before hanging up.
const CALLER_GIVES_UP: Duration = Duration::from_secs(60);
/// Seconds a prompt file plays in the sandbox (API.md §12).
const PROMPT_FILE: Duration = Duration::from_secs(2);
/// Seconds one `say` of a content item takes.
const SAY_ITEM: Duration = Duration::from_secs(1);
/// Seconds per spelled captcha character (`say … NAME_SPELLED …`).
const SAY_CHAR: Duration = Duration::from_millis(500);

impl Channel {
    /// Starts the channel's task; returns its command sender.
    pub fn spawn(switch: Arc<Switch>, spawn: Spawn) -> mpsc::Sender<Command> {
        let (tx, rx) = mpsc::channel(256);
        // `user/…` is an agent's device (its registration), and so is any leg dialled to
        // answer by itself (an agent's pstnNumber); anything else a phone number.
        let agent_leg = spawn
            .vars
            .get("sip_auto_answer")
            .is_some_and(|v| v == "true");
        let outcome = match &spawn.caller {
            Some(caller) => Outcome::for_caller(caller),
            // A device that unregistered (esl-transcripts 86) cannot be reached.
            None if spawn.dial.starts_with("user/") && !switch.registered(&spawn.number) => {
                Outcome::unreachable("USER_NOT_REGISTERED")
            }
            None if spawn.dial.starts_with("user/") || agent_leg => {
                Outcome::for_agent_device(&spawn.number)
            }
            None => Outcome::for_number(&spawn.number),
        };
        let created_us = switch.clock.now_us();
        let name = format!(
            "sofia/sandbox/{}",
            spawn.caller.as_deref().unwrap_or(&spawn.number)
        );
        let mut vars = spawn.vars;
        vars.insert("dialed_number".into(), spawn.number.clone());
        vars.entry("origination_dial_string".into())
            .or_insert(spawn.dial);
        let channel = Channel {
            switch,
            uuid: spawn.uuid,
            number: spawn.number,
            name,
            vars,
            outcome,
            phase: Phase::Ringing,
            created_us,
            progress_us: None,
            answered_us: None,
            hangup_cause: None,
            queue: spawn.first_app.into_iter().collect(),
            running: None,
            timers: BTreeMap::new(),
            timer_seq: 0,
            partner: None,
            bridge_for: spawn.bridge_for,
            recording: None,
            conference: None,
            eavesdropping: None,
            eavesdroppers: Vec::new(),
            job: spawn.job,
            result: spawn.result,
            caller: spawn.caller,
            rx,
        };
        tokio::spawn(channel.live());
        tx
    }

    fn at(&mut self, delay: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .insert((self.switch.clock.deadline(delay), self.timer_seq), timer);
    }

    fn cancel_timers(&mut self, keep: impl Fn(&Timer) -> bool) {
        self.timers.retain(|_, t| keep(t));
    }

    async fn live(mut self) {
        self.begin();
        while self.hangup_cause.is_none() {
            let next = self.timers.keys().next().copied();
            tokio::select! {
                command = self.rx.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => self.hang_up("SYSTEM_SHUTDOWN"),
                },
                _ = sleep_until(next.map(|(at, _)| at)) => {
                    if let Some(key) = next
                        && let Some(timer) = self.timers.remove(&key) {
                            self.on_timer(timer);
                        }
                }
            }
        }
        self.finish();
    }

    // ---- events ------------------------------------------------------------------

    fn answer_state(&self) -> &'static str {
        match (self.hangup_cause.is_some(), self.phase) {
            (true, _) => "hangup",
            (false, Phase::Answered) => "answered",
            (false, Phase::Ringing) => "ringing",
        }
    }

    fn call_state(&self) -> &'static str {
        match (self.hangup_cause.is_some(), self.phase) {
            (true, _) => "HANGUP",
            (false, Phase::Answered) => "ACTIVE",
            (false, Phase::Ringing) => "RINGING",
        }
    }

    /// A channel event with FreeSWITCH's standard headers, `extra`, and (for most
    /// events) the channel variables.
    fn event(&self, name: &str, state: &str, extra: &[(&str, String)]) -> Event {
        let mut e = self.switch.base_event(name);
        let h = &mut e;
        h.push("Channel-State", state);
        h.push("Channel-Call-State", self.call_state());
        h.push("Channel-State-Number", state_number(state));
        h.push("Channel-Name", self.name.clone());
        h.push("Unique-ID", self.uuid.clone());
        let direction = self.direction();
        h.push("Call-Direction", direction);
        h.push("Presence-Call-Direction", direction);
        h.push("Channel-Call-UUID", self.uuid.clone());
        h.push("Answer-State", self.answer_state());
        if let Some(cause) = &self.hangup_cause {
            h.push("Hangup-Cause", cause.clone());
        }
        h.push("Caller-Direction", direction);
        h.push(
            "Caller-Caller-ID-Number",
            self.caller.clone().unwrap_or_else(|| {
                self.vars
                    .get("origination_caller_id_number")
                    .cloned()
                    .unwrap_or_else(|| "0000000000".into())
            }),
        );
        h.push("Caller-Destination-Number", self.number.clone());
        h.push("Caller-Unique-ID", self.uuid.clone());
        h.push("Caller-Channel-Name", self.name.clone());
        h.push("Caller-Channel-Created-Time", self.created_us.to_string());
        h.push(
            "Caller-Channel-Answered-Time",
            self.answered_us.unwrap_or(0).to_string(),
        );
        h.push(
            "Caller-Channel-Progress-Time",
            self.progress_us.unwrap_or(0).to_string(),
        );
        h.push(
            "Caller-Channel-Progress-Media-Time",
            self.progress_us.unwrap_or(0).to_string(),
        );
        if let Some(partner) = &self.partner {
            h.push("Other-Leg-Unique-ID", partner.clone());
        }
        for (k, v) in extra {
            h.push(*k, v.clone());
        }
        if !matches!(
            name,
            "DTMF" | "CHANNEL_STATE" | "CHANNEL_CALLSTATE" | "CHANNEL_OUTGOING"
        ) {
            let mut vars: Vec<_> = self.vars.iter().collect();
            vars.sort();
            for (k, v) in vars {
                h.push(format!("variable_{k}"), v.clone());
            }
        }
        e
    }

    /// `inbound` for a caller dialling in, `outbound` for a leg the platform dials.
    fn direction(&self) -> &'static str {
        if self.caller.is_some() {
            "inbound"
        } else {
            "outbound"
        }
    }

    fn emit(&self, name: &str, state: &str, extra: &[(&str, String)]) {
        self.switch.fire(name, || self.event(name, state, extra));
    }

    fn emit_callstate(&self, state: &str, original: &str) {
        self.emit(
            "CHANNEL_CALLSTATE",
            state,
            &[("Original-Channel-Call-State", original.to_string())],
        );
    }

    // ---- life --------------------------------------------------------------------

    fn begin(&mut self) {
        if self.caller.is_some() {
            self.begin_inbound();
            return;
        }
        self.emit("CHANNEL_OUTGOING", "CS_NONE", &[]);
        self.emit("CHANNEL_STATE", "CS_INIT", &[]);
        self.emit("CHANNEL_CREATE", "CS_INIT", &[]);
        self.emit("CHANNEL_ORIGINATE", "CS_INIT", &[]);
        self.execute_on_originate();
        self.emit("CHANNEL_STATE", "CS_ROUTING", &[]);
        self.emit("CHANNEL_STATE", "CS_CONSUME_MEDIA", &[]);
        if let Some(cause) = self.outcome.fails_with {
            self.hang_up(cause);
            return;
        }
        // 180 Ringing, then 183 Session Progress with early media (the far end's ringback).
        self.progress_us = Some(self.switch.clock.now_us());
        self.emit("CHANNEL_PROGRESS", "CS_CONSUME_MEDIA", &[]);
        self.emit_callstate("CS_CONSUME_MEDIA", "DOWN");
        self.emit("CHANNEL_PROGRESS_MEDIA", "CS_CONSUME_MEDIA", &[]);
        let timeout = self
            .vars
            .get("originate_timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(60);
        match self.outcome.rings_for {
            Some(ring) if ring < Duration::from_secs(timeout) => self.at(ring, Timer::Answer),
            _ => self.at(Duration::from_secs(timeout), Timer::NoAnswer),
        }
    }

    /// A caller dialling a DID: the carrier's context runs the platform's extension
    /// (agents' contract §11.1: `set voicepaas_did`, `set park_after_bridge`, `park`), so the
    /// channel parks unanswered with the variables (esl-transcripts 85). The caller gives
    /// up after a minute unanswered.
    fn begin_inbound(&mut self) {
        self.emit("CHANNEL_CREATE", "CS_INIT", &[]);
        self.emit("CHANNEL_STATE", "CS_ROUTING", &[]);
        self.emit("CHANNEL_STATE", "CS_EXECUTE", &[]);
        // An agent's phone dials in the agents' context (§11.2), a carrier's caller a DID.
        let marker = match self.vars.get("user_context").map(String::as_str) {
            Some(AGENTS_CONTEXT) => "voicepaas_agent_dial",
            _ => "voicepaas_did",
        };
        for (name, value) in [
            (marker, self.number.clone()),
            ("park_after_bridge", "true".into()),
        ] {
            let app = App {
                name: "set".into(),
                arg: format!("{name}={value}"),
                event_uuid: None,
            };
            self.start_app(app);
        }
        self.at(CALLER_GIVES_UP, Timer::GiveUp);
        self.start_app(App {
            name: "park".into(),
            arg: String::new(),
            event_uuid: None,
        });
    }

    /// `execute_on_originate`, as FreeSWITCH runs it on a new outbound channel; the
    /// sandbox knows its one use here, `sched_hangup +<secs> [<cause>]`.
    fn execute_on_originate(&mut self) {
        let Some(value) = self.vars.get("execute_on_originate") else {
            return;
        };
        let mut words = value.split_whitespace();
        if words.next() != Some("sched_hangup") {
            return;
        }
        let Some(delay) = words.next().and_then(super::switch::parse_delay) else {
            return;
        };
        let cause = words.next().unwrap_or("ALLOTTED_TIMEOUT").to_string();
        self.at(delay, Timer::Hangup(cause));
    }

    fn answer(&mut self) {
        self.answer_media();
        self.next_app();
    }

    /// The answer itself: events, the far end's timers, the bridge it completes.
    fn answer_media(&mut self) {
        // A caller who was waiting to be answered no longer gives up.
        self.cancel_timers(|t| !matches!(t, Timer::GiveUp));
        self.phase = Phase::Answered;
        let now = self.switch.clock.now_us();
        self.answered_us = Some(now);
        self.vars
            .insert("answer_epoch".into(), (now / 1_000_000).to_string());
        self.emit("CHANNEL_ANSWER", "CS_CONSUME_MEDIA", &[]);
        self.emit_callstate("CS_CONSUME_MEDIA", "RINGING");
        if let Some(result) = self.result.take() {
            let _ = result.send(format!("+OK {}\n", self.uuid));
        }
        self.job_done(format!("+OK {}\n", self.uuid));
        self.emit("CHANNEL_STATE", "CS_EXECUTE", &[]);
        for (delay, key) in self.outcome.presses.clone() {
            self.at(delay, Timer::Press(key));
        }
        if let Some(after) = self.outcome.hangs_up_after {
            self.at(after, Timer::RemoteHangup);
        }
        if let Some(a_leg) = self.bridge_for.clone() {
            self.partner = Some(a_leg.clone());
            self.switch
                .tell(&a_leg, Command::Bridged(self.uuid.clone(), true));
        }
    }

    fn job_done(&mut self, body: String) {
        if let Some((job_uuid, command, args)) = self.job.take() {
            let mut e = self.switch.base_event("BACKGROUND_JOB");
            e.push("Job-UUID", job_uuid);
            e.push("Job-Command", command);
            e.push("Job-Command-Arg", args);
            e.body = Some(body);
            self.switch.publish(e);
        }
    }

    fn hang_up(&mut self, cause: &str) {
        if self.hangup_cause.is_some() {
            return;
        }
        self.hangup_cause = Some(cause.to_string());
        self.vars.insert("hangup_cause".into(), cause.to_string());
        if let Some(status) = sip_status(cause, self.answered_us.is_some()) {
            self.vars.insert("sip_term_status".into(), status.into());
            // A failure response (≥ 300) is also the protocol's own cause (transcript 88).
            if status != "200" {
                self.vars.insert(
                    "proto_specific_hangup_cause".into(),
                    format!("sip:{status}"),
                );
            }
        }
        self.vars
            .insert("hangup_cause_q850".into(), q850(cause).to_string());
        self.emit("CHANNEL_HANGUP", "CS_EXECUTE", &[]);
        if let Some(result) = self.result.take() {
            let _ = result.send(format!("-ERR {cause}\n"));
        }
        if self.answered_us.is_none() {
            self.job_done(format!("-ERR {cause}\n"));
            if let Some(a_leg) = self.bridge_for.clone() {
                self.switch
                    .tell(&a_leg, Command::BridgeFailed(cause.to_string()));
            }
        }
        if let Some(running) = self.running.take() {
            if running.app.name == "park" {
                self.emit("CHANNEL_UNPARK", "CS_EXECUTE", &[]);
            }
            if running.playing.is_some() {
                self.emit(
                    "PLAYBACK_STOP",
                    "CS_EXECUTE",
                    &[
                        (
                            "Playback-File-Path",
                            running.playing.clone().unwrap_or_default(),
                        ),
                        ("Playback-Status", "break".into()),
                    ],
                );
            }
            self.complete(&running.app, "_none_");
        }
    }

    /// After the hangup: stop recording, leave bridges and conferences, report, destroy.
    fn finish(&mut self) {
        self.stop_recording();
        self.stop_eavesdrop();
        for eavesdropper in std::mem::take(&mut self.eavesdroppers) {
            self.media_bug(false);
            self.switch.tell(&eavesdropper, Command::EavesdropEnded);
        }
        if let Some(partner) = self.partner.take() {
            self.emit(
                "CHANNEL_UNBRIDGE",
                "CS_HANGUP",
                &[
                    ("Bridge-A-Unique-ID", self.uuid.clone()),
                    ("Bridge-B-Unique-ID", partner.clone()),
                ],
            );
            self.switch.tell(&partner, Command::PartnerGone);
        }
        if let Some(name) = self.conference.take() {
            self.switch.leave_conference(&name, &self.uuid);
        }
        let end = self.switch.clock.now_us();
        let answered = self.answered_us.unwrap_or(0);
        self.vars.insert(
            "start_epoch".into(),
            (self.created_us / 1_000_000).to_string(),
        );
        self.vars
            .insert("start_uepoch".into(), self.created_us.to_string());
        self.vars
            .insert("answer_epoch".into(), (answered / 1_000_000).to_string());
        self.vars
            .insert("answer_uepoch".into(), answered.to_string());
        self.vars
            .insert("end_epoch".into(), (end / 1_000_000).to_string());
        self.vars.insert("end_uepoch".into(), end.to_string());
        self.vars.insert(
            "duration".into(),
            ((end - self.created_us) / 1_000_000).to_string(),
        );
        let billmsec = if answered > 0 {
            (end - answered) / 1000
        } else {
            0
        };
        self.vars
            .insert("billsec".into(), (billmsec / 1000).to_string());
        self.vars.insert("billmsec".into(), billmsec.to_string());
        self.emit("CHANNEL_STATE", "CS_HANGUP", &[]);
        self.emit_callstate(
            "CS_HANGUP",
            if self.answered_us.is_some() {
                "ACTIVE"
            } else {
                "RINGING"
            },
        );
        self.emit("CHANNEL_STATE", "CS_REPORTING", &[]);
        self.emit("CHANNEL_HANGUP_COMPLETE", "CS_REPORTING", &[]);
        self.emit("CHANNEL_STATE", "CS_DESTROY", &[]);
        self.emit("CHANNEL_DESTROY", "CS_DESTROY", &[]);
        self.switch.forget(&self.uuid);
    }

    // ---- applications ------------------------------------------------------------

    fn next_app(&mut self) {
        // A leg the platform dialled runs its applications once answered; a caller's
        // channel runs them at once (the dialplan runs before any answer).
        let runs = |c: &Self| c.phase == Phase::Answered || c.caller.is_some();
        while self.running.is_none() && runs(self) && self.hangup_cause.is_none() {
            let Some(app) = self.queue.pop_front() else {
                return;
            };
            self.start_app(app);
        }
    }

    fn start_app(&mut self, app: App) {
        let mut extra = vec![
            ("Application", app.name.clone()),
            ("Application-Data", app.arg.clone()),
        ];
        if let Some(id) = &app.event_uuid {
            extra.push(("Application-UUID", id.clone()));
        }
        self.emit("CHANNEL_EXECUTE", "CS_EXECUTE", &extra);
        let arg = app.arg.clone();
        match app.name.as_str() {
            "park" => {
                self.emit("CHANNEL_PARK", "CS_EXECUTE", &[]);
                // Parked until another application is queued.
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
            }
            "playback" => {
                self.emit(
                    "PLAYBACK_START",
                    "CS_EXECUTE",
                    &[("Playback-File-Path", arg.clone())],
                );
                self.at(playback_length(&arg), Timer::AppDone);
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: Some(arg),
                });
            }
            "endless_playback" => {
                // Loops until the channel is transferred, bridged or hung up.
                self.emit(
                    "PLAYBACK_START",
                    "CS_EXECUTE",
                    &[("Playback-File-Path", arg.clone())],
                );
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: Some(arg),
                });
            }
            "say" => {
                self.at(say_length(&arg), Timer::AppDone);
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
            }
            "sleep" => {
                let ms = arg.trim().parse::<u64>().unwrap_or(0);
                self.at(Duration::from_millis(ms), Timer::AppDone);
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
            }
            "play_and_get_digits" => {
                let parts: Vec<&str> = arg.split_whitespace().collect();
                let num = |i: usize, d: usize| {
                    parts
                        .get(i)
                        .and_then(|p| p.parse::<usize>().ok())
                        .unwrap_or(d)
                };
                let timeout_ms = num(3, 5000) as u64;
                let file = parts.get(5).copied().unwrap_or_default().to_string();
                let var = parts.get(7).copied().unwrap_or("digits").to_string();
                let terminators = parts.get(4).copied().unwrap_or("#").to_string();
                self.emit(
                    "PLAYBACK_START",
                    "CS_EXECUTE",
                    &[("Playback-File-Path", file.clone())],
                );
                self.at(
                    playback_length(&file) + Duration::from_millis(timeout_ms),
                    Timer::DigitsTimeout,
                );
                self.running = Some(Running {
                    app,
                    digits: Some((num(0, 1), num(1, 1), terminators, var, String::new())),
                    playing: Some(file),
                });
            }
            "answer" => {
                if self.phase == Phase::Ringing {
                    self.answer_media();
                }
                self.complete(&app, "_none_");
            }
            "pre_answer" | "ring_ready" => self.complete(&app, "_none_"),
            "hangup" => {
                self.complete(&app, "_none_");
                self.hang_up(if arg.is_empty() {
                    "NORMAL_CLEARING"
                } else {
                    arg.trim()
                });
            }
            "set" => {
                if let Some((k, v)) = arg.split_once('=') {
                    self.vars.insert(k.trim().to_string(), v.to_string());
                }
                self.complete(&app, "_none_");
            }
            "record_session" => {
                let path = arg
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                self.start_recording(path);
                self.complete(&app, "_none_");
            }
            "stop_record_session" => {
                self.stop_recording();
                self.complete(&app, "_none_");
            }
            "bridge" => {
                let dial = arg.clone();
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
                self.switch.originate_leg(&dial, &self.uuid);
            }
            "conference" => {
                let room = arg.trim();
                let name = room.split('@').next().unwrap_or_default().to_string();
                let caller = self.caller.clone().unwrap_or_else(|| self.number.clone());
                let member = (self.uuid.as_str(), self.name.as_str(), caller.as_str());
                self.switch.join_conference(room, member);
                self.conference = Some(name);
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
            }
            "eavesdrop" => {
                let target = arg.trim().to_string();
                let me = self.uuid.clone();
                if target == me || !self.switch.tell(&target, Command::Eavesdropped(me, true)) {
                    // Nothing to listen to: the application returns and the call ends.
                    self.complete(&app, "_none_");
                    self.hang_up("NORMAL_CLEARING");
                    return;
                }
                self.eavesdropping = Some(target);
                self.running = Some(Running {
                    app,
                    digits: None,
                    playing: None,
                });
            }
            _ => self.complete(&app, "-ERR unknown application"),
        }
    }

    /// The channel stops eavesdropping (it is taken elsewhere): the target's bug goes.
    fn stop_eavesdrop(&mut self) {
        if let Some(target) = self.eavesdropping.take() {
            self.switch
                .tell(&target, Command::Eavesdropped(self.uuid.clone(), false));
        }
    }

    /// A media bug of an eavesdropper on this channel starts or stops.
    fn media_bug(&self, started: bool) {
        let name = if started {
            "MEDIA_BUG_START"
        } else {
            "MEDIA_BUG_STOP"
        };
        let extra = [
            ("Media-Bug-Function", "eavesdrop".to_string()),
            ("Media-Bug-Target", self.uuid.clone()),
        ];
        self.emit(name, "CS_EXECUTE", &extra);
    }

    fn complete(&self, app: &App, response: &str) {
        let mut extra = vec![
            ("Application", app.name.clone()),
            ("Application-Data", app.arg.clone()),
            ("Application-Response", response.to_string()),
        ];
        if let Some(id) = &app.event_uuid {
            extra.push(("Application-UUID", id.clone()));
        }
        let state = if self.hangup_cause.is_some() {
            "CS_HANGUP"
        } else {
            "CS_EXECUTE"
        };
        self.emit("CHANNEL_EXECUTE_COMPLETE", state, &extra);
    }

    /// Ends the running application with `response` (and `status` for playbacks).
    fn end_app(&mut self, response: &str, status: &str) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.cancel_timers(|t| !matches!(t, Timer::AppDone | Timer::DigitsTimeout));
        if let Some(file) = &running.playing {
            self.emit(
                "PLAYBACK_STOP",
                "CS_EXECUTE",
                &[
                    ("Playback-File-Path", file.clone()),
                    ("Playback-Status", status.to_string()),
                ],
            );
        }
        if running.app.name == "park" {
            self.emit("CHANNEL_UNPARK", "CS_EXECUTE", &[]);
        }
        if let Some(name) = self.conference.take() {
            self.switch.leave_conference(&name, &self.uuid);
        }
        self.complete(&running.app, response);
        self.next_app();
    }

    /// uuid_break: the running application stops (what it means for each application).
    fn break_running(&mut self) {
        match self.running.as_ref().map(|r| r.app.name.as_str()) {
            // endless_playback only restarts its file (esl-transcripts 82).
            Some("endless_playback") => {
                let file = self
                    .running
                    .as_ref()
                    .and_then(|r| r.playing.clone())
                    .unwrap_or_default();
                self.emit(
                    "PLAYBACK_STOP",
                    "CS_EXECUTE",
                    &[
                        ("Playback-File-Path", file.clone()),
                        ("Playback-Status", "break".into()),
                    ],
                );
                self.emit(
                    "PLAYBACK_START",
                    "CS_EXECUTE",
                    &[("Playback-File-Path", file)],
                );
            }
            Some("park") | None => {}
            Some(_) => self.end_app("FILE PLAYED", "break"),
        }
    }

    fn start_recording(&mut self, path: String) {
        self.stop_recording();
        self.emit(
            "RECORD_START",
            "CS_EXECUTE",
            &[("Record-File-Path", path.clone())],
        );
        // FreeSWITCH appends to an existing file when the channel has RECORD_APPEND=true.
        let append = self
            .vars
            .get("RECORD_APPEND")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        self.recording = Some((path, self.switch.clock.now_us(), append));
    }

    fn stop_recording(&mut self) {
        let Some((path, started, append)) = self.recording.take() else {
            return;
        };
        let length_ms = ((self.switch.clock.now_us() - started).max(0) / 1000) as u64;
        if let Err(e) = write_recording(&PathBuf::from(&path), length_ms, append) {
            tracing::warn!(path, error = %e, "sandbox could not write a recording");
        }
        self.emit(
            "RECORD_STOP",
            "CS_EXECUTE",
            &[
                ("Record-File-Path", path),
                ("Record-Completion-Cause", "success-silence".into()),
            ],
        );
    }

    // ---- inputs ------------------------------------------------------------------

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Execute(app) => {
                let parked = self.running.as_ref().is_some_and(|r| r.app.name == "park");
                self.queue.push_back(app);
                if parked {
                    self.end_app("_none_", "done");
                } else {
                    self.next_app();
                }
            }
            Command::Hangup(cause) => self.hang_up(&cause),
            Command::Eavesdropped(by, true) => {
                self.media_bug(true);
                self.eavesdroppers.push(by);
            }
            Command::Eavesdropped(by, false) => {
                if let Some(i) = self.eavesdroppers.iter().position(|e| *e == by) {
                    self.eavesdroppers.remove(i);
                    self.media_bug(false);
                }
            }
            Command::EavesdropEnded => {
                if self.eavesdropping.take().is_some() {
                    self.end_app("_none_", "done");
                    self.hang_up("NORMAL_CLEARING");
                }
            }
            Command::Dtmf(digits) => digits.chars().for_each(|d| self.press(d)),
            Command::Break { all } => {
                if all {
                    self.queue.clear();
                }
                self.break_running();
            }
            Command::ScheduleHangup(delay, cause) => self.at(delay, Timer::Hangup(cause)),
            Command::Broadcast(delay, path, legs) => self.at(delay, Timer::Broadcast(path, legs)),
            Command::Record { start: true, path } => self.start_recording(path),
            Command::Record { start: false, .. } => self.stop_recording(),
            Command::Bridged(partner, report) => {
                // `bridge` from a channel not yet answered (an agent's phone dialling
                // out) answers it when the far end answers, as FreeSWITCH does.
                if report && self.answered_us.is_none() && self.caller.is_some() {
                    self.answer_media();
                }
                self.partner = Some(partner.clone());
                // As FreeSWITCH keeps them (esl-transcripts 81): `bridge_to` while
                // bridged, `last_bridge_to` after.
                self.vars.insert("bridge_to".into(), partner.clone());
                self.vars.insert("last_bridge_to".into(), partner.clone());
                if report {
                    self.emit(
                        "CHANNEL_BRIDGE",
                        "CS_EXCHANGE_MEDIA",
                        &[
                            ("Bridge-A-Unique-ID", self.uuid.clone()),
                            ("Bridge-B-Unique-ID", partner),
                        ],
                    );
                }
                // uuid_bridge takes the channel from whatever it parked, played or
                // listened to.
                self.stop_eavesdrop();
                let interrupted = self.running.as_ref().is_some_and(|r| {
                    matches!(
                        r.app.name.as_str(),
                        "park" | "playback" | "endless_playback" | "eavesdrop"
                    )
                });
                if interrupted {
                    self.queue.clear();
                    self.end_app("_none_", "break");
                }
            }
            Command::PartnerGone => {
                // Not bridged any more (taken along by a `-both` transfer): nothing to do.
                let Some(partner) = self.partner.take() else {
                    return;
                };
                self.vars.remove("bridge_to");
                self.emit(
                    "CHANNEL_UNBRIDGE",
                    "CS_EXECUTE",
                    &[
                        ("Bridge-A-Unique-ID", self.uuid.clone()),
                        ("Bridge-B-Unique-ID", partner),
                    ],
                );
                if self
                    .running
                    .as_ref()
                    .is_some_and(|r| r.app.name == "bridge")
                {
                    // The bridge app returns; the A leg goes on with what is queued.
                    self.end_app("_none_", "done");
                } else if self
                    .vars
                    .get("park_after_bridge")
                    .is_some_and(|v| v == "true")
                {
                    // The other side left a uuid_bridge: this one parks and lives on
                    // (esl-transcripts 81).
                    self.queue.push_back(App {
                        name: "park".into(),
                        arg: String::new(),
                        event_uuid: None,
                    });
                    self.next_app();
                } else {
                    // uuid_bridge: both legs end together.
                    self.hang_up("NORMAL_CLEARING");
                }
            }
            Command::BridgeFailed(cause) => {
                self.vars.insert("originate_disposition".into(), cause);
                if self
                    .running
                    .as_ref()
                    .is_some_and(|r| r.app.name == "bridge")
                {
                    self.end_app("_none_", "done");
                }
            }
            Command::GetVar(name, reply) => {
                let _ = reply.send(self.vars.get(&name).cloned());
            }
            Command::SetVar(name, value) => {
                self.vars.insert(name, value);
            }
            Command::Hold(on) => {
                let event = if on { "CHANNEL_HOLD" } else { "CHANNEL_UNHOLD" };
                self.emit(event, "CS_EXECUTE", &[]);
            }
            Command::Dump(reply) => {
                let mut current = vec![];
                if let Some(running) = &self.running {
                    current.push(("variable_current_application", running.app.name.clone()));
                    current.push(("variable_current_application_data", running.app.arg.clone()));
                }
                let state = if self.phase == Phase::Answered {
                    "CS_EXECUTE"
                } else {
                    "CS_CONSUME_MEDIA"
                };
                let _ = reply.send(self.event("CHANNEL_DATA", state, &current));
            }
            Command::Transfer(app, both) => {
                self.vars.remove("bridge_to");
                if let Some(partner) = self.partner.take() {
                    // The other side goes too (`-both`), or is left: a bridge application
                    // returns, a parked-after-bridge channel parks.
                    let other = match both {
                        true => Command::Transfer(app.clone(), false),
                        false => Command::PartnerGone,
                    };
                    self.switch.tell(&partner, other);
                    if self.bridge_for.is_none() {
                        self.emit(
                            "CHANNEL_UNBRIDGE",
                            "CS_EXECUTE",
                            &[
                                ("Bridge-A-Unique-ID", self.uuid.clone()),
                                ("Bridge-B-Unique-ID", partner),
                            ],
                        );
                    }
                }
                self.queue.clear();
                self.queue.push_back(app);
                self.stop_eavesdrop();
                if self.running.is_some() {
                    self.end_app("_none_", "break");
                } else {
                    self.next_app();
                }
            }
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Answer => self.answer(),
            Timer::NoAnswer => self.hang_up("NO_ANSWER"),
            Timer::GiveUp => self.hang_up("ORIGINATOR_CANCEL"),
            Timer::RemoteHangup => self.hang_up("NORMAL_CLEARING"),
            Timer::Press(key) => self.press(key),
            Timer::AppDone => {
                let response = if self.running.as_ref().is_some_and(|r| r.playing.is_some()) {
                    "FILE PLAYED"
                } else {
                    "_none_"
                };
                self.end_app(response, "done");
            }
            Timer::DigitsTimeout => self.finish_digits("timeout"),
            Timer::Hangup(cause) => self.hang_up(&cause),
            Timer::Broadcast(path, legs) if legs != Legs::Aleg => {
                if let Some(partner) = &self.partner {
                    let to_partner = Command::Broadcast(Duration::ZERO, path.clone(), Legs::Aleg);
                    self.switch.tell(partner, to_partner);
                }
                if legs == Legs::Both {
                    self.on_timer(Timer::Broadcast(path, Legs::Aleg));
                }
            }
            Timer::Broadcast(path, _)
                if self
                    .running
                    .as_ref()
                    .is_some_and(|r| matches!(r.app.name.as_str(), "bridge" | "conference")) =>
            {
                // Played to this leg over the bridge or conference, which go on.
                self.emit(
                    "PLAYBACK_START",
                    "CS_EXCHANGE_MEDIA",
                    &[("Playback-File-Path", path.clone())],
                );
                self.at(playback_length(&path), Timer::OverlayDone(path));
            }
            Timer::OverlayDone(path) => {
                self.emit(
                    "PLAYBACK_STOP",
                    "CS_EXCHANGE_MEDIA",
                    &[
                        ("Playback-File-Path", path),
                        ("Playback-Status", "done".into()),
                    ],
                );
            }
            Timer::Broadcast(path, _) => {
                let (name, arg) = match path.strip_prefix("endless_playback::") {
                    Some(file) => ("endless_playback", file.to_string()),
                    None => ("playback", path),
                };
                self.queue.push_front(App {
                    name: name.into(),
                    arg,
                    event_uuid: None,
                });
                if self.running.as_ref().is_some_and(|r| r.app.name == "park") {
                    self.end_app("_none_", "done");
                } else {
                    self.next_app();
                }
            }
        }
    }

    /// A key from the far end: a DTMF event, and input for play_and_get_digits.
    fn press(&mut self, key: char) {
        if self.phase != Phase::Answered || self.hangup_cause.is_some() {
            return;
        }
        self.emit(
            "DTMF",
            "CS_EXECUTE",
            &[
                ("DTMF-Digit", key.to_string()),
                ("DTMF-Duration", "2000".into()),
                ("DTMF-Source", "RTP".into()),
            ],
        );
        let Some(Running {
            digits: Some((_, max, terminators, _, got)),
            ..
        }) = self.running.as_mut()
        else {
            return;
        };
        if terminators.contains(key) {
            self.finish_digits("success");
            return;
        }
        got.push(key);
        if got.len() >= *max {
            self.finish_digits("success");
        }
    }

    fn finish_digits(&mut self, how: &str) {
        let Some(Running {
            digits: Some((min, _, _, var, got)),
            ..
        }) = self.running.as_ref()
        else {
            return;
        };
        let ok = got.len() >= *min && !got.is_empty();
        let (var, got) = (var.clone(), got.clone());
        self.vars.insert(var, got);
        self.vars.insert(
            "read_result".into(),
            if ok {
                "success".into()
            } else {
                how.replace("success", "failure")
            },
        );
        self.end_app("_none_", if ok { "break" } else { "done" });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn playback_length(path: &str) -> Duration {
    match path.strip_prefix("silence_stream://") {
        Some(ms) => Duration::from_millis(
            ms.split(',')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(1000),
        ),
        None => PROMPT_FILE,
    }
}

/// `say <module>[:<lang>] <TYPE> <METHOD> [<GENDER>] <text>`: 1 s per item; a spelled
/// captcha (`NAME_SPELLED`) 0.5 s per character.
fn say_length(arg: &str) -> Duration {
    let parts: Vec<&str> = arg.split_whitespace().collect();
    if parts
        .get(1)
        .is_some_and(|t| t.eq_ignore_ascii_case("NAME_SPELLED"))
    {
        let chars = parts.last().map_or(1, |t| t.chars().count().max(1));
        return SAY_CHAR * chars as u32;
    }
    SAY_ITEM
}

fn state_number(state: &str) -> &'static str {
    match state {
        "CS_NEW" => "0",
        "CS_INIT" => "1",
        "CS_ROUTING" => "2",
        "CS_SOFT_EXECUTE" => "3",
        "CS_EXECUTE" => "4",
        "CS_EXCHANGE_MEDIA" => "5",
        "CS_PARK" => "6",
        "CS_CONSUME_MEDIA" => "7",
        "CS_HIBERNATE" => "8",
        "CS_RESET" => "9",
        "CS_HANGUP" => "10",
        "CS_REPORTING" => "11",
        "CS_DESTROY" => "12",
        _ => "0",
    }
}

/// Q.850 code of a hangup cause (ESL.md §5).
pub fn q850(cause: &str) -> u32 {
    match cause {
        "UNALLOCATED_NUMBER" => 1,
        "NO_ROUTE_DESTINATION" => 3,
        "NORMAL_CLEARING" => 16,
        "USER_BUSY" => 17,
        "NO_USER_RESPONSE" => 18,
        "NO_ANSWER" => 19,
        "CALL_REJECTED" => 21,
        "NORMAL_TEMPORARY_FAILURE" => 41,
        "ORIGINATOR_CANCEL" => 487,
        "SYSTEM_SHUTDOWN" => 701,
        "MANAGER_REQUEST" => 703,
        "ALLOTTED_TIMEOUT" => 802,
        _ => 16,
    }
}

/// Writes `length_ms` of 8 kHz mono silence as a WAV file, after what the file already
/// holds when `append` is set.
fn write_recording(path: &PathBuf, length_ms: u64, append: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let before = match std::fs::read(path) {
        Ok(existing) if append => crate::domain::prompt::check_wav(&existing)
            .map(|info| info.duration_ms)
            .unwrap_or(0),
        _ => 0,
    };
    let samples = vec![0i16; ((before + length_ms) * 8) as usize];
    std::fs::write(path, crate::domain::prompt::build_wav(8000, &samples))
}

/// The final SIP response of a leg ending with `cause` (`sip_term_status`).
fn sip_status(cause: &str, answered: bool) -> Option<&'static str> {
    Some(match cause {
        _ if answered => "200",
        "USER_BUSY" => "486",
        "UNALLOCATED_NUMBER" => "404",
        "NO_USER_RESPONSE" => "480",
        "CALL_REJECTED" => "603",
        "NO_ANSWER" | "ORIGINATOR_CANCEL" | "MANAGER_REQUEST" | "NORMAL_CLEARING" => "487",
        _ => return None,
    })
}

//! Notices (API.md §2) and captchas (§4): one leg dialled; once it answers, a list of
//! items played one after another, `times` times. A notice's finish key stops playback and
//! plays `finishvoice`; its repeat key restarts the pass from the first item (at most
//! [`MAX_REPEATS`] times); the last key pressed is its `inputkey`. A captcha ignores keys.
//! The platform hangs up when the script is done.

use crate::domain::notice::DtmfKey;
use crate::orchestrator::engine::{
    App, CdrKind, Command, CommandToken, Core, Dial, Effect, Happened, LegIdx, MediaCommand,
    Refusal,
};

/// Most restarts by the repeat key in one call (a stuck key cannot hold the line forever).
pub const MAX_REPEATS: u32 = 10;

/// The keys of a notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Stops playback (takes precedence over `repeat`).
    pub finish: Option<DtmfKey>,
    /// Restarts the pass.
    pub repeat: Option<DtmfKey>,
    /// Played after the finish key, if it could be had.
    pub finishvoice: Option<String>,
}

/// Which kind of IVR call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrKind {
    /// A notice, with its keys.
    Notice(Keys),
    /// A captcha.
    Captcha,
}

/// What to play: `None` when the script could not be prepared (a prompt deleted after
/// the call was accepted). Such a call fails (`result` 1, `reason` 2): it is not dialled,
/// or, taken over after its answer, hung up at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The items, in order.
    pub items: Option<Vec<App>>,
    /// Passes (1–3).
    pub times: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the answer.
    Dialing,
    /// The script from the first item of pass `pass` on is queued on the channel as runs
    /// `first..=last`, one per item of each pass left, played one after another; `now`
    /// is the run playing (the one after the last that ended).
    Playing {
        pass: u8,
        first: u32,
        last: u32,
        now: u32,
    },
    /// Playing `finishvoice`.
    Finishing(u32),
    /// Done.
    Over,
}

/// A notice or captcha call.
#[derive(Debug)]
pub struct IvrFlow {
    kind: IvrKind,
    script: Script,
    dial: Dial,
    state: State,
    repeats: u32,
    last_key: Option<char>,
}

const LEG: LegIdx = 0;

impl IvrFlow {
    /// A call of `kind` playing `script`, dialled with `dial`.
    pub fn new(kind: IvrKind, script: Script, dial: Dial) -> Self {
        IvrFlow {
            kind,
            script,
            dial,
            state: State::Dialing,
            repeats: 0,
            last_key: None,
        }
    }

    pub(super) fn start(&mut self, core: &mut Core) {
        if self.script.items.is_none() {
            // Nothing it could play: the callee is not rung for a silent call.
            self.state = State::Over;
            return core.abort();
        }
        core.originate(LEG, self.dial.clone(), false);
    }

    /// Taken over: an answered leg hears the script again from the top (what the
    /// process before queued on the channel is dropped first).
    pub(super) fn restored(&mut self, core: &mut Core) {
        if core.ending.is_some() {
            return;
        }
        if core.legs[LEG].talking() {
            core.media(LEG, MediaCommand::BreakAll);
            self.play(core, 0);
        } else if !core.legs[LEG].up() {
            core.end_call("NORMAL_CLEARING");
        }
    }

    pub(super) fn on_leg(&mut self, core: &mut Core, _leg: LegIdx, happened: Happened) {
        match happened {
            Happened::Answered if self.state == State::Dialing => self.play(core, 0),
            Happened::AppDone(Some(done)) => self.on_done(core, done),
            Happened::Key(key) => self.on_key(core, key),
            Happened::HangingUp(_) | Happened::Ended => {
                self.state = State::Over;
                core.end_call("NORMAL_CLEARING");
            }
            _ => {}
        }
    }

    /// Sends the script from the first item of pass `pass` to the end to the channel at
    /// once: it plays the items one after another without waiting for the platform
    /// between them (a key drops what is left with `uuid_break all`).
    fn play(&mut self, core: &mut Core, pass: u8) {
        let Some(items) = &self.script.items else {
            self.state = State::Over;
            return core.abort();
        };
        let mut runs = None;
        for _ in pass..self.script.times {
            for item in items {
                let Some(run) = core.execute(LEG, item.clone()) else {
                    return self.hang_up(core);
                };
                runs = Some(runs.map_or((run, run), |(first, _)| (first, run)));
            }
        }
        match runs {
            Some((first, last)) => {
                self.state = State::Playing {
                    pass,
                    first,
                    last,
                    now: first,
                }
            }
            None => self.hang_up(core),
        }
    }

    fn hang_up(&mut self, core: &mut Core) {
        self.state = State::Over;
        core.end_call("NORMAL_CLEARING");
    }

    fn on_done(&mut self, core: &mut Core, done: u32) {
        match &mut self.state {
            // Runs before `first` were dropped by a key.
            State::Playing {
                first, last, now, ..
            } if (*first..=*last).contains(&done) => {
                if done == *last {
                    self.hang_up(core);
                } else {
                    *now = done + 1;
                }
            }
            State::Finishing(run) if *run == done => self.hang_up(core),
            _ => {}
        }
    }

    fn on_key(&mut self, core: &mut Core, key: char) {
        let IvrKind::Notice(keys) = &self.kind else {
            return;
        };
        self.last_key = Some(key);
        let State::Playing {
            pass, first, now, ..
        } = self.state
        else {
            return;
        };
        if hits(keys.finish, key) {
            match keys.finishvoice.clone() {
                Some(voice) => {
                    core.media(LEG, MediaCommand::BreakAll);
                    match core.execute(LEG, App::Playback(voice)) {
                        Some(run) => self.state = State::Finishing(run),
                        None => self.hang_up(core),
                    }
                }
                None => self.hang_up(core),
            }
        } else if self.repeats < MAX_REPEATS && hits(keys.repeat, key) {
            self.repeats += 1;
            // The pass playing now starts again, with the passes after it.
            let len = self.script.items.as_ref().map_or(1, |i| i.len().max(1));
            let played = usize::try_from(now - first).unwrap_or(0) / len;
            let pass_now = pass.saturating_add(u8::try_from(played).unwrap_or(u8::MAX));
            core.media(LEG, MediaCommand::BreakAll);
            self.play(core, pass_now.min(self.script.times.saturating_sub(1)));
        }
    }

    pub(super) fn on_command(&mut self, core: &mut Core, token: CommandToken, _command: Command) {
        core.emit(Effect::Reply(
            token,
            Err(Refusal::State("not a conversation".into())),
        ));
    }

    pub(super) fn cdr_kind(&self) -> CdrKind {
        match self.kind {
            IvrKind::Notice(_) => CdrKind::Notice {
                inputkey: self.last_key,
            },
            IvrKind::Captcha => CdrKind::Captcha,
        }
    }
}

fn hits(key: Option<DtmfKey>, pressed: char) -> bool {
    match key {
        Some(DtmfKey::Any) => true,
        Some(DtmfKey::Key(k)) => k == pressed,
        None => false,
    }
}

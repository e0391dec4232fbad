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
    /// Playing item `item` of pass `pass` as run `run`; a key stopped it.
    Playing {
        pass: u8,
        item: usize,
        run: u32,
        stopped_by: Option<char>,
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

    /// Taken over: an answered leg hears the script again from the top.
    pub(super) fn restored(&mut self, core: &mut Core) {
        if core.ending.is_some() {
            return;
        }
        if core.legs[LEG].talking() {
            self.play(core, 0, 0);
        } else if !core.legs[LEG].up() {
            core.end_call("NORMAL_CLEARING");
        }
    }

    pub(super) fn on_leg(&mut self, core: &mut Core, _leg: LegIdx, happened: Happened) {
        match happened {
            Happened::Answered if self.state == State::Dialing => self.play(core, 0, 0),
            Happened::AppDone(Some(done)) => self.on_done(core, done),
            Happened::Key(key) => self.on_key(core, key),
            Happened::HangingUp(_) | Happened::Ended => {
                self.state = State::Over;
                core.end_call("NORMAL_CLEARING");
            }
            _ => {}
        }
    }

    fn play(&mut self, core: &mut Core, pass: u8, item: usize) {
        let Some(items) = &self.script.items else {
            self.state = State::Over;
            return core.abort();
        };
        let (pass, item) = if item >= items.len() {
            (pass + 1, 0)
        } else {
            (pass, item)
        };
        if pass >= self.script.times || items.is_empty() {
            return self.hang_up(core);
        }
        match core.execute(LEG, items[item].clone()) {
            Some(run) => {
                self.state = State::Playing {
                    pass,
                    item,
                    run,
                    stopped_by: None,
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
        match self.state {
            State::Playing {
                pass,
                item,
                run,
                stopped_by,
            } if run == done => match stopped_by {
                None => self.play(core, pass, item + 1),
                Some(key) if self.is_finish(key) => self.finish(core),
                Some(_) => {
                    self.repeats += 1;
                    self.play(core, pass, 0);
                }
            },
            State::Finishing(run) if run == done => self.hang_up(core),
            _ => {}
        }
    }

    fn finish(&mut self, core: &mut Core) {
        let voice = match &self.kind {
            IvrKind::Notice(keys) => keys.finishvoice.clone(),
            IvrKind::Captcha => None,
        };
        match voice.and_then(|v| core.execute(LEG, App::Playback(v))) {
            Some(run) => self.state = State::Finishing(run),
            None => self.hang_up(core),
        }
    }

    fn on_key(&mut self, core: &mut Core, key: char) {
        let IvrKind::Notice(keys) = &self.kind else {
            return;
        };
        self.last_key = Some(key);
        let repeat = self.repeats < MAX_REPEATS && hits(keys.repeat, key);
        if let State::Playing {
            stopped_by: stopped_by @ None,
            ..
        } = &mut self.state
            && (hits(keys.finish, key) || repeat)
        {
            *stopped_by = Some(key);
            core.media(LEG, MediaCommand::Break);
        }
    }

    fn is_finish(&self, key: char) -> bool {
        matches!(&self.kind, IvrKind::Notice(keys) if hits(keys.finish, key))
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

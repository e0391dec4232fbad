//! Parties beyond the first two: addCall dials one parked; when it answers everyone goes
//! into one conference; a party leaving a conference that goes on (the caller included).

use serde::{Deserialize, Serialize};

use super::{ADD_CALL_RULE, CALLEE, CALLER, Click2CallFlow, Phase};
use crate::domain::click2call::RecordMode;
use crate::orchestrator::engine::{App, ByeType, Core, Dial, Hears, LegIdx, MediaCommand, Refusal};

/// An addCall with its prompts resolved to files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddParty {
    /// The new party's number.
    pub to: String,
    /// Caller id shown to it.
    pub from: Option<String>,
    /// Seconds it is rung.
    pub timeout: u32,
    /// Broadcast to the caller while the party is dialled.
    pub greet: Option<String>,
    /// ringbackMode 1: the caller hears `fail_voice` if the party cannot be reached.
    pub fail_voice: Option<String>,
    /// Played to the new party once it joins.
    pub callee_voice: Option<String>,
    /// Played to the caller once the party joins.
    pub caller_voice: Option<String>,
    /// Starts a recording (if none runs) once the party joins.
    pub record: RecordMode,
}

impl Click2CallFlow {
    /// The conference's name: the conversation's id.
    fn room(core: &Core) -> String {
        format!("{}@default", core.id)
    }

    pub(super) fn add_call(&mut self, core: &mut Core, party: AddParty) -> Result<(), Refusal> {
        let why = if self.state.phase != Phase::Talking {
            Some("the conversation has not been bridged yet")
        } else if self.state.adding.is_some() {
            Some("a party is being added")
        } else if self.talking(core) != 2 {
            Some("the conversation has three parties")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Refusal::State(format!("{ADD_CALL_RULE}; {why}")));
        }
        let host = [CALLER, CALLEE]
            .into_iter()
            .chain(2..core.legs.len())
            .find(|&l| core.legs[l].talking())
            .unwrap_or(CALLER);
        let node = core.legs[host].node.clone();
        if let Some(greet) = party.greet.clone() {
            core.media(
                self.voice_of_caller(core),
                MediaCommand::Broadcast(greet, Hears::This),
            );
        }
        let leg = core.add_leg(
            node,
            party.from.clone().unwrap_or_default(),
            party.to.clone(),
        );
        let dial = Dial {
            to: party.to.clone(),
            from: party.from.clone(),
            timeout_secs: party.timeout,
            ignore_early_media: true,
            ..Dial::default()
        };
        self.state.adding = Some((leg, party));
        self.snapshot(core);
        core.originate(leg, dial, true);
        Ok(())
    }

    /// Who hears what is meant for "the caller": the caller, or once the caller has left,
    /// the callee.
    fn voice_of_caller(&self, core: &Core) -> LegIdx {
        if core.legs[CALLER].talking() {
            CALLER
        } else {
            CALLEE
        }
    }

    /// The party being added answered: everyone into the conference.
    pub(super) fn party_answered(&mut self, core: &mut Core, leg: LegIdx) {
        let Some((_, party)) = self.state.adding.take() else {
            return;
        };
        let room = Self::room(core);
        if !self.state.in_conference {
            core.media(CALLER, MediaCommand::BothToConference(room.clone()));
            self.state.in_conference = true;
        }
        core.execute(leg, App::Conference(room));
        if let Some(voice) = party.callee_voice {
            core.media(leg, MediaCommand::Broadcast(voice, Hears::This));
        }
        if let Some(voice) = party.caller_voice {
            core.media(
                self.voice_of_caller(core),
                MediaCommand::Broadcast(voice, Hears::This),
            );
        }
        if party.record != RecordMode::Off {
            self.start_recording(core);
        }
        self.arm_timers(core, leg);
        self.snapshot(core);
    }

    pub(super) fn party_hung_up(&mut self, core: &mut Core, leg: LegIdx, answered: bool) {
        let pending = self.state.adding.as_ref().is_some_and(|(p, _)| *p == leg);
        if pending && !answered {
            let Some((_, party)) = self.state.adding.take() else {
                return;
            };
            if let Some(fail) = party.fail_voice {
                core.media(
                    self.voice_of_caller(core),
                    MediaCommand::Broadcast(fail, Hears::This),
                );
            }
            self.snapshot(core);
        } else if self.talking(core) >= 2 {
            self.party_left(core, leg);
        } else {
            self.end(core, ByeType::CalleeHungUp);
        }
    }

    /// A party left; the others go on.
    pub(super) fn party_left(&mut self, core: &mut Core, leg: LegIdx) {
        if self.state.adding.as_ref().is_some_and(|(p, _)| *p == leg) {
            self.state.adding = None;
        }
        if self.recording_on(leg) {
            self.move_recording(core);
        }
        self.snapshot(core);
    }
}

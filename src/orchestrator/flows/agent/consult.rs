//! Consults of a connected caller's agent (agents' contract §7.1): the caller is parked
//! with music while the agent's channel calls another agent or a number (`bridge` from
//! the agent's channel, so the two talk once it answers); then the agent hands the caller
//! over (`consultTransfer`: `uuid_bridge` of caller and consulted, the agent hung up),
//! joins all three (`consultConference`: the caller, then the agent with its partner, into
//! the conversation's conference), or goes back (`cancelConsult`: the consulted leg hung
//! up, then `uuid_bridge` of caller and agent). The agent hanging up during an answered
//! consult transfers; leaving a conference leaves the other two talking.

use serde::{Deserialize, Serialize};

use super::{AgentFlow, Offer};
use crate::orchestrator::engine::{Core, LegIdx, MediaCommand, Refusal, Write};
use crate::orchestrator::flows::orders::ConsultTo;

/// A consult under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consult {
    /// The consulting agent's leg.
    pub by: LegIdx,
    /// The consulted party's leg.
    pub leg: LegIdx,
    /// `cancelConsult` was asked: once the consulted leg has ended, the agent and the
    /// caller talk again.
    pub canceling: bool,
}

impl AgentFlow {
    /// Whether `leg` is the leg of the consult under way.
    pub(super) fn is_consult_leg(&self, leg: LegIdx) -> bool {
        self.state.consult.is_some_and(|c| c.leg == leg)
    }

    /// The consult's leg, once it answered (it then talks with the consulting agent).
    fn answered_consult(&self, core: &Core) -> Option<Consult> {
        self.state
            .consult
            .filter(|c| self.offer(c.leg).is_some_and(|o| o.bridged_at.is_some()))
            .filter(|c| core.legs[c.leg].talking())
    }

    /// `consult` by the agent of connected leg `by`: the caller is parked with music (its
    /// hold, if any, released first) and the agent's channel calls `to`.
    pub(super) fn consult(
        &mut self,
        core: &mut Core,
        by: LegIdx,
        to: ConsultTo,
    ) -> Result<(), Refusal> {
        if self.state.consult.is_some() || self.state.conference {
            return Err(Refusal::State("a consult is already under way".into()));
        }
        if self.holding.is_some() {
            return Err(Refusal::State("a hold or retrieve is under way".into()));
        }
        if std::mem::take(&mut self.state.held) {
            core.media(by, MediaCommand::Hold(false));
        } else if !self.state.parked {
            core.journal(Write::Held(by, true, core.now));
        }
        if !self.state.parked {
            core.media(self.user(), MediaCommand::Park);
            let music = self.hold_music();
            self.play_music(core, music);
            self.state.parked = true;
        }
        let (offer, timeout_secs) = match to {
            ConsultTo::Agent(offer) => (offer, self.plan.agent_ring_secs),
            ConsultTo::Number(number) => {
                let timeout_secs = number.timeout_secs;
                (Offer::number(number), timeout_secs)
            }
        };
        let leg = self.leg_for(core, &offer);
        let dial = offer.dial(timeout_secs);
        self.push_offer(leg, offer, None, Some(by));
        self.state.consult = Some(Consult {
            by,
            leg,
            canceling: false,
        });
        self.snapshot(core);
        core.bridge(by, leg, dial);
        Ok(())
    }

    /// The consulted party answered: it talks with the consulting agent.
    pub(super) fn consult_answered(&mut self, core: &mut Core, leg: LegIdx) {
        if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
            o.bridged_at.get_or_insert(core.now);
        }
        self.snapshot(core);
    }

    /// The consulted leg `leg` ended while the call goes on: out of a conference the
    /// caller and the agent talk again; after `cancelConsult` too; else the caller stays
    /// parked until `retrieveCall`.
    pub(super) fn consult_over(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(consult) = self.state.consult.filter(|c| c.leg == leg) else {
            return;
        };
        // Its end first: the consulting agent sees it before what follows.
        if !core.legs[leg].is_live() && core.ending.is_none() {
            let facts = self.leg_facts(core, leg);
            core.leg_ended(leg, facts);
        }
        self.state.consult = None;
        if std::mem::take(&mut self.state.conference) {
            let agent = core.legs[consult.by].channel.clone();
            core.media(self.user(), MediaCommand::BridgeWith(agent));
        } else if consult.canceling {
            self.retrieve_parked(core, consult.by);
        }
        self.snapshot(core);
    }

    /// The parked caller and agent leg `agent` talk again (`uuid_bridge` ends the music);
    /// `retrieved` for the agent.
    pub(super) fn retrieve_parked(&mut self, core: &mut Core, agent: LegIdx) {
        self.state.parked = false;
        self.state.music = None;
        let channel = core.legs[agent].channel.clone();
        core.media(self.user(), MediaCommand::BridgeWith(channel));
        core.journal(Write::Held(agent, false, core.now));
        self.snapshot(core);
    }

    /// `consultTransfer`: the caller and the consulted party talk; the agent leaves.
    pub(super) fn consult_transfer(&mut self, core: &mut Core) -> Result<(), Refusal> {
        if self.state.conference {
            return Err(Refusal::State(
                "the call is a conference: hangup leaves it".into(),
            ));
        }
        let consult = self.answered_consult(core).ok_or_else(|| {
            Refusal::State("consultTransfer needs the consulted party connected".into())
        })?;
        self.hand_over(core, consult, true);
        Ok(())
    }

    /// The consulting agent leaves an answered consult or a conference: the caller and
    /// the consulted party talk on. `transfer`: its legs end `transferred` (a consult), or
    /// not (it left a conference).
    fn hand_over(&mut self, core: &mut Core, consult: Consult, transfer: bool) {
        self.state.consult = None;
        self.state.conference = false;
        self.state.parked = false;
        self.state.music = None;
        let channel = core.legs[consult.leg].channel.clone();
        core.media(self.user(), MediaCommand::BridgeWith(channel));
        let by = self.offer(consult.by).map(|o| o.offer.agent_no.clone());
        for o in &mut self.state.offers {
            if o.leg == consult.by {
                o.left = transfer;
            }
            if o.leg == consult.leg && transfer {
                o.transferred_by = by.clone();
            }
        }
        self.state.agent = Some(consult.leg);
        if transfer {
            core.journal(Write::Bridged(consult.leg, core.now));
        }
        core.hang_up(consult.by, "NORMAL_CLEARING");
        self.snapshot(core);
    }

    /// `consultConference`: the caller, then the agent with the consulted party, into the
    /// conversation's conference (keypad controls off).
    pub(super) fn consult_conference(&mut self, core: &mut Core) -> Result<(), Refusal> {
        if self.state.conference {
            return Err(Refusal::State("the call is already a conference".into()));
        }
        let consult = self.answered_consult(core).ok_or_else(|| {
            Refusal::State("consultConference needs the consulted party connected".into())
        })?;
        let profile = match self.rules.conference_profile.as_str() {
            "" => "default",
            profile => profile,
        };
        let room = format!("{}@{profile}", core.id);
        for leg in [self.user(), consult.by, consult.leg] {
            core.media(
                leg,
                MediaCommand::SetVar("conference_controls".into(), "none".into()),
            );
        }
        core.media(self.user(), MediaCommand::ToConference(room.clone()));
        core.media(consult.by, MediaCommand::BothToConference(room));
        self.state.conference = true;
        self.state.parked = false;
        self.state.music = None;
        core.journal(Write::Conferenced(consult.by, core.now));
        core.journal(Write::Conferenced(consult.leg, core.now));
        self.snapshot(core);
        Ok(())
    }

    /// `cancelConsult`: the consulted leg is hung up (withdrawn if it rings); once it has
    /// ended the caller and the agent talk again.
    pub(super) fn cancel_consult(&mut self, core: &mut Core) -> Result<(), Refusal> {
        if self.state.conference {
            return Err(Refusal::State(
                "the call is a conference: hangup leaves it".into(),
            ));
        }
        let Some(consult) = self.state.consult.as_mut() else {
            return Err(Refusal::State("no consult is under way".into()));
        };
        consult.canceling = true;
        let leg = consult.leg;
        if core.legs[leg].answered() {
            core.hang_up(leg, "NORMAL_CLEARING");
        } else {
            self.withdraw(core, leg, "ORIGINATOR_CANCEL");
        }
        self.snapshot(core);
        Ok(())
    }

    /// The consulting agent of leg `agent` hangs up (`hangup`, or its phone): during an
    /// answered consult it transfers, in a conference it leaves the other two talking.
    /// `false`: no consult answered; the call ends as a two-party hangup.
    pub(super) fn agent_leaves_consult(&mut self, core: &mut Core, agent: LegIdx) -> bool {
        let Some(consult) = self.answered_consult(core).filter(|c| c.by == agent) else {
            return false;
        };
        let transfer = !self.state.conference;
        self.hand_over(core, consult, transfer);
        true
    }

    /// After a takeover: a consult answered or ended while nobody drove the call.
    pub(super) fn restore_consult(&mut self, core: &mut Core) {
        let Some(consult) = self.state.consult else {
            return;
        };
        let leg = &core.legs[consult.leg];
        if !leg.is_live() {
            self.consult_over(core, consult.leg);
        } else if leg.answered() {
            self.consult_answered(core, consult.leg);
        }
    }
}

//! Supervisors listening in on a connected caller's agent (agents' contract §7.2): the
//! supervisor's device is dialled into `eavesdrop` on the agent's channel, answering by
//! itself, with the mode's whisper variables; a later `monitor`/`whisper`/`barge` on the
//! same agent sends the mode's key to the supervisor's channel (`uuid_recv_dtmf`), and
//! the keys heard on that channel — from the platform or the supervisor's own keypad —
//! are what change the mode. The agent's socket hears nothing of it. `intercept` takes
//! the call over: the supervisor (listening already, or dialled now) is bridged with the
//! caller and the agent hung up.

use serde::{Deserialize, Serialize};

use super::{AgentFlow, Offer, OfferLeg};
use crate::domain::agent_call::MonitorMode;
use crate::orchestrator::engine::{Core, Dial, Eavesdrop, LegIdx, MediaCommand, Refusal, Write};
use crate::orchestrator::flows::orders::{Interception, Supervision};

/// A supervisor's leg: whom it listens to, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitor {
    /// The agent's leg listened to.
    pub target: LegIdx,
    /// How.
    pub mode: MonitorMode,
}

impl AgentFlow {
    /// The live leg of `supervisor` listening to agent leg `target` (`answered`: one that
    /// listens already, not one still ringing).
    fn listener(
        &self,
        core: &Core,
        supervisor: &str,
        target: LegIdx,
        answered: bool,
    ) -> Option<LegIdx> {
        self.state
            .offers
            .iter()
            .rev()
            .filter(|o| o.offer.agent_no == supervisor && core.legs[o.leg].is_live())
            .filter(|o| o.monitor.is_some_and(|m| m.target == target))
            .find(|o| !answered || (o.bridged_at.is_some() && core.legs[o.leg].talking()))
            .map(|o| o.leg)
    }

    /// Dials a supervisor's device for `offer` (answering by itself, listening in with
    /// `eavesdrop` if given); `mark` notes on its leg what it is for.
    fn dial_supervisor(
        &mut self,
        core: &mut Core,
        offer: Offer,
        eavesdrop: Option<Eavesdrop>,
        mark: impl FnOnce(&mut OfferLeg),
    ) {
        let leg = self.leg_for(core, &offer);
        let dial = Dial {
            auto_answer: true,
            eavesdrop,
            ..offer.dial(self.plan.agent_ring_secs)
        };
        self.push_offer(leg, offer, None, None);
        if let Some(o) = self.state.offers.last_mut() {
            mark(o);
        }
        self.snapshot(core);
        core.originate(leg, dial, true);
    }

    /// Whether `leg` is a supervisor's.
    pub(super) fn is_monitor_leg(&self, leg: LegIdx) -> bool {
        self.offer(leg).is_some_and(|o| o.monitor.is_some())
    }

    /// `monitor`, `whisper` or `barge` on the agent of connected leg `target`.
    pub(super) fn supervise(
        &mut self,
        core: &mut Core,
        target: LegIdx,
        supervision: Supervision,
    ) -> Result<(), Refusal> {
        let listening = self.listener(core, &supervision.supervisor, target, false);
        match (listening, supervision.offer) {
            // Listening already: the mode's key; its DTMF event changes the mode.
            (Some(leg), _) => {
                let key = supervision.mode.key().to_string();
                core.media(leg, MediaCommand::RecvDtmf(key));
                Ok(())
            }
            (None, Some(offer)) => {
                let mode = supervision.mode;
                let eavesdrop = Eavesdrop {
                    target: core.legs[target].channel.clone(),
                    whisper_bleg: mode != MonitorMode::Monitor,
                    whisper_aleg: mode == MonitorMode::Barge,
                };
                self.dial_supervisor(core, offer, Some(eavesdrop), |o| {
                    o.monitor = Some(Monitor { target, mode })
                });
                Ok(())
            }
            (None, None) => Err(Refusal::State(
                "the supervisor does not listen to this agent".into(),
            )),
        }
    }

    /// The supervisor's device answered: it listens.
    pub(super) fn monitor_answered(&mut self, core: &mut Core, leg: LegIdx) {
        if let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) {
            o.bridged_at.get_or_insert(core.now);
        }
        self.snapshot(core);
    }

    /// A key on a supervisor's channel: a mode's key changes the mode (`answered` again
    /// for the supervisor, with the new monitorMode).
    pub(super) fn monitor_key(&mut self, core: &mut Core, leg: LegIdx, key: char) {
        let Some(mode) = MonitorMode::of_key(key) else {
            return;
        };
        let Some(o) = self.state.offers.iter_mut().find(|o| o.leg == leg) else {
            return;
        };
        match &mut o.monitor {
            Some(m) if m.mode != mode && o.bridged_at.is_some() => m.mode = mode,
            _ => return,
        }
        core.journal(Write::Bridged(leg, core.now));
        self.snapshot(core);
    }

    /// Agent leg `leg` ended while the call goes on: whoever listened to it stops.
    pub(super) fn stop_monitors_of(&mut self, core: &mut Core, leg: LegIdx) {
        let listeners: Vec<LegIdx> = self
            .state
            .offers
            .iter()
            .filter(|o| o.monitor.is_some_and(|m| m.target == leg))
            .map(|o| o.leg)
            .collect();
        for listener in listeners {
            core.hang_up(listener, "NORMAL_CLEARING");
        }
    }
}

impl AgentFlow {
    /// The agent leg a supervisor's leg `leg` was dialled to take over, while it rings.
    pub(super) fn intercepting(&self, leg: LegIdx) -> Option<LegIdx> {
        self.offer(leg).and_then(|o| o.intercepts)
    }

    /// `intercept` of the agent of connected leg `target`: a supervisor listening in takes
    /// the call at once; another one's device is dialled (answering by itself) and takes it
    /// once it answers.
    pub(super) fn intercept(
        &mut self,
        core: &mut Core,
        target: LegIdx,
        interception: Interception,
    ) -> Result<(), Refusal> {
        if self.state.consult.is_some() || self.state.conference {
            return Err(Refusal::State(
                "a consult or conference is under way".into(),
            ));
        }
        let listening = self.listener(core, &interception.supervisor, target, true);
        match (listening, interception.offer) {
            (Some(leg), _) => self.take_over(core, target, leg),
            (None, Some(offer)) => {
                self.dial_supervisor(core, offer, None, |o| o.intercepts = Some(target))
            }
            (None, None) => {
                return Err(Refusal::State(
                    "the supervisor does not listen to this agent".into(),
                ));
            }
        }
        Ok(())
    }

    /// The supervisor's device dialled for an intercept answered: it takes the call, if
    /// its agent still has it.
    pub(super) fn intercept_answered(&mut self, core: &mut Core, leg: LegIdx) {
        let Some(target) = self.intercepting(leg) else {
            return;
        };
        if self.state.agent == Some(target) && self.state.consult.is_none() {
            self.take_over(core, target, leg);
        } else {
            core.hang_up(leg, "NORMAL_CLEARING");
        }
    }

    /// Supervisor leg `leg` takes the caller over from agent leg `target`: `uuid_bridge`
    /// of caller and supervisor, the agent hung up (`completed (forced)`); the supervisor
    /// is the conversation's agent from now on.
    fn take_over(&mut self, core: &mut Core, target: LegIdx, leg: LegIdx) {
        if std::mem::take(&mut self.state.held) {
            core.media(target, MediaCommand::Hold(false));
        }
        let channel = core.legs[leg].channel.clone();
        core.media(self.user(), MediaCommand::BridgeWith(channel));
        for o in &mut self.state.offers {
            if o.leg == target {
                o.intercepted = true;
            }
            if o.leg == leg {
                o.monitor = None;
                o.intercepts = None;
                o.bridged_at.get_or_insert(core.now);
            }
        }
        self.state.agent = Some(leg);
        core.journal(Write::Bridged(leg, core.now));
        core.hang_up(target, "NORMAL_CLEARING");
        self.snapshot(core);
    }
}

impl AgentFlow {
    /// `intercept` of an agent whose offer `target` still rings (抢接): the offer is
    /// withdrawn (`failed (canceled)`, no pause) and the supervisor's device, answering by
    /// itself, is offered the caller instead, who keeps its music; if the supervisor
    /// misses, the caller is the matchmaker's again, in its place.
    pub(super) fn intercept_offer(
        &mut self,
        core: &mut Core,
        target: LegIdx,
        interception: Interception,
    ) -> Result<(), Refusal> {
        let Some(mut offer) = interception.offer else {
            return Err(Refusal::State(
                "the supervisor does not listen to this agent".into(),
            ));
        };
        let replaced = self.offer(target).map(|o| o.offer.agent_no.clone());
        self.withdraw(core, target, "ORIGINATOR_CANCEL");
        // Connected as soon as it answers (no `bridge` to wait for).
        offer.auto_answer = false;
        offer.queue = self
            .offer(target)
            .map(|o| o.offer.queue.clone())
            .unwrap_or_default();
        let by = self.state.transferred_by.clone();
        self.dial_supervisor(core, offer, None, |o| {
            o.replaces = replaced;
            o.transferred_by = by;
        });
        Ok(())
    }
}

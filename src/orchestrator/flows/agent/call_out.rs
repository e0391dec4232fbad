//! An agent's callOut (agents' contract §7.1 `callOut`): the agent's device is dialled
//! first, answering by itself; once it answers, the user is dialled from the agent's
//! channel (`bridge`, so the agent hears the network's ringback and early media). Once the
//! user answers the two talk, and the conversation goes on as any other agent
//! conversation (hold, transfer, consult, supervision).

use super::{AgentFlow, CALL_OUT_AGENT, CALL_OUT_USER, Offer, Phase};
use crate::cdr::MEDIA_LOST;
use crate::domain::agent_call::{AgentBye, AgentCall};
use crate::orchestrator::engine::{Core, Dial, Effect, Endpoint, LegIdx, Status, Write};

impl AgentFlow {
    /// Dials the agent's device (its leg noted as the agent's first).
    pub(super) fn dial_agent(&mut self, core: &mut Core) {
        let Some(call) = self.call_out() else {
            return;
        };
        let offer = agent_leg(
            call,
            Endpoint::for_phone(call.phone_type),
            Some(call.shown_to_agent()),
        );
        let dial = offer.dial(call.agent_ring_timeout);
        if self.offer(CALL_OUT_AGENT).is_none() {
            self.push_offer(CALL_OUT_AGENT, offer, None, None);
        }
        self.snapshot(core);
        core.originate(CALL_OUT_AGENT, dial, false);
    }

    /// The agent's own phone dialled out (§11.2): its parked channel, unanswered, is the
    /// agent's leg, and the user is dialled from it at once (the phone hears the network's
    /// ringback; FreeSWITCH answers it when the user answers).
    pub(super) fn phone_dialled(&mut self, core: &mut Core) {
        let Some(call) = self.call_out() else {
            return;
        };
        let offer = agent_leg(call, Endpoint::Device, None);
        if self.offer(CALL_OUT_AGENT).is_none() {
            self.push_offer(CALL_OUT_AGENT, offer, None, None);
        }
        core.emit(Effect::Follow(CALL_OUT_AGENT));
        // It may have hung up before it was followed.
        core.probe(CALL_OUT_AGENT);
        let at = core.legs[CALL_OUT_AGENT].start_ms;
        core.journal(Write::Status(CALL_OUT_AGENT, Status::Initiated, at));
        self.dial_user(core);
    }

    /// The agent's device answered: the user is dialled from its channel.
    pub(super) fn dial_user(&mut self, core: &mut Core) {
        let Some(call) = self.plan.call_out.as_deref() else {
            return;
        };
        let node = core.legs[CALL_OUT_AGENT].node.clone();
        let from = call.caller_id.clone().unwrap_or_default();
        let leg = core.add_leg(node, from, call.user_number.clone());
        debug_assert_eq!(leg, CALL_OUT_USER);
        let dial = Dial {
            to: call.user_number.clone(),
            from: call.caller_id.clone(),
            timeout_secs: call.answer_timeout,
            ignore_early_media: false,
            endpoint: Endpoint::Number,
            auto_answer: false,
            park_after_bridge: true,
            eavesdrop: None,
        };
        self.state.phase = Phase::DialUser;
        self.snapshot(core);
        core.bridge(CALL_OUT_AGENT, CALL_OUT_USER, dial);
    }

    /// The user answered: it and the agent talk.
    pub(super) fn user_answered(&mut self, core: &mut Core) {
        let at = core.legs[CALL_OUT_USER].answer_ms.unwrap_or(core.now);
        self.state.phase = Phase::Talking;
        let Some(agent) = self
            .state
            .offers
            .iter_mut()
            .find(|o| o.leg == CALL_OUT_AGENT)
        else {
            return;
        };
        agent.bridged_at = Some(at);
        let agent_no = agent.offer.agent_no.clone();
        self.state.agent = Some(CALL_OUT_AGENT);
        self.state.first_agent.get_or_insert((agent_no, at));
        core.journal(Write::Bridged(CALL_OUT_AGENT, at));
        self.talk_began(core, at);
        self.snapshot(core);
    }

    /// Whether the callOut still dials its agent or its user.
    pub(super) fn dialing(&self) -> bool {
        matches!(self.state.phase, Phase::DialAgent | Phase::DialUser)
    }

    /// A leg of a callOut still dialling hung up: the byeType says which (§10).
    pub(super) fn dial_over(&mut self, core: &mut Core, leg: LegIdx, cause: &str) {
        self.state.first_gone = Some(leg);
        let bye = match (leg, self.state.phase) {
            _ if cause == MEDIA_LOST => AgentBye::MediaFailure,
            (CALL_OUT_AGENT, Phase::DialAgent) => AgentBye::FirstNoAnswer,
            (CALL_OUT_AGENT, _) => AgentBye::FirstHungUpDialing,
            _ => AgentBye::SecondNoAnswer,
        };
        self.end(core, bye);
    }

    /// `hangup` of the agent while its callOut dials: the call is canceled.
    pub(super) fn cancel_dialing(&mut self, core: &mut Core) {
        let bye = match self.state.phase {
            Phase::DialAgent => AgentBye::FirstNoAnswer,
            _ => AgentBye::FirstHungUpDialing,
        };
        self.end(core, bye);
    }

    /// A callOut taken over while it dialled: the answers nobody acted on are acted on.
    pub(super) fn restore_dialing(&mut self, core: &mut Core) {
        match self.state.phase {
            Phase::DialAgent
                if core.legs[CALL_OUT_AGENT].answered() && core.legs[CALL_OUT_AGENT].up() =>
            {
                self.dial_user(core)
            }
            Phase::DialUser if core.legs.get(CALL_OUT_USER).is_some_and(|l| l.answered()) => {
                self.user_answered(core)
            }
            _ => {}
        }
    }
}

/// The agent's own leg of `call`: dialled to `endpoint`, answering by itself and showing
/// `shown` (a callOut), or (`shown` `None`) the agent's phone that dialled out itself.
fn agent_leg(call: &AgentCall, endpoint: Endpoint, shown: Option<Option<String>>) -> Offer {
    Offer {
        agent_no: call.agent_no.clone(),
        agent_number: call.agent_number.clone(),
        endpoint,
        auto_answer: shown.is_some(),
        shown: shown.flatten(),
        wrapup_time: call.wrapup_time,
        queue: String::new(),
    }
}

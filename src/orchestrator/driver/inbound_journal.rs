//! A dial-in's writes as its agents see them (agents' contract §7.1 "Offer", §8.1, §10):
//! each offer's leg changes become callEvents (callSubtype 2) on its agent's session, with
//! the machine's input (connected, missed, rejected, withdrawn, ended) in the step's own
//! transaction; the end becomes the agent CDR with its queue, DID and waiting time.

use crate::agents::events::{CallEvent, CallEventName, CallView, failed_cause};
use crate::agents::{call_change, machine::Input};
use crate::cdr::{AgentCdr, AgentLeg, LegFacts};
use crate::domain::agent_call::{AgentBye, CallSubtype};
use crate::orchestrator::engine::{Conversation, LegIdx, Status, Write};
use crate::orchestrator::flows::Flow;
use crate::orchestrator::flows::inbound::{InboundFlow, OfferOutcome};
use crate::orchestrator::unit::Unit;
use crate::store::journal::Entry;

use super::agent_journal::end_event;

/// The dial-in's flow, if `engine` drives one.
pub(super) fn inbound_flow(engine: &Conversation) -> Option<&InboundFlow> {
    match &engine.flow {
        Flow::Inbound(f) => Some(f),
        _ => None,
    }
}

/// The events and the machine input of one agent in one step.
struct AgentChange {
    agent_no: String,
    events: Vec<String>,
    input: Option<Input>,
}

/// Whose view of a leg an event is: the leg's own agent, or the agent consulting it
/// (callSubtype 5), or that agent leaving while the consult goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Own,
    Consulting,
    ConsultingLeft,
}

/// The changes of the agents' sessions one step of a dial-in makes.
pub(super) fn inbound_entries(
    unit: &Unit,
    engine: &Conversation,
    writes: &[Write],
    tz: chrono_tz::Tz,
) -> Vec<Entry> {
    let Some(flow) = inbound_flow(engine) else {
        return Vec::new();
    };
    let core = &engine.core;
    let legs = &core.legs;
    let plan = flow.plan();
    let user_data = &flow.state().user_data;
    // A consulting agent whose leg ended before this step, or earlier in it, no longer
    // sees the consult's leg: the legs gone before the step (only a call with a consult
    // needs them).
    let consulted = flow
        .state()
        .offers
        .iter()
        .any(|o| o.consulted_from.is_some());
    let ends_now = |l: LegIdx| {
        writes.iter().any(|w| match w {
            Write::LegEnded(leg, _) => *leg == l,
            Write::Finish { ending, .. } => ending.iter().any(|(leg, _)| *leg == l),
            _ => false,
        })
    };
    let mut gone: Vec<LegIdx> = (0..legs.len())
        .filter(|l| consulted && !legs[*l].is_live() && !ends_now(*l))
        .collect();
    let mut changes: Vec<AgentChange> = Vec::new();
    let mut one = |leg: LegIdx,
                   view: View,
                   name: CallEventName,
                   bridged: bool,
                   at_ms: i64,
                   facts: Option<&LegFacts>,
                   input: Option<Input>| {
        let Some(offer) = flow.offer(leg) else {
            return;
        };
        // Whose event: the leg's agent, or the one consulting it.
        let (agent, subtype, co_agent) = match view {
            View::Own => (&offer.offer, offer.subtype(), flow.state().co_agent(leg)),
            View::Consulting | View::ConsultingLeft => {
                let Some(from) = offer.consulted_from.and_then(|f| flow.offer(f)) else {
                    return;
                };
                let co = offer.offer.agent_no.as_str();
                (&from.offer, CallSubtype::ConsultOut, co)
            }
        };
        // A number a transfer or consult dialled has no agent (eventUrl only).
        if agent.agent_no.is_empty() {
            return;
        }
        let mut event = CallEvent {
            name,
            call: CallView {
                agent_no: &agent.agent_no,
                agent_number: &agent.agent_number,
                call_type: plan.call_type(),
                user_number: &plan.user_number,
                queue_sid: &agent.queue,
                did_number: &plan.did,
            },
            app_id: &unit.first.app_id,
            conversation_sid: &unit.id,
            call_sid: &legs[leg].id,
            subtype,
            bridged,
            failed_cause: "",
            completed_cause: "",
            co_agent_no: co_agent,
            monitor_mode: match (view, offer.monitor) {
                (View::Own, Some(m)) => m.mode.word(),
                _ => "",
            },
            user_data,
            at_ms,
        };
        if let Some(facts) = facts {
            let forced = flow.state().bye == Some(AgentBye::Forced);
            let forced = forced || offer.intercepted;
            event = end_event(event, facts, forced && view == View::Own);
            if offer.left && view == View::Own && event.name == CallEventName::Completed {
                event.completed_cause = "transferred";
            }
            if view == View::ConsultingLeft {
                event.name = CallEventName::Completed;
                event.completed_cause = "transferred";
            } else if offer.bridged_at.is_none() {
                // An offer never connected fails for its agent, answered or not (§7.1).
                event.name = CallEventName::Failed;
                event.completed_cause = "";
                event.failed_cause = match offer.withdrawn {
                    true => "canceled",
                    false => failed_cause(&facts.hangup_cause, false),
                };
            }
        }
        let data = event.data(tz).to_string();
        let change = match changes.iter().position(|c| c.agent_no == agent.agent_no) {
            Some(i) => &mut changes[i],
            None => {
                changes.push(AgentChange {
                    agent_no: agent.agent_no.clone(),
                    events: Vec::new(),
                    input: None,
                });
                changes.last_mut().expect("just pushed")
            }
        };
        change.events.push(data);
        if input.is_some() && view == View::Own {
            change.input = input;
        }
    };
    let ended = |leg: LegIdx| {
        let wrapup = flow.offer(leg).map_or(0, |o| o.offer.wrapup_time);
        match flow.outcome(core, leg) {
            // A supervisor has no wrapup after listening in, nor a pause if it missed.
            _ if flow.offer(leg).is_some_and(|o| {
                let intercept = o.intercepts.is_some() || o.replaces.is_some();
                o.monitor.is_some() || (intercept && o.bridged_at.is_none())
            }) =>
            {
                Input::CallEnded {
                    connected: false,
                    wrapup_time: 0,
                }
            }
            OfferOutcome::Connected => Input::CallEnded {
                connected: true,
                wrapup_time: wrapup,
            },
            OfferOutcome::Missed => Input::OfferMissed { cause: "no-answer" },
            OfferOutcome::Rejected => Input::OfferMissed { cause: "rejected" },
            OfferOutcome::Pending | OfferOutcome::Withdrawn => Input::CallEnded {
                connected: false,
                wrapup_time: wrapup,
            },
        }
    };
    // The consult legs `leg`'s agent consults and still sees.
    let consulted_by = |leg: LegIdx| -> Vec<LegIdx> {
        flow.state()
            .offers
            .iter()
            .filter(|o| o.consulted_from == Some(leg) && legs[o.leg].is_live())
            .map(|o| o.leg)
            .collect()
    };
    // Who sees leg `leg`: its agent and, for a consult's leg, the consulting one while
    // its own leg is on.
    let views = |leg: LegIdx, gone: &[LegIdx]| -> &'static [View] {
        let from = flow.offer(leg).and_then(|o| o.consulted_from);
        match from.is_some_and(|f| !gone.contains(&f)) {
            true => &[View::Own, View::Consulting],
            false => &[View::Own],
        }
    };
    let mut both = |leg: LegIdx,
                    views: &[View],
                    (name, bridged, at_ms): (CallEventName, bool, i64),
                    facts: Option<&LegFacts>,
                    input: Option<Input>| {
        for view in views {
            one(leg, *view, name, bridged, at_ms, facts, input.clone());
        }
    };
    for write in writes {
        match write {
            Write::NewLeg(leg) => both(
                *leg,
                views(*leg, &gone),
                (CallEventName::Initiated, false, legs[*leg].start_ms),
                None,
                None,
            ),
            Write::Status(leg, Status::Ringing, at) => both(
                *leg,
                views(*leg, &gone),
                (CallEventName::Ringing, false, *at),
                None,
                None,
            ),
            // A consult's leg talks with the consulting agent once it answers; a
            // supervisor's listens.
            Write::Status(leg, Status::Answered, at)
                if flow
                    .offer(*leg)
                    .is_some_and(|o| o.consulted_from.is_some() || o.monitor.is_some()) =>
            {
                both(
                    *leg,
                    views(*leg, &gone),
                    (CallEventName::Answered, true, *at),
                    None,
                    Some(Input::CallConnected),
                )
            }
            // An offer the device answered by itself waits for the agent's bridge (an
            // intercept's is connected at once).
            Write::Status(leg, Status::Answered, at)
                if flow
                    .offer(*leg)
                    .is_some_and(|o| o.offer.auto_answer && o.bridged_at.is_none()) =>
            {
                both(
                    *leg,
                    views(*leg, &gone),
                    (CallEventName::Answered, false, *at),
                    None,
                    None,
                )
            }
            // Connected with the caller: news for its own agent only.
            Write::Bridged(leg, at) => both(
                *leg,
                &[View::Own],
                (CallEventName::Answered, true, *at),
                None,
                Some(Input::CallConnected),
            ),
            Write::LegEnded(leg, facts) => {
                // A consulting agent leaving first sees the consult go on without it.
                for c in consulted_by(*leg) {
                    let at = facts.end_ms;
                    let name = CallEventName::Completed;
                    both(
                        c,
                        &[View::ConsultingLeft],
                        (name, false, at),
                        Some(facts),
                        None,
                    );
                }
                both(
                    *leg,
                    views(*leg, &gone),
                    (CallEventName::Completed, false, facts.end_ms),
                    Some(facts),
                    Some(ended(*leg)),
                );
                gone.push(*leg);
            }
            Write::Finish { ending, .. } => {
                let mut ending: Vec<&(LegIdx, LegFacts)> = ending.iter().collect();
                // The side that hung up first, then the legs the platform hung up.
                let first = flow.state().first_gone;
                ending.sort_by_key(|(leg, facts)| match first == Some(*leg) {
                    true => (0, false, *leg),
                    false => (1, facts.answer_ms.is_some(), *leg),
                });
                for (leg, facts) in ending {
                    both(
                        *leg,
                        views(*leg, &gone),
                        (CallEventName::Completed, false, facts.end_ms),
                        Some(facts),
                        Some(ended(*leg)),
                    );
                }
            }
            Write::Held(leg, held, at) => {
                let name = match held {
                    true => CallEventName::Held,
                    false => CallEventName::Retrieved,
                };
                both(*leg, &[View::Own], (name, true, *at), None, None)
            }
            Write::Conferenced(leg, at) => {
                let name = CallEventName::Conferenced;
                both(*leg, &[View::Own], (name, true, *at), None, None)
            }
            Write::Status(..) | Write::Snapshot(..) | Write::Waiting(_) | Write::QueueEvent(_) => {}
        }
    }
    changes
        .into_iter()
        .map(|c| Entry::Agent {
            app_id: unit.first.app_id.clone(),
            agent_no: c.agent_no.clone(),
            change: call_change(unit.first.app_id.clone(), c.agent_no, c.events, c.input, tz),
        })
        .collect()
}

/// The dial-in's agent CDR (§10).
pub(super) fn inbound_cdr(
    unit: &Unit,
    engine: &Conversation,
    flow: &InboundFlow,
    legs: &[LegFacts],
    bye: u8,
    tz: chrono_tz::Tz,
) -> serde_json::Value {
    let plan = flow.plan();
    let state = flow.state();
    let roles: Vec<AgentLeg<'_>> = legs
        .iter()
        .enumerate()
        .map(|(i, facts)| AgentLeg {
            facts,
            role: match flow.offer(i) {
                Some(offer) if offer.monitor.is_some() => "monitor",
                Some(offer) => offer.subtype().role(),
                None => CallSubtype::User.role(),
            },
            agent_no: flow.offer(i).map_or("", |o| o.offer.agent_no.as_str()),
        })
        .collect();
    let queue = match state.answered_queue.as_str() {
        "" => state.last_queue.as_str(),
        answered => answered,
    };
    AgentCdr {
        conversation_sid: &unit.id,
        account_sid: &unit.first.account_sid,
        app_sid: &unit.first.app_id,
        call_type: plan.call_type().code(),
        agent_no: state.first_agent.as_ref().map_or("", |(a, _)| a.as_str()),
        user_number: &plan.user_number,
        display_num: plan
            .outbound
            .as_ref()
            .map_or("", |o| o.display_num.as_str()),
        user_data: &state.user_data,
        bye_type: bye,
        recording_url: "",
        recording_secs: 0,
        connected_ms: state.first_agent.as_ref().map(|(_, at)| *at),
        queue_sid: queue,
        did_number: &plan.did,
        wait_secs: flow.wait_ms(engine.core.now) / 1000,
        legs: &roles,
    }
    .body(tz)
}

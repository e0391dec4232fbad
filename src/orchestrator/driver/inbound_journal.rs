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
use crate::orchestrator::flows::inbound::{InboundFlow, OfferLeg, OfferOutcome};
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
    let mut changes: Vec<AgentChange> = Vec::new();
    let mut add = |leg: LegIdx,
                   name: CallEventName,
                   bridged: bool,
                   at_ms: i64,
                   facts: Option<&LegFacts>,
                   input: Option<Input>| {
        // A number a transfer dialled has no agent (its events go to the eventUrl only).
        let Some(offer) = flow.offer(leg).filter(|o| !o.offer.agent_no.is_empty()) else {
            return;
        };
        let o = &offer.offer;
        let mut event = CallEvent {
            name,
            call: CallView {
                agent_no: &o.agent_no,
                agent_number: &o.agent_number,
                call_type: plan.call_type(),
                user_number: &plan.user_number,
                queue_sid: &o.queue,
                did_number: &plan.did,
            },
            app_id: &unit.first.app_id,
            conversation_sid: &unit.id,
            call_sid: &legs[leg].id,
            subtype: offer_subtype(offer),
            bridged,
            failed_cause: "",
            completed_cause: "",
            co_agent_no: offer.transferred_by.as_deref().unwrap_or_default(),
            user_data,
            at_ms,
        };
        if let Some(facts) = facts {
            let forced = flow.state().bye == Some(AgentBye::Forced);
            event = end_event(event, facts, forced);
            if offer.left && event.name == CallEventName::Completed {
                event.completed_cause = "transferred";
            }
            // An offer never connected fails for its agent, answered or not (§7.1).
            if offer.bridged_at.is_none() {
                event.name = CallEventName::Failed;
                event.completed_cause = "";
                event.failed_cause = match offer.withdrawn {
                    true => "canceled",
                    false => failed_cause(&facts.hangup_cause, false),
                };
            }
        }
        let data = event.data(tz).to_string();
        let change = match changes.iter_mut().position(|c| c.agent_no == o.agent_no) {
            Some(i) => &mut changes[i],
            None => {
                changes.push(AgentChange {
                    agent_no: o.agent_no.clone(),
                    events: Vec::new(),
                    input: None,
                });
                changes.last_mut().expect("just pushed")
            }
        };
        change.events.push(data);
        if input.is_some() {
            change.input = input;
        }
    };
    let ended = |leg: LegIdx| {
        let wrapup = flow.offer(leg).map_or(0, |o| o.offer.wrapup_time);
        match flow.outcome(core, leg) {
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
    for write in writes {
        match write {
            Write::NewLeg(leg) => add(
                *leg,
                CallEventName::Initiated,
                false,
                legs[*leg].start_ms,
                None,
                None,
            ),
            Write::Status(leg, Status::Ringing, at) => {
                add(*leg, CallEventName::Ringing, false, *at, None, None)
            }
            // An offer the device answered by itself waits for the agent's bridge.
            Write::Status(leg, Status::Answered, at)
                if flow.offer(*leg).is_some_and(|o| o.offer.auto_answer) =>
            {
                add(*leg, CallEventName::Answered, false, *at, None, None)
            }
            Write::Bridged(leg, at) => add(
                *leg,
                CallEventName::Answered,
                true,
                *at,
                None,
                Some(Input::CallConnected),
            ),
            Write::LegEnded(leg, facts) => add(
                *leg,
                CallEventName::Completed,
                false,
                facts.end_ms,
                Some(facts),
                Some(ended(*leg)),
            ),
            Write::Finish { ending, .. } => {
                let mut ending: Vec<&(LegIdx, LegFacts)> = ending.iter().collect();
                // The side that hung up first, then the legs the platform hung up.
                let first = flow.state().first_gone;
                ending.sort_by_key(|(leg, facts)| match first == Some(*leg) {
                    true => (0, false, *leg),
                    false => (1, facts.answer_ms.is_some(), *leg),
                });
                for (leg, facts) in ending {
                    add(
                        *leg,
                        CallEventName::Completed,
                        false,
                        facts.end_ms,
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
                add(*leg, name, true, *at, None, None)
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

/// An offer leg's callSubtype: `3` when a transfer made it, else `2`.
fn offer_subtype(offer: &OfferLeg) -> CallSubtype {
    match offer.transferred_by {
        Some(_) => CallSubtype::Transfer,
        None => CallSubtype::Agent,
    }
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
                Some(offer) => offer_subtype(offer).role(),
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

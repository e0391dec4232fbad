//! An agent conversation's writes as its agents see them (agents' contract §7.1, §8.1,
//! §10): each agent leg's changes become callEvents on its agent's session (a callOut's
//! agent also sees its user's leg), with the machine's input (connected, missed, rejected,
//! withdrawn, ended) in the step's own transaction; the end becomes the agent CDR.

use crate::agents::events::{CallEvent, CallEventName, CallView, failed_cause};
use crate::agents::{call_change, machine::Input};
use crate::cdr::{AgentCdr, AgentLeg, LegEnd, LegFacts};
use crate::domain::agent_call::{AgentBye, CallSubtype};
use crate::orchestrator::engine::{Conversation, LegIdx, Status, Write};
use crate::orchestrator::flows::Flow;
use crate::orchestrator::flows::agent::{AgentFlow, CALL_OUT_AGENT, OfferOutcome};
use crate::orchestrator::unit::Unit;
use crate::store::journal::Entry;

/// The dial-in's flow, if `engine` drives one.
pub(super) fn agent_flow(engine: &Conversation) -> Option<&AgentFlow> {
    match &engine.flow {
        Flow::Agent(f) => Some(f),
        _ => None,
    }
}

/// The events and the machine input of one agent in one step.
struct AgentChange {
    agent_no: String,
    /// (data, the leg's channel name).
    events: Vec<(String, String)>,
    input: Option<Input>,
}

/// Whose view of a leg an event is: the leg's own agent, or the agent consulting it
/// (callSubtype 5), or that agent leaving while the consult goes on, or a callOut's agent
/// seeing its user's leg (callSubtype 1), or leaving while the user's leg goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Own,
    Consulting,
    ConsultingLeft,
    User,
    UserLeft,
}

/// The changes of the agents' sessions one step of a dial-in makes.
pub(super) fn agent_entries(
    unit: &Unit,
    engine: &Conversation,
    writes: &[Write],
    tz: chrono_tz::Tz,
) -> Vec<Entry> {
    let Some(flow) = agent_flow(engine) else {
        return Vec::new();
    };
    let core = &engine.core;
    let legs = &core.legs;
    let plan = flow.plan();
    let user_data = &flow.state().user_data;
    let user = flow.user();
    // A callOut's agent: it sees the user's leg too, while its own leg is on.
    let call_out_agent = flow.call_out().and_then(|_| flow.offer(CALL_OUT_AGENT));
    // A consulting agent whose leg ended before this step, or earlier in it, no longer
    // sees the consult's leg: the legs gone before the step (only a call with a consult
    // needs them).
    let consulted = flow
        .state()
        .offers
        .iter()
        .any(|o| o.consulted_from.is_some());
    let ending_now = |l: LegIdx| ending_in(writes, l);
    let ends_now = |l: LegIdx| ending_now(l).is_some();
    let mut gone: Vec<LegIdx> = (0..legs.len())
        .filter(|l| (consulted || call_out_agent.is_some()) && !legs[*l].is_live() && !ends_now(*l))
        .collect();
    let mut changes: Vec<AgentChange> = Vec::new();
    let mut one = |leg: LegIdx,
                   view: View,
                   name: CallEventName,
                   bridged: bool,
                   at_ms: i64,
                   facts: Option<&LegFacts>,
                   input: Option<Input>| {
        // Whose event: the leg's agent, the one consulting it, or a callOut's agent.
        let (own, agent, subtype, co_agent) = match (view, flow.offer(leg)) {
            (View::User | View::UserLeft, _) => {
                let Some(a) = call_out_agent else {
                    return;
                };
                (None, &a.offer, CallSubtype::User, "")
            }
            (_, None) => return,
            (View::Own, Some(o)) => (Some(o), &o.offer, o.subtype(), flow.state().co_agent(leg)),
            (View::Consulting | View::ConsultingLeft, Some(o)) => {
                let Some(from) = o.consulted_from.and_then(|f| flow.offer(f)) else {
                    return;
                };
                let co = o.offer.agent_no.as_str();
                (Some(o), &from.offer, CallSubtype::ConsultOut, co)
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
            monitor_mode: match (view, own.and_then(|o| o.monitor)) {
                (View::Own, Some(m)) => m.mode.word(),
                _ => "",
            },
            user_data,
            at_ms,
            channel: &legs[leg].channel_name,
        };
        if let (Some(facts), None) = (facts, own) {
            event = end_event(event, facts, false);
        }
        if view == View::UserLeft {
            event.name = CallEventName::Completed;
            event.completed_cause = "transferred";
            event.failed_cause = "";
        }
        if let (Some(facts), Some(offer)) = (facts, own) {
            let forced = flow.state().bye == Some(AgentBye::Forced);
            let forced = forced || offer.intercepted;
            event = end_event(event, facts, forced && view == View::Own);
            if offer.left && view == View::Own && event.name == CallEventName::Completed {
                event.completed_cause = "transferred";
            }
            if view == View::ConsultingLeft {
                event.name = CallEventName::Completed;
                event.completed_cause = "transferred";
            } else if offer.bridged_at.is_none() && !flow.is_call_out_agent(leg) {
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
        change.events.push((data, legs[leg].channel_name.clone()));
        if input.is_some() && view == View::Own {
            change.input = input;
        }
    };
    let ended = |leg: LegIdx| {
        let wrapup = flow.offer(leg).map_or(0, |o| o.offer.wrapup_time);
        match flow.outcome(core, leg) {
            // A callOut's agent: wrapup once it talked, else back to its chosen state.
            outcome if flow.is_call_out_agent(leg) => Input::CallEnded {
                connected: outcome == OfferOutcome::Connected,
                wrapup_time: wrapup,
            },
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
        if leg == user {
            let seen = !gone.contains(&CALL_OUT_AGENT) && !gone.contains(&user);
            return match call_out_agent.is_some() && seen {
                true => &[View::User],
                false => &[],
            };
        }
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
            // A callOut's agent leg, its first.
            Write::Status(leg, Status::Initiated, at) => both(
                *leg,
                views(*leg, &gone),
                (CallEventName::Initiated, false, *at),
                None,
                None,
            ),
            // A callOut's user answered: connected with its agent.
            Write::Status(leg, Status::Answered, at) if *leg == user => both(
                *leg,
                views(*leg, &gone),
                (CallEventName::Answered, true, *at),
                None,
                None,
            ),
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
                // A callOut's agent leaving first sees the user's leg end for it: as it
                // ends in this step, else going on without it.
                if flow.is_call_out_agent(*leg) && !gone.contains(&user) {
                    let user_end = ending_now(user);
                    let view = match user_end {
                        Some(_) => View::User,
                        None => View::UserLeft,
                    };
                    let end = user_end.unwrap_or(facts);
                    let at = (CallEventName::Completed, false, end.end_ms);
                    both(user, &[view], at, Some(end), None);
                    gone.push(user);
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

/// Leg `leg`'s end among `writes`, if it ends in them.
pub(super) fn ending_in(writes: &[Write], leg: LegIdx) -> Option<&LegFacts> {
    writes.iter().find_map(|w| match w {
        Write::LegEnded(l, facts) if *l == leg => Some(facts),
        Write::Finish { ending, .. } => ending.iter().find(|(l, _)| *l == leg).map(|(_, f)| f),
        _ => None,
    })
}

/// The dial-in's agent CDR (§10).
pub(super) fn agent_cdr(
    unit: &Unit,
    engine: &Conversation,
    flow: &AgentFlow,
    legs: &[LegFacts],
    (bye, recording): (u8, Option<&(String, i64)>),
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
        // A callOut's agent, connected or not; else the first agent connected.
        agent_no: match (flow.call_out(), &state.first_agent) {
            (Some(call), _) => &call.agent_no,
            (None, Some((agent_no, _))) => agent_no,
            (None, None) => "",
        },
        user_number: &plan.user_number,
        display_num: plan.display_num(),
        user_data: &state.user_data,
        bye_type: bye,
        recording_url: recording.map_or("", |(url, _)| url.as_str()),
        recording_secs: recording.map_or(0, |(_, ms)| ms / 1000),
        connected_ms: state.first_agent.as_ref().map(|(_, at)| *at),
        queue_sid: queue,
        did_number: &plan.did,
        wait_secs: flow.wait_ms(engine.core.now) / 1000,
        legs: &roles,
    }
    .body(tz)
}

/// A leg's last event: `completed` once answered (`forced` when a supervisor ended the
/// agent's call, `time-limit` when maxCallDuration cut it), else `failed` with its cause.
pub(super) fn end_event<'a>(mut e: CallEvent<'a>, facts: &LegFacts, forced: bool) -> CallEvent<'a> {
    e.at_ms = facts.end_ms;
    if facts.answer_ms.is_some() {
        e.name = CallEventName::Completed;
        e.completed_cause = match facts.end {
            _ if forced => "forced",
            LegEnd::MaxDuration => "time-limit",
            _ => "",
        };
    } else {
        e.name = CallEventName::Failed;
        e.failed_cause = failed_cause(&facts.hangup_cause, facts.end == LegEnd::Canceled);
    }
    e
}

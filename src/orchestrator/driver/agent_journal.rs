//! An agent conversation's writes as its agent sees them (agents' contract §7.1, §8.1,
//! §10): each step's leg changes become callEvents on the agent's session, with the
//! machine's input (connected, ended) and the statusEvents it causes, in the step's own
//! transaction; the end becomes the agent CDR.

use crate::agents::events::{CallEvent, CallEventName, CallView, failed_cause};
use crate::agents::{call_change, machine::Input};
use crate::cdr::{AgentCdr, AgentLeg, LegEnd, LegFacts};
use crate::domain::agent_call::CallSubtype;
use crate::orchestrator::engine::{Conversation, LegIdx, Status, Write};
use crate::orchestrator::flows::Flow;
use crate::orchestrator::flows::agent_call::{AGENT, AgentCallFlow, USER};
use crate::orchestrator::unit::Unit;
use crate::store::journal::Entry;

/// The agent conversation's flow, if `engine` drives one.
pub(super) fn agent_flow(engine: &Conversation) -> Option<&AgentCallFlow> {
    match &engine.flow {
        Flow::Agent(f) => Some(f),
        _ => None,
    }
}

fn subtype(leg: LegIdx) -> CallSubtype {
    if leg == USER {
        CallSubtype::User
    } else {
        CallSubtype::Agent
    }
}

/// The change of the agent's session one step of its conversation makes, if any.
pub(super) fn agent_entry(
    unit: &Unit,
    engine: &Conversation,
    writes: &[Write],
    tz: chrono_tz::Tz,
) -> Option<Entry> {
    let flow = agent_flow(engine)?;
    let legs = &engine.core.legs;
    let mut events = Vec::new();
    let mut input = None;
    let event = |leg: LegIdx, name, bridged, at_ms| CallEvent {
        name,
        call: CallView::of_call_out(flow.call()),
        app_id: &unit.first.app_id,
        conversation_sid: &unit.id,
        call_sid: &legs[leg].id,
        subtype: subtype(leg),
        bridged,
        failed_cause: "",
        completed_cause: "",
        co_agent_no: "",
        monitor_mode: "",
        user_data: flow.user_data(),
        at_ms,
    };
    let mut push = |e: CallEvent<'_>| events.push(e.data(tz).to_string());
    // The agent's own leg of a call a supervisor ended.
    let forced = |leg: LegIdx| leg == AGENT && flow.forced();
    for write in writes {
        match write {
            Write::Status(leg, Status::Initiated, at) => {
                push(event(*leg, CallEventName::Initiated, false, *at))
            }
            Write::NewLeg(leg) => push(event(
                *leg,
                CallEventName::Initiated,
                false,
                legs[*leg].start_ms,
            )),
            Write::Status(leg, Status::Ringing, at) => {
                push(event(*leg, CallEventName::Ringing, false, *at))
            }
            Write::Status(USER, Status::Answered, at) => {
                push(event(USER, CallEventName::Answered, true, *at));
                push(event(AGENT, CallEventName::Answered, true, *at));
                input = Some(Input::CallConnected);
            }
            Write::Status(leg, Status::Answered, at) => {
                push(event(*leg, CallEventName::Answered, false, *at))
            }
            Write::Held(leg, true, at) => push(event(*leg, CallEventName::Held, true, *at)),
            Write::Bridged(..)
            | Write::Conferenced(..)
            | Write::Waiting(_)
            | Write::QueueEvent(_) => {}
            Write::Held(leg, false, at) => push(event(*leg, CallEventName::Retrieved, true, *at)),
            Write::Status(_, Status::Completed, _) | Write::Snapshot(..) => {}
            Write::LegEnded(leg, facts) => push(end_event(
                event(*leg, CallEventName::Completed, false, 0),
                facts,
                forced(*leg),
            )),
            Write::Finish { ending, .. } => {
                let mut ending: Vec<&(LegIdx, LegFacts)> = ending.iter().collect();
                // The side that hung up first, then the legs the platform hung up: the
                // abandoned before the answered, in dialling order (§8.5, §7.1).
                ending.sort_by_key(|(leg, facts)| match flow.first_gone() == Some(*leg) {
                    true => (0, false, *leg),
                    false => (1, facts.answer_ms.is_some(), *leg),
                });
                for (leg, facts) in ending {
                    push(end_event(
                        event(*leg, CallEventName::Completed, false, 0),
                        facts,
                        forced(*leg),
                    ));
                }
                let connected = legs.get(USER).is_some_and(|l| l.answered());
                input = Some(Input::CallEnded {
                    connected,
                    wrapup_time: flow.call().wrapup_time,
                });
            }
        }
    }
    if events.is_empty() && input.is_none() {
        return None;
    }
    Some(Entry::Agent {
        app_id: unit.first.app_id.clone(),
        agent_no: flow.call().agent_no.clone(),
        change: call_change(
            unit.first.app_id.clone(),
            flow.call().agent_no.clone(),
            events,
            input,
            tz,
        ),
    })
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

/// The agent CDR's body (§10).
pub(super) fn agent_cdr(
    unit: &Unit,
    flow: &AgentCallFlow,
    legs: &[LegFacts],
    (bye, recording): (u8, Option<&(String, i64)>),
    tz: chrono_tz::Tz,
) -> serde_json::Value {
    let call = flow.call();
    let roles: Vec<AgentLeg<'_>> = legs
        .iter()
        .enumerate()
        .map(|(i, facts)| AgentLeg {
            facts,
            role: subtype(i).role(),
            agent_no: if i == USER { "" } else { &call.agent_no },
        })
        .collect();
    let connected = legs.get(USER).and_then(|u| u.answer_ms);
    AgentCdr {
        conversation_sid: &unit.id,
        account_sid: &unit.first.account_sid,
        app_sid: &unit.first.app_id,
        call_type: call.call_type.code(),
        agent_no: &call.agent_no,
        user_number: &call.user_number,
        display_num: &call.display_num,
        user_data: flow.user_data(),
        bye_type: bye,
        recording_url: recording.map_or("", |(url, _)| url.as_str()),
        recording_secs: recording.map_or(0, |(_, ms)| ms / 1000),
        connected_ms: connected,
        queue_sid: "",
        did_number: "",
        wait_secs: 0,
        legs: &roles,
    }
    .body(tz)
}

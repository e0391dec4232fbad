//! A conversation's own events for its application's `eventUrl` (agents' contract §5,
//! §8.1): those no agent's session carries — a dial-in caller's leg (`answered` when the
//! platform answers, its end; its `initiated` is written with the claim), the legs of
//! numbers a transfer or consult dialled, the caller's queue moves — and, for astercc,
//! the conversation's end. Agents' own events are pushed from their sessions.

use serde_json::{Value, json};

use crate::agents::events::{CallEvent, CallEventName, CallView};
use crate::agents::push::{EventKind, EventPush, agent_key, conversation_key};
use crate::cdr::{LegFacts, format_time};
use crate::domain::agent_call::{CallSubtype, CallType};
use crate::domain::cti::EventFormat;
use crate::orchestrator::engine::{Conversation, LegIdx, Status, Write};
use crate::orchestrator::flows::agent::AgentFlow;
use crate::orchestrator::unit::Unit;

use super::agent_journal::{agent_flow, end_event, ending_in};

/// The pushes of one step's `writes`; `moves` are its queueEvents (queueSid, data).
pub(super) fn conversation_pushes(
    unit: &Unit,
    engine: &Conversation,
    writes: &[Write],
    moves: &[(String, Value)],
    tz: chrono_tz::Tz,
) -> Vec<EventPush> {
    let (Some(target), Some(flow)) = (
        unit.app.as_ref().and_then(|a| a.push_target()),
        agent_flow(engine),
    ) else {
        return Vec::new();
    };
    let key = conversation_key(&unit.id);
    let push = |kind: EventKind, (data, channel): (String, String), key: &str| EventPush {
        target: target.clone(),
        ordering_key: key.to_string(),
        kind,
        data,
        channel,
    };
    let mut out = Vec::new();
    let here = (unit, engine, flow);
    let legs = &engine.core.legs;
    for write in writes {
        let (leg, name, bridged, at) = match write {
            Write::NewLeg(leg) => (*leg, CallEventName::Initiated, false, legs[*leg].start_ms),
            Write::Status(leg, Status::Ringing, at) => (*leg, CallEventName::Ringing, false, *at),
            Write::Status(leg, Status::Answered, at) => {
                (*leg, CallEventName::Answered, *leg != flow.user(), *at)
            }
            Write::Bridged(leg, at) => (*leg, CallEventName::Answered, true, *at),
            Write::Held(leg, true, at) => (*leg, CallEventName::Held, true, *at),
            Write::Held(leg, false, at) => (*leg, CallEventName::Retrieved, true, *at),
            Write::Conferenced(leg, at) => (*leg, CallEventName::Conferenced, true, *at),
            Write::LegEnded(leg, facts) => (*leg, CallEventName::Completed, false, facts.end_ms),
            Write::Finish { ending, .. } => {
                for (leg, facts) in ending {
                    let at = (CallEventName::Completed, false, facts.end_ms);
                    if let Some(data) = unagented(here, *leg, at, Some(facts), tz) {
                        out.push(push(EventKind::Call, data, &key));
                    }
                }
                continue;
            }
            _ => continue,
        };
        let facts = match name {
            CallEventName::Completed => ending_in(writes, leg),
            _ => None,
        };
        if let Some(data) = unagented(here, leg, (name, bridged, at), facts, tz) {
            out.push(push(EventKind::Call, data, &key));
        }
    }
    for (_, data) in moves {
        let sent = ["joined", "answered", "abandoned", "left"];
        if data["eventName"]
            .as_str()
            .is_some_and(|n| sent.contains(&n))
        {
            out.push(push(
                EventKind::Queue,
                (data.to_string(), String::new()),
                &key,
            ));
        }
    }
    if target.format == EventFormat::Astercc
        && let Some(Write::Finish { legs: facts, .. }) =
            writes.iter().find(|w| matches!(w, Write::Finish { .. }))
    {
        let (data, agent_no) = conversation_end(unit, flow, facts, tz);
        let key = match agent_no.is_empty() {
            true => key.clone(),
            false => agent_key(&unit.first.app_id, &agent_no),
        };
        out.push(push(
            EventKind::ConversationEnd,
            (data.to_string(), String::new()),
            &key,
        ));
    }
    out
}

/// The callEvent `data` (and the leg's channel name) of leg `leg` if no agent's session
/// tells it: a dial-in's caller,
/// or a number a transfer or consult dialled.
fn unagented(
    (unit, engine, flow): (&Unit, &Conversation, &AgentFlow),
    leg: LegIdx,
    (name, bridged, at_ms): (CallEventName, bool, i64),
    facts: Option<&LegFacts>,
    tz: chrono_tz::Tz,
) -> Option<(String, String)> {
    let plan = flow.plan();
    let (number, subtype, queue) = match flow.offer(leg) {
        Some(o) if o.offer.agent_no.is_empty() => (
            o.offer.agent_number.as_str(),
            o.subtype(),
            o.offer.queue.as_str(),
        ),
        Some(_) => return None,
        // The caller's leg is initiated with the claim; only its answer and end here.
        None if leg == flow.user()
            && plan.call_type() == CallType::DialIn
            && name != CallEventName::Initiated =>
        {
            ("", CallSubtype::User, flow.state().last_queue.as_str())
        }
        None => return None,
    };
    let mut event = CallEvent {
        name,
        call: CallView {
            agent_no: "",
            agent_number: number,
            call_type: plan.call_type(),
            user_number: &plan.user_number,
            queue_sid: queue,
            did_number: &plan.did,
        },
        app_id: &unit.first.app_id,
        conversation_sid: &unit.id,
        call_sid: &engine.core.legs[leg].id,
        subtype,
        bridged,
        failed_cause: "",
        completed_cause: "",
        co_agent_no: "",
        monitor_mode: "",
        user_data: &flow.state().user_data,
        at_ms,
        channel: &engine.core.legs[leg].channel_name,
    };
    if let Some(facts) = facts {
        event = end_event(event, facts, false);
    }
    let channel = engine.core.legs[leg].channel_name.clone();
    Some((event.data(tz).to_string(), channel))
}

/// astercc's `CONVERSATION` end (its callEvent-shaped data) and the agent it is keyed
/// under (`""`: none; the CDR's agent).
fn conversation_end(
    unit: &Unit,
    flow: &AgentFlow,
    legs: &[LegFacts],
    tz: chrono_tz::Tz,
) -> (Value, String) {
    let plan = flow.plan();
    let state = flow.state();
    let agent_no = match (flow.call_out(), &state.first_agent) {
        (Some(call), _) => call.agent_no.clone(),
        (None, Some((agent_no, _))) => agent_no.clone(),
        (None, None) => String::new(),
    };
    let agent_number = state
        .offers
        .iter()
        .find(|o| !agent_no.is_empty() && o.offer.agent_no == agent_no)
        .map(|o| o.offer.agent_number.clone())
        .unwrap_or_default();
    let queue = match state.answered_queue.as_str() {
        "" => state.last_queue.as_str(),
        answered => answered,
    };
    let end = legs.iter().map(|l| l.end_ms).max().unwrap_or_default();
    let data = json!({
        "appSid": unit.first.app_id,
        "agentNo": agent_no,
        "agentNumber": agent_number,
        "conversationSid": unit.id,
        "callType": plan.call_type().code(),
        "userNumber": plan.user_number,
        "didNumber": plan.did,
        "queueSid": queue,
        "timestamp": format_time(end, tz),
    });
    (data, agent_no)
}

//! A dial-in's queueEvents (agents' contract §8.4) as they leave the conversation: the
//! caller's fields of each move its step wrote; the receiving socket adds the queue's
//! counters and the caller's position when it sends them.

use serde_json::{Value, json};

use crate::cdr::format_time;
use crate::orchestrator::engine::{Conversation, Write};
use crate::orchestrator::flows::agent::Moved;
use crate::orchestrator::unit::Unit;

use super::agent_journal::agent_flow;

/// The queueEvents among `writes`: (queueSid, the event's caller fields).
pub(super) fn queue_events(
    unit: &Unit,
    engine: &Conversation,
    writes: &[Write],
    tz: chrono_tz::Tz,
) -> Vec<(String, Value)> {
    let Some(flow) = agent_flow(engine) else {
        return Vec::new();
    };
    let plan = flow.plan();
    writes
        .iter()
        .filter_map(|w| match w {
            Write::QueueEvent(m) => Some(m),
            _ => None,
        })
        .map(|m| {
            let agent_no = match &m.moved {
                Moved::Answered(agent_no) => agent_no.as_str(),
                _ => "",
            };
            let data = json!({
                "eventName": m.moved.event_name(),
                "appSid": unit.first.app_id,
                "queueSid": m.queue,
                "queueName": flow.queue(&m.queue).map(|q| q.name.as_str()).unwrap_or_default(),
                "callSid": engine.core.legs[flow.user()].id,
                "conversationSid": unit.id,
                "userNumber": plan.user_number,
                "joinType": m.join_type.code().to_string(),
                "joinTime": format_time(m.join_ms, tz),
                "waitSeconds": (m.at_ms - m.join_ms).max(0) / 1000,
                "leaveCause": m.moved.leave_cause(),
                "agentNo": agent_no,
                "timestamp": format_time(m.at_ms, tz),
            });
            (m.queue.clone(), data)
        })
        .collect()
}

//! The JSON of agent events (agents' contract §8): statusEvent data, every scalar a
//! string.

use serde_json::{Value, json};

use super::machine::StatusEvent;
use crate::cdr::format_time;

/// The `data` of a statusEvent (§8.3).
pub fn status_data(
    e: &StatusEvent,
    app_id: &str,
    agent_no: &str,
    session_sid: &str,
    now: i64,
    tz: chrono_tz::Tz,
) -> Value {
    json!({
        "eventName": e.name.as_str(),
        "appSid": app_id,
        "agentNo": agent_no,
        "workStatus": e.work_status,
        "pauseCause": e.pause_cause,
        "wrapupTime": e.wrapup_time.map(|t| t.to_string()).unwrap_or_default(),
        "readyCause": e.ready_cause,
        "timestamp": format_time(now, tz),
        "phoneType": e.phone_type.code().to_string(),
        "sessionSid": session_sid,
        "logoutCause": e.logout_cause,
        "forcedBy": e.forced_by,
    })
}

//! The JSON of agent events (agents' contract §8): statusEvent data, every scalar a
//! string, and the masking of users' numbers (§8.5).

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

/// A user's number masked (§8.5): the first 3 and last 4 characters kept, the rest
/// starred (`138****8000`); under 8 characters all but the last 2 starred.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let kept = if n < 8 {
                i + 2 >= n
            } else {
                i < 3 || i + 4 >= n
            };
            if kept { *c } else { '*' }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_number("13800138000"), "138****8000");
        assert_eq!(mask_number("01088880000"), "010****0000");
        assert_eq!(mask_number("12345678"), "123*5678");
        assert_eq!(mask_number("1234567"), "*****67");
        assert_eq!(mask_number("12"), "12");
        assert_eq!(mask_number(""), "");
    }
}

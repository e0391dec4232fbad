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

/// `callEvent` names (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventName {
    /// The leg is dialled.
    Initiated,
    /// It rings.
    Ringing,
    /// It answered (or was connected).
    Answered,
    /// The agent put the user on hold.
    Held,
    /// The agent took the user off hold.
    Retrieved,
    /// The leg joined the conversation's conference.
    Conferenced,
    /// It ended after answering.
    Completed,
    /// It ended unanswered.
    Failed,
}

impl CallEventName {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Held => "held",
            Self::Retrieved => "retrieved",
            Self::Conferenced => "conferenced",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// `callState`: the leg after the event.
    pub fn call_state(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Answered | Self::Retrieved | Self::Conferenced => "connected",
            Self::Held => "held",
            Self::Initiated | Self::Completed | Self::Failed => "idle",
        }
    }
}

/// What every callEvent of one agent's leg in a conversation shares.
#[derive(Debug, Clone, Copy)]
pub struct CallView<'a> {
    /// The agent the event is for.
    pub agent_no: &'a str,
    /// Its device's number.
    pub agent_number: &'a str,
    /// The conversation's callType.
    pub call_type: crate::domain::agent_call::CallType,
    /// The user's number.
    pub user_number: &'a str,
    /// The queue the call came through (`""`: none).
    pub queue_sid: &'a str,
    /// The DID dialled (`""`: not a dial-in).
    pub did_number: &'a str,
}

impl<'a> CallView<'a> {
    /// A callOut's view.
    pub fn of_call_out(call: &'a crate::domain::agent_call::AgentCall) -> Self {
        CallView {
            agent_no: &call.agent_no,
            agent_number: &call.agent_number,
            call_type: call.call_type,
            user_number: &call.user_number,
            queue_sid: "",
            did_number: "",
        }
    }
}

/// One callEvent of a leg, before it is JSON.
#[derive(Debug, Clone)]
pub struct CallEvent<'a> {
    /// eventName.
    pub name: CallEventName,
    /// The conversation as the agent sees it.
    pub call: CallView<'a>,
    /// Its application.
    pub app_id: &'a str,
    /// `CV…`.
    pub conversation_sid: &'a str,
    /// The leg, `CA…`.
    pub call_sid: &'a str,
    /// The leg's callSubtype.
    pub subtype: crate::domain::agent_call::CallSubtype,
    /// The leg is connected to the other party.
    pub bridged: bool,
    /// On failed: why.
    pub failed_cause: &'static str,
    /// On completed: `""`, `time-limit`, `transferred` or `forced`.
    pub completed_cause: &'static str,
    /// The other agent of a transfer, consult, conference or supervision (`""`: none).
    pub co_agent_no: &'a str,
    /// On a supervisor's leg: `monitor`, `whisper` or `barge` (`""`: not one).
    pub monitor_mode: &'static str,
    /// The conversation's userData.
    pub user_data: &'a str,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The leg's FreeSWITCH channel name (`""`: not known): astercc's `channel`, not part
    /// of the event's `data`.
    pub channel: &'a str,
}

impl CallEvent<'_> {
    /// Its `data` (§8.1), unmasked (sockets that mask numbers mask them when sending).
    pub fn data(&self, tz: chrono_tz::Tz) -> Value {
        let call = &self.call;
        json!({
            "eventName": self.name.as_str(),
            "appSid": self.app_id,
            "agentNo": call.agent_no,
            "agentNumber": call.agent_number,
            "conversationSid": self.conversation_sid,
            "callSid": self.call_sid,
            "failedCause": self.failed_cause,
            "completedCause": self.completed_cause,
            "callType": call.call_type.code(),
            "callSubtype": self.subtype.code(),
            "callState": self.name.call_state(),
            "userNumber": call.user_number,
            "userNumberType": crate::domain::agent_call::user_number_type(call.user_number),
            "userArea": "",
            "isBridged": if self.bridged { "1" } else { "0" },
            "coAgentNo": self.co_agent_no,
            "userData": self.user_data,
            "timestamp": format_time(self.at_ms, tz),
            "queueSid": call.queue_sid,
            "didNumber": call.did_number,
            "monitorMode": self.monitor_mode,
        })
    }
}

/// failedCause (§8.1) of a leg that ended unanswered with `hangup_cause`; `canceled` when
/// the platform withdrew it.
pub fn failed_cause(hangup_cause: &str, canceled: bool) -> &'static str {
    match hangup_cause {
        _ if canceled => "canceled",
        "NO_ANSWER" | "NO_USER_RESPONSE" => "no-answer",
        "RECOVERY_ON_TIMER_EXPIRE" | "PROGRESS_TIMEOUT" => "time-out",
        "ORIGINATOR_CANCEL" | "LOSE_RACE" => "canceled",
        _ => "failed",
    }
}

/// A frame as a socket that masks users' numbers sends it (§8.5): `userNumber` of an
/// event or reply, of getState's `calls` and of monitorQueues' waiting callers, masked by
/// [`crate::domain::agent_call::mask_number`]. Frames without one go as they are.
pub fn mask_frame(frame: String) -> String {
    if !frame.contains(r#""userNumber""#) {
        return frame;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&frame) else {
        return frame;
    };
    fn mask(object: &mut Value) {
        if let Some(Value::String(n)) = object.get_mut("userNumber") {
            *n = crate::domain::agent_call::mask_number(n);
        }
    }
    if let Some(data) = value.get_mut("data") {
        mask(data);
        if let Some(Value::Array(calls)) = data.get_mut("calls") {
            calls.iter_mut().for_each(mask);
        }
        // monitorQueues: the waiting callers of each queue's Live view.
        if let Some(Value::Array(queues)) = data.get_mut("queues") {
            for queue in queues {
                if let Some(Value::Array(members)) = queue.get_mut("members") {
                    members.iter_mut().for_each(mask);
                }
            }
        }
    }
    value.to_string()
}

//! The CDR of an agent's conversation (agents' contract §10): the conversation seen from
//! its agent and user, and each leg with its role.

use serde_json::{Value, json};

use super::shapes::{LegFacts, format_time, leg_fields};

/// One leg of an agent conversation with who it was.
#[derive(Debug, Clone)]
pub struct AgentLeg<'a> {
    /// Its facts.
    pub facts: &'a LegFacts,
    /// `user`, `agent`, …
    pub role: &'static str,
    /// The agent on it, `""` for the user.
    pub agent_no: &'a str,
}

/// An agent conversation's CDR.
#[derive(Debug, Clone)]
pub struct AgentCdr<'a> {
    /// `CV…`.
    pub conversation_sid: &'a str,
    /// Owner.
    pub account_sid: &'a str,
    /// Application.
    pub app_sid: &'a str,
    /// callType.
    pub call_type: &'a str,
    /// The first agent connected with the user (else the conversation's agent).
    pub agent_no: &'a str,
    /// The user's number.
    pub user_number: &'a str,
    /// `displayNum` as asked for.
    pub display_num: &'a str,
    /// The conversation's userData at its end.
    pub user_data: &'a str,
    /// byeType.
    pub bye_type: u8,
    /// Where the recording is fetched, `""` without one.
    pub recording_url: &'a str,
    /// Its length, seconds.
    pub recording_secs: i64,
    /// When the agent and user were first connected (Unix ms), if they were.
    pub connected_ms: Option<i64>,
    /// The queue the user was connected from (else the last it waited in), `""` for none.
    pub queue_sid: &'a str,
    /// The DID dialled, `""` when not a dial-in.
    pub did_number: &'a str,
    /// Seconds spent waiting in queues.
    pub wait_secs: i64,
    /// The legs, in dialling order.
    pub legs: &'a [AgentLeg<'a>],
}

impl AgentCdr<'_> {
    /// The JSON pushed and stored.
    pub fn body(&self, tz: chrono_tz::Tz) -> Value {
        let start = self
            .legs
            .iter()
            .map(|l| l.facts.start_ms)
            .min()
            .unwrap_or(0);
        let stop = self
            .legs
            .iter()
            .map(|l| l.facts.end_ms)
            .max()
            .unwrap_or(start);
        let duration = self.connected_ms.map_or(0, |c| (stop - c).max(0) / 1000);
        let cdrs: Vec<Value> = self
            .legs
            .iter()
            .enumerate()
            .map(|(seq, leg)| {
                // The conversation CDR's leg, with who it was (§10 carries no protoCause).
                let mut fields = leg_fields(seq, leg.facts, tz);
                fields.remove("protoCause");
                fields.insert("role".into(), leg.role.into());
                fields.insert("agentNo".into(), leg.agent_no.into());
                Value::Object(fields)
            })
            .collect();
        json!({
            "kind": "agent",
            "conversationSid": self.conversation_sid,
            "accountSid": self.account_sid,
            "appSid": self.app_sid,
            "callType": self.call_type,
            "agentNo": self.agent_no,
            "queueSid": self.queue_sid,
            "didNumber": self.did_number,
            "userNumber": self.user_number,
            "displayNum": self.display_num,
            "startTime": format_time(start, tz),
            "answerTime": self.connected_ms.map(|t| format_time(t, tz)).unwrap_or_default(),
            "stopTime": format_time(stop, tz),
            "duration": duration.to_string(),
            "waitSeconds": self.wait_secs.to_string(),
            "recordingUrl": self.recording_url,
            "recordingDuration": self.recording_secs.to_string(),
            "userData": self.user_data,
            "byeType": self.bye_type.to_string(),
            "cdrs": cdrs,
        })
    }
}

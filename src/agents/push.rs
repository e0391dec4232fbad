//! Agent events as an application's `eventUrl` receives them (agents' contract §5): which
//! events go, under which ordering key, and their bodies in the `json` and `astercc`
//! formats. Pure: the store numbers each key's events and writes them to the outbox.

use serde_json::Value;

use crate::domain::cti::EventFormat;

/// The kind of an agent event (a frame's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `callEvent` (§8.1).
    Call,
    /// `statusEvent` (§8.3).
    Status,
    /// `queueEvent` (§8.4).
    Queue,
    /// The end of a whole conversation: astercc's `CONVERSATION` message only.
    ConversationEnd,
}

impl EventKind {
    /// The frame's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "callEvent",
            Self::Status => "statusEvent",
            Self::Queue => "queueEvent",
            Self::ConversationEnd => "conversationEnd",
        }
    }

    /// The kind of a frame `type`.
    pub fn from_type(word: &str) -> Option<Self> {
        match word {
            "callEvent" => Some(Self::Call),
            "statusEvent" => Some(Self::Status),
            "queueEvent" => Some(Self::Queue),
            _ => None,
        }
    }
}

/// Where an application's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The application's account.
    pub account_sid: String,
    /// The application.
    pub app_id: String,
    /// Its `eventUrl`.
    pub url: String,
    /// Its `eventFormat`.
    pub format: EventFormat,
}

/// One event on its way to an `eventUrl`, before its key numbers it.
#[derive(Debug, Clone)]
pub struct EventPush {
    /// Where it goes.
    pub target: PushTarget,
    /// Events of one key are numbered and delivered in order.
    pub ordering_key: String,
    /// Its kind.
    pub kind: EventKind,
    /// Its `data` (a JSON object, unmasked).
    pub data: String,
    /// The leg's FreeSWITCH channel name (astercc's `channel`; `""`: none known).
    pub channel: String,
}

/// The outbox kind of pushed JSON events.
pub const OUTBOX_JSON: &str = "event";
/// The outbox kind of pushed astercc messages (sent form-encoded).
pub const OUTBOX_FORM: &str = "event_form";

/// The ordering key of agent `agent_no`'s events (§5: application + agentNo).
pub fn agent_key(app_id: &str, agent_no: &str) -> String {
    format!("events:{app_id}/{agent_no}")
}

/// The ordering key of a conversation's events that name no agent.
pub fn conversation_key(conversation_sid: &str) -> String {
    format!("events:{conversation_sid}")
}

/// A pushed event made ready to send: its body, the outbox kind it is sent as, and the
/// `webhook-id` it must have when it is not a fresh one (an astercc `answer` has one per
/// leg and key, so a leg's later `answered` events are not sent again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The request body.
    pub body: String,
    /// [`OUTBOX_JSON`] or [`OUTBOX_FORM`].
    pub outbox_kind: &'static str,
    /// A webhook-id fixed by what the event is, if it has one.
    pub fixed_id: Option<String>,
}

impl EventPush {
    /// The event made ready to number and send, its data read once; `None`: its format
    /// does not send it (astercc sends call events and the conversation's end only, and
    /// not every call event).
    pub fn prepare(&self) -> Option<Ready<'_>> {
        let astercc = match self.target.format {
            EventFormat::Json if self.kind == EventKind::ConversationEnd => return None,
            EventFormat::Json => None,
            EventFormat::Astercc => {
                let data = parse(&self.data)?;
                let (source, event) = match self.kind {
                    EventKind::Call => astercc_event(&data)?,
                    EventKind::ConversationEnd => ("CONVERSATION", "hangup"),
                    EventKind::Status | EventKind::Queue => return None,
                };
                Some((data, source, event))
            }
        };
        Some(Ready {
            push: self,
            astercc,
        })
    }
}

/// An event its format sends, ready to be numbered ([`EventPush::prepare`]).
#[derive(Debug)]
pub struct Ready<'a> {
    push: &'a EventPush,
    /// For astercc: the data read, and the message's `source` and `event`.
    astercc: Option<(serde_json::Map<String, Value>, &'static str, &'static str)>,
}

impl Ready<'_> {
    /// The event.
    pub fn push(&self) -> &EventPush {
        self.push
    }

    /// The event as sent with number `seq` of its key.
    pub fn render(&self, seq: i64) -> Rendered {
        let push = self.push;
        match &self.astercc {
            // The frame's own shape and order; `data` as the event wrote it.
            None => Rendered {
                body: format!(
                    r#"{{"type":"{}","seq":{seq},"data":{}}}"#,
                    push.kind.as_str(),
                    push.data
                ),
                outbox_kind: OUTBOX_JSON,
                fixed_id: None,
            },
            Some((data, source, event)) => Rendered {
                body: astercc_body(data, (source, event), &push.channel, seq),
                outbox_kind: OUTBOX_FORM,
                fixed_id: (*event == "answer").then(|| {
                    let leg = text(data, "callSid");
                    let key = format!("{}|{leg}", push.ordering_key);
                    format!("msg_answer_{}", short_hash(&key))
                }),
            },
        }
    }
}

fn parse(data: &str) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_str(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn text<'a>(data: &'a serde_json::Map<String, Value>, field: &str) -> &'a str {
    data.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// astercc's `source` and `event` of a callEvent, if astercc sends it.
fn astercc_event(data: &serde_json::Map<String, Value>) -> Option<(&'static str, &'static str)> {
    let dial_in = text(data, "callType") == "1";
    let source = match text(data, "callSubtype") {
        "1" if dial_in => "CALLER",
        "1" => "CALLEE",
        "2" => "AGENT",
        _ => "CONSULT",
    };
    let event = match text(data, "eventName") {
        "initiated" if source == "CALLER" => "incoming",
        "ringing" => "ringing",
        "answered" => "answer",
        "held" => "onhold",
        "retrieved" => "resume",
        "conferenced" => "join",
        "completed" | "failed" => "hangup",
        _ => return None,
    };
    Some((source, event))
}

/// The seed-004 message: its fields in its order, each `name=value&`.
fn astercc_body(
    data: &serde_json::Map<String, Value>,
    (source, event): (&str, &str),
    channel: &str,
    eventid: i64,
) -> String {
    let user = text(data, "userNumber");
    let active = match source {
        "CALLER" | "CALLEE" => user,
        _ => text(data, "agentNumber"),
    };
    let queue = text(data, "queueSid");
    let direction = match text(data, "callType") {
        "1" => "dialin",
        _ => "dialout",
    };
    let uniqueid = match source {
        "CONVERSATION" => "0",
        _ => text(data, "callSid"),
    };
    let eventid = eventid.to_string();
    let event_time = dashed_time(text(data, "timestamp"));
    let fields: [(&str, &str); 17] = [
        ("calleridnum", user),
        ("didnumber", text(data, "didNumber")),
        ("activenum", active),
        ("source", source),
        ("event", event),
        ("uniqueid", uniqueid),
        ("sessionid", text(data, "conversationSid")),
        ("eventTime", &event_time),
        ("AgentTeamId", text(data, "appSid")),
        ("AgentGroupId", queue),
        ("calltype", direction),
        ("from", direction),
        ("modeltype", "Campaign"),
        ("model_id", queue),
        ("channel", channel),
        ("eventid", &eventid),
        ("agentno", text(data, "agentNo")),
    ];
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(name);
        body.push('=');
        body.push_str(&form_value(value));
        body.push('&');
    }
    body
}

/// `YYYYMMDDHHmmss` as `YYYY-MM-DD HH:mm:ss` (anything else as it is).
pub fn dashed_time(t: &str) -> String {
    spaced_time(t, '-')
}

/// `YYYYMMDDHHmmss` as `YYYY{sep}MM{sep}DD HH:mm:ss` (anything else as it is).
pub fn spaced_time(t: &str, sep: char) -> String {
    if t.len() != 14 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return t.to_string();
    }
    format!(
        "{}{sep}{}{sep}{} {}:{}:{}",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[8..10],
        &t[10..12],
        &t[12..14]
    )
}

/// A value as the seed's split-on-`&`-and-`=` parser reads it: `%`, `&`, `=` and control
/// characters percent-encoded, everything else (spaces, `/`, `@`, UTF-8) as it is.
pub fn form_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' | '&' | '=' => out.push_str(&format!("%{:02X}", c as u32)),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A short stable hash (FNV-1a, hex) for fixed webhook ids.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl EventPush {
        fn is_sent(&self) -> bool {
            self.prepare().is_some()
        }

        fn render(&self, seq: i64) -> Option<Rendered> {
            self.prepare().map(|ready| ready.render(seq))
        }
    }

    fn push(format: EventFormat, kind: EventKind, data: Value) -> EventPush {
        EventPush {
            target: PushTarget {
                account_sid: "AC1".into(),
                app_id: "AP1".into(),
                url: "https://crm.example.com/events".into(),
                format,
            },
            ordering_key: agent_key("AP1", "1001"),
            kind,
            data: data.to_string(),
            channel: "sofia/internal/80000017@10.0.0.5:5060".into(),
        }
    }

    fn ringing() -> Value {
        json!({"eventName": "ringing", "appSid": "AP1", "agentNo": "1001", "agentNumber": "041139735857",
               "conversationSid": "CV1", "callSid": "CA2", "callType": "1", "callSubtype": "2",
               "userNumber": "0138888888888", "didNumber": "800888", "queueSid": "QU1",
               "timestamp": "20100101111107"})
    }

    #[test]
    fn astercc_ringing_is_the_seeds_message_with_our_ids() {
        let r = push(EventFormat::Astercc, EventKind::Call, ringing())
            .render(7)
            .unwrap();
        assert_eq!(
            r.body,
            "calleridnum=0138888888888&didnumber=800888&activenum=041139735857&source=AGENT&event=ringing&\
             uniqueid=CA2&sessionid=CV1&eventTime=2010-01-01 11:11:07&AgentTeamId=AP1&AgentGroupId=QU1&\
             calltype=dialin&from=dialin&modeltype=Campaign&model_id=QU1&channel=sofia/internal/80000017@10.0.0.5:5060&eventid=7&agentno=1001&"
        );
        assert_eq!(r.outbox_kind, OUTBOX_FORM);
        assert_eq!(r.fixed_id, None);
    }

    #[test]
    fn astercc_sends_call_events_only_and_maps_their_names() {
        let mut d = ringing();
        let name = |d: &Value| {
            let p = push(EventFormat::Astercc, EventKind::Call, d.clone());
            p.render(1).map(|r| {
                let fields: Vec<&str> = r.body.split('&').collect();
                format!("{} {}", fields[3], fields[4])
            })
        };
        for (event, want) in [
            ("initiated", None),
            ("answered", Some("source=AGENT event=answer")),
            ("held", Some("source=AGENT event=onhold")),
            ("retrieved", Some("source=AGENT event=resume")),
            ("conferenced", Some("source=AGENT event=join")),
            ("completed", Some("source=AGENT event=hangup")),
            ("failed", Some("source=AGENT event=hangup")),
        ] {
            d["eventName"] = json!(event);
            assert_eq!(name(&d).as_deref(), want, "{event}");
        }
        d["eventName"] = json!("initiated");
        d["callSubtype"] = json!("1");
        assert_eq!(name(&d).as_deref(), Some("source=CALLER event=incoming"));
        d["callType"] = json!("4");
        assert_eq!(
            name(&d),
            None,
            "initiated is sent for a dial-in's caller only"
        );
        d["eventName"] = json!("ringing");
        assert_eq!(name(&d).as_deref(), Some("source=CALLEE event=ringing"));
        d["callSubtype"] = json!("5");
        assert_eq!(name(&d).as_deref(), Some("source=CONSULT event=ringing"));
        for kind in [EventKind::Status, EventKind::Queue] {
            let p = push(EventFormat::Astercc, kind, json!({"eventName": "ready"}));
            assert!(!p.is_sent());
            assert_eq!(p.render(1), None);
        }
    }

    #[test]
    fn an_astercc_answer_has_one_id_per_leg_and_key() {
        let mut d = ringing();
        d["eventName"] = json!("answered");
        let a = push(EventFormat::Astercc, EventKind::Call, d.clone())
            .render(1)
            .unwrap();
        let b = push(EventFormat::Astercc, EventKind::Call, d.clone())
            .render(2)
            .unwrap();
        assert!(a.fixed_id.is_some());
        assert_eq!(a.fixed_id, b.fixed_id);
        d["callSid"] = json!("CA3");
        let c = push(EventFormat::Astercc, EventKind::Call, d)
            .render(3)
            .unwrap();
        assert_ne!(a.fixed_id, c.fixed_id);
    }

    #[test]
    fn astercc_values_keep_the_seed_parser_working() {
        assert_eq!(form_value("a&b=c%d"), "a%26b%3Dc%25d");
        assert_eq!(form_value("Li Lei/客服@x"), "Li Lei/客服@x");
        assert_eq!(form_value("a\nb\u{7f}"), "a%0Ab%7F");
        let mut d = ringing();
        d["eventName"] = json!("completed");
        d["agentNumber"] = json!("9&x=1");
        let body = push(EventFormat::Astercc, EventKind::Call, d)
            .render(1)
            .unwrap()
            .body;
        let pairs: Vec<(&str, &str)> = body
            .trim_end_matches('&')
            .split('&')
            .map(|p| p.split_once('=').unwrap())
            .collect();
        assert_eq!(pairs.len(), 17);
        assert_eq!(pairs[2], ("activenum", "9%26x%3D1"));
    }

    #[test]
    fn the_conversation_end_is_astercc_only() {
        let d = json!({"appSid": "AP1", "agentNo": "1001", "agentNumber": "041139735857", "conversationSid": "CV1",
                       "callType": "4", "userNumber": "0138888888888", "didNumber": "", "queueSid": "",
                       "timestamp": "20100101082247"});
        let end = push(EventFormat::Astercc, EventKind::ConversationEnd, d.clone())
            .render(9)
            .unwrap();
        assert_eq!(
            end.body,
            "calleridnum=0138888888888&didnumber=&activenum=041139735857&source=CONVERSATION&event=hangup&\
             uniqueid=0&sessionid=CV1&eventTime=2010-01-01 08:22:47&AgentTeamId=AP1&AgentGroupId=&\
             calltype=dialout&from=dialout&modeltype=Campaign&model_id=&channel=sofia/internal/80000017@10.0.0.5:5060&eventid=9&agentno=1001&"
        );
        assert!(!push(EventFormat::Json, EventKind::ConversationEnd, d).is_sent());
    }

    #[test]
    fn json_carries_the_frame_with_the_keys_seq() {
        let r = push(
            EventFormat::Json,
            EventKind::Status,
            json!({"eventName": "ready"}),
        )
        .render(3)
        .unwrap();
        assert_eq!(
            r.body,
            r#"{"type":"statusEvent","seq":3,"data":{"eventName":"ready"}}"#
        );
        assert_eq!(r.outbox_kind, OUTBOX_JSON);
    }

    #[test]
    fn times_are_reformatted() {
        assert_eq!(dashed_time("20261201093005"), "2026-12-01 09:30:05");
        assert_eq!(spaced_time("20261201093005", '.'), "2026.12.01 09:30:05");
        assert_eq!(dashed_time(""), "");
    }
}

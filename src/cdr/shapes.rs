//! The JSON shapes of the callbacks and CDRs: every value a string (API.md conventions),
//! times `YYYYMMDDHHmmss` in the platform time zone.

use chrono::{Datelike, TimeZone, Timelike};
use serde_json::{Map, Value, json};

use super::causes::{LegEnd, call_cause, notice_outcome};

/// `YYYYMMDDHHmmss` of a Unix-millisecond instant in `tz`.
pub fn format_time(ms: i64, tz: chrono_tz::Tz) -> String {
    let Some(t) = tz.timestamp_millis_opt(ms).single() else {
        return String::new();
    };
    let t = t.naive_local();
    let Ok(year @ 0..=9999) = u32::try_from(t.year()) else {
        // Years without four digits, as chrono writes them.
        return t.format("%Y%m%d%H%M%S").to_string();
    };
    // Digit by digit: a CDR formats several times, and chrono's formatter reads its
    // pattern every time.
    let mut out = String::with_capacity(14);
    for (value, width) in [
        (year, 4),
        (t.month(), 2),
        (t.day(), 2),
        (t.hour(), 2),
        (t.minute(), 2),
        (t.second(), 2),
    ] {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
    }
    out
}

fn opt_time(ms: Option<i64>, tz: chrono_tz::Tz) -> String {
    ms.map(|ms| format_time(ms, tz)).unwrap_or_default()
}

/// What is known of one leg when it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegFacts {
    /// `CA…`.
    pub call_id: String,
    /// Caller id shown to the callee (`""` when the platform default was used).
    pub from: String,
    /// The number dialled.
    pub to: String,
    /// When it was dialled (Unix ms).
    pub start_ms: i64,
    /// When it started ringing.
    pub ring_ms: Option<i64>,
    /// When it was answered.
    pub answer_ms: Option<i64>,
    /// When it ended.
    pub end_ms: i64,
    /// How it ended.
    pub end: LegEnd,
    /// The media server's hangup cause (Q.850 name, or the platform's `MEDIA_LOST`).
    pub hangup_cause: String,
    /// The final SIP response code (`""` when there was none).
    pub sip_status: String,
    /// The protocol's own cause, e.g. `sip:486` (`""` when there was none).
    pub proto_cause: String,
}

impl LegFacts {
    /// Whole seconds from answer to end (`0` when not answered).
    pub fn duration_secs(&self) -> i64 {
        self.answer_ms
            .map_or(0, |a| ((self.end_ms - a).max(0)) / 1000)
    }
}

/// The result callback and CDR of a notice or captcha (§5).
#[derive(Debug, Clone)]
pub struct NoticeCdr<'a> {
    /// `RQ…` of the request.
    pub requestid: &'a str,
    /// Application.
    pub appid: &'a str,
    /// Customer data (`""` when none).
    pub userdata: &'a str,
    /// Last key pressed; `None` for captchas, which carry no `inputkey`.
    pub inputkey: Option<&'a str>,
    /// The leg.
    pub leg: &'a LegFacts,
}

impl NoticeCdr<'_> {
    /// The JSON object, every value a string, every field present.
    pub fn body(&self, tz: chrono_tz::Tz) -> Value {
        let leg = self.leg;
        let (result, reason) = notice_outcome(leg.end);
        let mut body = json!({
            "requestid": self.requestid,
            "callid": leg.call_id,
            "appid": self.appid,
            "to": leg.to,
            "starttime": format_time(leg.start_ms, tz),
            "ringtime": opt_time(leg.ring_ms, tz),
            "answertime": opt_time(leg.answer_ms, tz),
            "endtime": format_time(leg.end_ms, tz),
            "duration": leg.duration_secs().to_string(),
            "result": result,
            "reason": reason,
            "userdata": self.userdata,
        });
        if let (Some(key), Some(map)) = (self.inputkey, body.as_object_mut()) {
            map.insert("inputkey".into(), Value::String(key.to_string()));
        }
        body
    }
}

/// A leg state change of a conversation (§6.1).
#[derive(Debug, Clone)]
pub struct StatusEvent<'a> {
    /// `CV…`.
    pub conversation_sid: &'a str,
    /// `SoftVersion` the conversation was created with.
    pub api_version: &'a str,
    /// Owner.
    pub account_sid: &'a str,
    /// Application.
    pub app_sid: &'a str,
    /// Customer data (`""` when none).
    pub user_data: &'a str,
    /// `CA…` of the leg.
    pub call_sid: &'a str,
    /// Caller id shown on the leg.
    pub from: &'a str,
    /// Its number.
    pub to: &'a str,
    /// `initiated`, `ringing`, `answered` or `completed`.
    pub call_status: &'a str,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Set on `completed` only.
    pub end: Option<LegEnd>,
}

impl StatusEvent<'_> {
    /// The JSON object of the status callback.
    pub fn body(&self, tz: chrono_tz::Tz) -> Value {
        json!({
            "conversationSid": self.conversation_sid,
            "callSid": self.call_sid,
            "apiVersion": self.api_version,
            "accountSid": self.account_sid,
            "appSid": self.app_sid,
            "from": self.from,
            "to": self.to,
            "direction": "outbound",
            "callStatus": self.call_status,
            "timestamp": format_time(self.at_ms, tz),
            "callCause": self.end.map(call_cause).unwrap_or_default(),
            "userData": self.user_data,
        })
    }
}

/// The CDR of a conversation (§6.2).
#[derive(Debug, Clone)]
pub struct ConversationCdr<'a> {
    /// `CV…`.
    pub conversation_sid: &'a str,
    /// Owner.
    pub account_sid: &'a str,
    /// Application.
    pub app_sid: &'a str,
    /// Where the recording can be fetched (`""` without one).
    pub recording_url: &'a str,
    /// Its length in seconds.
    pub recording_secs: i64,
    /// Customer data (`""` when none).
    pub user_data: &'a str,
    /// 0–6 (§6.2).
    pub bye_type: u8,
    /// Every leg, in dialling order.
    pub legs: &'a [LegFacts],
}

impl ConversationCdr<'_> {
    /// The JSON object of the CDR callback.
    pub fn body(&self, tz: chrono_tz::Tz) -> Value {
        let cdrs: Vec<Value> = self
            .legs
            .iter()
            .enumerate()
            .map(|(seq, leg)| Value::Object(leg_fields(seq, leg, tz)))
            .collect();
        let mut body = Map::new();
        for (k, v) in [
            ("conversationSid", self.conversation_sid.to_string()),
            ("accountSid", self.account_sid.to_string()),
            ("appSid", self.app_sid.to_string()),
            ("recordingUrl", self.recording_url.to_string()),
            ("recordingDuration", self.recording_secs.to_string()),
            ("userData", self.user_data.to_string()),
            ("byeType", self.bye_type.to_string()),
        ] {
            body.insert(k.into(), Value::String(v));
        }
        body.insert("cdrs".into(), Value::Array(cdrs));
        Value::Object(body)
    }
}

/// A leg of a conversation's CDR (`cdrs[]`), every value a string.
pub(super) fn leg_fields(seq: usize, leg: &LegFacts, tz: chrono_tz::Tz) -> Map<String, Value> {
    let fields = json!({
        "callSeq": seq.to_string(),
        "callSid": leg.call_id,
        "from": leg.from,
        "to": leg.to,
        "startTime": format_time(leg.start_ms, tz),
        "ringTime": opt_time(leg.ring_ms, tz),
        "answerTime": opt_time(leg.answer_ms, tz),
        "stopTime": format_time(leg.end_ms, tz),
        "duration": leg.duration_secs().to_string(),
        "cause": call_cause(leg.end),
        "hangupCause": leg.hangup_cause,
        "sipStatus": leg.sip_status,
        "protoCause": leg.proto_cause,
    });
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn times_read_as_chrono_writes_them(ms in -70_000_000_000_000i64..300_000_000_000_000, zone in 0usize..3) {
            let tz = [chrono_tz::Asia::Shanghai, chrono_tz::UTC, chrono_tz::America::St_Johns][zone];
            let want = tz.timestamp_millis_opt(ms).single().map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default();
            proptest::prop_assert_eq!(format_time(ms, tz), want);
        }
    }

    fn leg(end: LegEnd, answer: Option<i64>) -> LegFacts {
        LegFacts {
            call_id: "CA1".into(),
            from: "0101".into(),
            to: "13800000001".into(),
            start_ms: 1_700_000_000_000,
            ring_ms: Some(1_700_000_001_000),
            answer_ms: answer,
            end_ms: 1_700_000_033_999,
            end,
            hangup_cause: "NORMAL_CLEARING".into(),
            sip_status: String::new(),
            proto_cause: String::new(),
        }
    }

    #[test]
    fn notice_body_has_every_field_as_strings() {
        let l = leg(LegEnd::Completed, Some(1_700_000_002_000));
        let body = NoticeCdr {
            requestid: "RQ1",
            appid: "app",
            userdata: "",
            inputkey: Some("1"),
            leg: &l,
        }
        .body(chrono_tz::Asia::Shanghai);
        assert_eq!(body["starttime"], "20231115061320");
        assert_eq!(body["duration"], "31");
        assert_eq!(body["result"], "0");
        assert_eq!(body["reason"], "");
        assert_eq!(body["inputkey"], "1");
        assert_eq!(body.as_object().unwrap().len(), 13);
        assert!(body.as_object().unwrap().values().all(Value::is_string));
        let captcha = NoticeCdr {
            inputkey: None,
            ..NoticeCdr {
                requestid: "RQ1",
                appid: "app",
                userdata: "u",
                inputkey: None,
                leg: &leg(LegEnd::AnswerTimeout, None),
            }
        }
        .body(chrono_tz::Asia::Shanghai);
        assert_eq!(captcha.get("inputkey"), None);
        assert_eq!(captcha["answertime"], "");
        assert_eq!(captcha["duration"], "0");
        assert_eq!(
            (captcha["result"].as_str(), captcha["reason"].as_str()),
            (Some("1"), Some("1"))
        );
    }

    #[test]
    fn conversation_cdr() {
        let legs = [
            leg(LegEnd::Completed, Some(1_700_000_002_000)),
            leg(LegEnd::Failed, None),
        ];
        let body = ConversationCdr {
            conversation_sid: "CV1",
            account_sid: "AC",
            app_sid: "app",
            recording_url: "",
            recording_secs: 0,
            user_data: "",
            bye_type: 2,
            legs: &legs,
        }
        .body(chrono_tz::Asia::Shanghai);
        assert_eq!(body["byeType"], "2");
        assert_eq!(body["cdrs"][1]["callSeq"], "1");
        assert_eq!(body["cdrs"][1]["cause"], "failed");
        assert_eq!(body["cdrs"][0]["duration"], "31");
        assert_eq!(
            (
                body["cdrs"][0]["hangupCause"].as_str(),
                body["cdrs"][0]["sipStatus"].as_str()
            ),
            (Some("NORMAL_CLEARING"), Some(""))
        );
    }
}

//! Click-to-call (API.md §6): the `click2call`, `addCall` and `cancelCall` actions.

use serde::{Deserialize, Serialize};

use super::fields::{Fields, ParamError, check_max_bytes};
use super::notice::MAX_USERDATA_BYTES;
use super::phone::PhoneNumber;
use super::prompt::PromptName;
use super::webhook_url::WebhookUrl;

/// What the caller hears while the callee is dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingbackMode {
    /// `0`: the callee side's ringback and early media pass through (default).
    PassThrough,
    /// `1`: the platform plays `ringbackVoice`, and `failVoice` on failure.
    Platform,
}

/// When recording starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordMode {
    /// `0`: no recording (default).
    Off,
    /// `1`: from the moment the callee rings.
    FromCalleeRinging,
    /// `2`: from the moment the callee answers.
    FromCalleeAnswer,
}

/// How a callee leg is dialled and what each side hears; shared by click2call and addCall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalleeDial {
    /// The number to dial.
    pub callee: PhoneNumber,
    /// Line number shown to the callee.
    pub callee_cli: Option<PhoneNumber>,
    /// Played to the caller before the callee is dialled.
    pub greet_voice: Option<PromptName>,
    /// Ringback mode.
    pub ringback_mode: RingbackMode,
    /// Ringback prompt in platform mode (built-in default when absent).
    pub ringback_voice: Option<PromptName>,
    /// Failure prompt in platform mode (built-in default when absent).
    pub fail_voice: Option<PromptName>,
    /// Played to the callee right after the bridge.
    pub callee_voice: Option<PromptName>,
    /// Played to the caller right after the bridge.
    pub caller_voice: Option<PromptName>,
    /// Recording mode.
    pub record: RecordMode,
}

impl CalleeDial {
    fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let prompt = |name: &str| {
            fields
                .opt_nonempty_str(name)?
                .map(|s| PromptName::parse(name, s))
                .transpose()
        };
        let ringback_mode = match fields.opt_int("ringbackMode", 0, 1)? {
            Some(1) => RingbackMode::Platform,
            _ => RingbackMode::PassThrough,
        };
        let record = match fields.opt_int("record", 0, 2)? {
            Some(1) => RecordMode::FromCalleeRinging,
            Some(2) => RecordMode::FromCalleeAnswer,
            _ => RecordMode::Off,
        };
        Ok(Self {
            callee: PhoneNumber::parse("callee", fields.req_str("callee")?)?,
            callee_cli: fields
                .opt_nonempty_str("calleeCli")?
                .map(|s| PhoneNumber::parse("calleeCli", s))
                .transpose()?,
            greet_voice: prompt("greetVoice")?,
            ringback_mode,
            ringback_voice: prompt("ringbackVoice")?,
            fail_voice: prompt("failVoice")?,
            callee_voice: prompt("calleeVoice")?,
            caller_voice: prompt("callerVoice")?,
            record,
        })
    }

    fn prompts(&self) -> Vec<(&'static str, &PromptName)> {
        [
            ("greetVoice", &self.greet_voice),
            ("ringbackVoice", &self.ringback_voice),
            ("failVoice", &self.fail_voice),
            ("calleeVoice", &self.callee_voice),
            ("callerVoice", &self.caller_voice),
        ]
        .into_iter()
        .filter_map(|(field, p)| p.as_ref().map(|p| (field, p)))
        .collect()
    }
}

/// A parsed `click2call` action; stored with its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click2Call {
    /// The caller, dialled first.
    pub caller: PhoneNumber,
    /// Line number shown to the caller.
    pub caller_cli: Option<PhoneNumber>,
    /// The callee and how it is dialled.
    pub dial: CalleeDial,
    /// Letters and digits, ≤ 256 bytes; echoed in callbacks.
    pub user_data: Option<String>,
    /// Per-leg status callbacks (falls back to the application's).
    pub status_url: Option<WebhookUrl>,
    /// CDR callback (falls back to the application's).
    pub cdr_url: Option<WebhookUrl>,
    /// Seconds of talk before the platform hangs up; `None` = unlimited.
    pub max_duration: Option<u32>,
    /// Played to both sides 60 s before `max_duration` (built-in default when absent).
    pub last_min_voice: Option<PromptName>,
}

/// Longest `maxDuration` accepted (one day).
pub const MAX_DURATION_SECS: i64 = 86_400;

impl Click2Call {
    /// Parses the body of a `click2call` action.
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let caller = PhoneNumber::parse("caller", fields.req_str("caller")?)?;
        let dial = CalleeDial::parse(fields)?;
        let user_data = fields.opt_nonempty_str("userData")?;
        if let Some(u) = user_data {
            check_max_bytes("userData", u, MAX_USERDATA_BYTES)?;
            if !u.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ParamError::new(
                    "userData must contain only letters and digits",
                ));
            }
        }
        let url = |name: &str| {
            fields
                .opt_nonempty_str(name)?
                .map(|s| WebhookUrl::parse(name, s))
                .transpose()
        };
        Ok(Self {
            caller,
            caller_cli: fields
                .opt_nonempty_str("callerCli")?
                .map(|s| PhoneNumber::parse("callerCli", s))
                .transpose()?,
            dial,
            user_data: user_data.map(str::to_string),
            status_url: url("statusUrl")?,
            cdr_url: url("cdrUrl")?,
            max_duration: fields
                .opt_int("maxDuration", 1, MAX_DURATION_SECS)?
                .map(|n| n as u32),
            last_min_voice: fields
                .opt_nonempty_str("lastMinVoice")?
                .map(|s| PromptName::parse("lastMinVoice", s))
                .transpose()?,
        })
    }

    /// Every prompt the conversation may play, with its field name.
    pub fn prompts(&self) -> Vec<(&'static str, &PromptName)> {
        let mut all = self.dial.prompts();
        all.extend(self.last_min_voice.as_ref().map(|p| ("lastMinVoice", p)));
        all
    }

    /// The caller ids this request wants shown.
    pub fn urls(&self) -> Vec<(&'static str, &WebhookUrl)> {
        [("statusUrl", &self.status_url), ("cdrUrl", &self.cdr_url)]
            .into_iter()
            .filter_map(|(f, u)| u.as_ref().map(|u| (f, u)))
            .collect()
    }

    pub fn caller_ids(&self) -> Vec<(&'static str, &PhoneNumber)> {
        [
            ("callerCli", &self.caller_cli),
            ("calleeCli", &self.dial.callee_cli),
        ]
        .into_iter()
        .filter_map(|(f, n)| n.as_ref().map(|n| (f, n)))
        .collect()
    }
}

/// A click-to-call as stored with its caller leg: the request and the `SoftVersion` it
/// came in on (echoed as `apiVersion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredClick2Call {
    /// The path's `SoftVersion`.
    pub api_version: String,
    /// The request.
    #[serde(flatten)]
    pub call: Click2Call,
}

/// Default callee answer timeout of addCall, seconds.
pub const ADD_CALL_DEFAULT_TIMEOUT: u32 = 120;

/// A parsed `addCall` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCall {
    /// The new party and how it is dialled.
    pub dial: CalleeDial,
    /// Seconds the new callee is rung (default 120).
    pub timeout: u32,
}

impl AddCall {
    /// Parses the body of an `addCall` action.
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let dial = CalleeDial::parse(fields)?;
        let timeout = fields
            .opt_int("timeout", 1, 600)?
            .map_or(ADD_CALL_DEFAULT_TIMEOUT, |n| n as u32);
        Ok(Self { dial, timeout })
    }

    /// Every prompt the new leg may play, with its field name.
    pub fn prompts(&self) -> Vec<(&'static str, &PromptName)> {
        self.dial.prompts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn c2c(body: Value) -> Result<Click2Call, String> {
        Click2Call::parse(Fields(body.as_object().unwrap())).map_err(|e| e.0)
    }

    #[test]
    fn full_click2call() {
        let c = c2c(json!({"caller":"13800000001","callee":"13800000002","callerCli":"01012345678","greetVoice":"g.wav","ringbackMode":"1","record":2,"maxDuration":"600","userData":"abc123","statusUrl":"https://example.com/s"})).unwrap();
        assert_eq!(c.dial.ringback_mode, RingbackMode::Platform);
        assert_eq!(c.dial.record, RecordMode::FromCalleeAnswer);
        assert_eq!(c.max_duration, Some(600));
        assert_eq!(
            c.prompts(),
            vec![("greetVoice", &PromptName::parse("x", "g.wav").unwrap())]
        );
        assert_eq!(c.caller_ids().len(), 1);
    }

    #[test]
    fn field_errors() {
        for (body, msg) in [
            (json!({"callee":"13800000002"}), "missing caller"),
            (json!({"caller":"13800000001"}), "missing callee"),
            (
                json!({"caller":"13800000001","callee":"13800000002","userData":"a b"}),
                "userData must contain only letters and digits",
            ),
            (
                json!({"caller":"13800000001","callee":"13800000002","ringbackMode":2}),
                "ringbackMode must be 0-1",
            ),
            (
                json!({"caller":"13800000001","callee":"13800000002","record":"3"}),
                "record must be 0-2",
            ),
            (
                json!({"caller":"13800000001","callee":"13800000002","maxDuration":0}),
                "maxDuration must be 1-86400",
            ),
            (
                json!({"caller":"13800000001","callee":"13800000002","statusUrl":"ftp://x"}),
                "statusUrl must be an http or https URL",
            ),
        ] {
            assert_eq!(c2c(body).unwrap_err(), msg);
        }
        let add = json!({"callee":"13800000003","timeout":"0"});
        assert_eq!(
            AddCall::parse(Fields(add.as_object().unwrap()))
                .unwrap_err()
                .0,
            "timeout must be 1-600"
        );
    }
}

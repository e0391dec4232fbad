//! Voice notices (API.md §2, §3): what to play, how often, and which keys do what.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, ParamError, check_max_bytes};
use super::phone::{PhoneNumber, printable};
use super::prompt::PromptName;

/// Most content items in one notice.
pub const MAX_CONTENTS: usize = 20;
/// Most callees in one batch notice.
pub const MAX_BATCH_CALLEES: usize = 1000;
/// Longest userdata, in bytes.
pub const MAX_USERDATA_BYTES: usize = 256;

/// A key the callee can press: one of `0-9 * #`, or any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtmfKey {
    /// Exactly this key.
    Key(char),
    /// Whatever key is pressed.
    Any,
}

impl DtmfKey {
    /// Parses `0-9`, `*`, `#` or `any`.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParamError> {
        match s {
            "any" => Ok(Self::Any),
            _ if s.len() == 1 && matches!(s.as_bytes()[0], b'0'..=b'9' | b'*' | b'#') => {
                Ok(Self::Key(s.as_bytes()[0] as char))
            }
            _ => Err(ParamError::new(format!(
                "{field} must be one of 0-9 * # or any"
            ))),
        }
    }
}

/// One item of `contents`, already checked against its type's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "content", rename_all = "lowercase")]
pub enum ContentItem {
    /// A prompt of the application, played as is.
    Voice(PromptName),
    /// A date `YYYY-MM-DD`, read as a date.
    Time(String),
    /// A decimal with at most two places, read as currency.
    Money(String),
    /// An integer, read as a number.
    Number(String),
    /// A digit string, read digit by digit.
    Digits(String),
}

impl ContentItem {
    fn parse(index: usize, value: &Value) -> Result<Self, ParamError> {
        let at = format!("contents[{index}]");
        let obj = value.as_object().ok_or_else(|| {
            ParamError::new(format!("{at} must be an object with type and content"))
        })?;
        let fields = Fields(obj);
        let kind = match fields.raw("type") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            None | Some(Value::String(_)) => {
                return Err(ParamError::new(format!("missing {at}.type")));
            }
            Some(_) => return Err(ParamError::new(format!("{at}.type must be a string"))),
        };
        let content_field = format!("{at}.content");
        let content = match fields.raw("content") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) if kind != "voice" && kind != "time" => n.to_string(),
            None | Some(Value::String(_)) => {
                return Err(ParamError::new(format!("missing {content_field}")));
            }
            Some(_) => return Err(ParamError::new(format!("{content_field} must be a string"))),
        };
        let invalid = |rule: &str| {
            ParamError::new(format!(
                "invalid {content_field}: {} ({rule})",
                printable(&content)
            ))
        };
        match kind {
            "voice" => Ok(Self::Voice(PromptName::parse(&content_field, &content)?)),
            "time" if is_date(&content) => Ok(Self::Time(content)),
            "time" => Err(invalid("expected a date YYYY-MM-DD")),
            "money" if is_money(&content) => Ok(Self::Money(content)),
            "money" => Err(invalid("expected a decimal with at most 2 places")),
            "number" if is_integer(&content) => Ok(Self::Number(content)),
            "number" => Err(invalid("expected an integer of at most 15 digits")),
            "digits" if is_digits(&content) => Ok(Self::Digits(content)),
            "digits" => Err(invalid("expected 1-64 digits")),
            _ => Err(ParamError::new(format!(
                "{at}.type must be one of voice, time, money, number, digits"
            ))),
        }
    }
}

fn is_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn is_money(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac_ok = if s.contains('.') {
        (1..=2).contains(&frac.len())
    } else {
        true
    };
    (1..=13).contains(&whole.len())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac_ok
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_digits(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// What a notice call plays and how it reacts to keys; stored with each call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeScript {
    /// The items, in order.
    pub contents: Vec<ContentItem>,
    /// How many times the contents are played (1–3).
    pub times: u8,
    /// Stops playback (takes precedence over `repeatkey`).
    pub finishkey: Option<DtmfKey>,
    /// Restarts the contents from the top.
    pub repeatkey: Option<DtmfKey>,
    /// Played after the finish key.
    pub finishvoice: Option<PromptName>,
}

impl NoticeScript {
    /// Every prompt the script plays (each must exist in the application).
    pub fn prompts(&self) -> impl Iterator<Item = (String, &PromptName)> {
        let items = self
            .contents
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                ContentItem::Voice(name) => Some((format!("contents[{i}].content"), name)),
                _ => None,
            });
        items.chain(
            self.finishvoice
                .iter()
                .map(|name| ("finishvoice".to_string(), name)),
        )
    }
}

/// A parsed voice notice request (single or batch), minus the appid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceNotice {
    /// Callees, in the order given, duplicates dropped (one for a single notice).
    pub to: Vec<PhoneNumber>,
    /// Caller id shown to the callee.
    pub from: Option<PhoneNumber>,
    /// Returned in the result callback and CDR.
    pub userdata: Option<String>,
    /// What to play.
    pub script: NoticeScript,
}

impl VoiceNotice {
    /// Parses a `VoiceNotices` body (`batch == false`) or a `BatchVoiceNotices` body.
    pub fn parse(fields: Fields<'_>, batch: bool) -> Result<Self, ParamError> {
        let to = if batch {
            parse_callee_list(fields.req_str("to")?)?
        } else {
            vec![PhoneNumber::parse("to", fields.req_str("to")?)?]
        };
        let from = fields
            .opt_nonempty_str("from")?
            .map(|s| PhoneNumber::parse("from", s))
            .transpose()?;
        let contents = match fields.raw("contents") {
            None => return Err(ParamError::new("missing contents")),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(ParamError::new("missing contents"));
            }
            Some(Value::Array(items)) if items.len() > MAX_CONTENTS => {
                return Err(ParamError::new(format!(
                    "contents must have at most {MAX_CONTENTS} items"
                )));
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| ContentItem::parse(i, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(ParamError::new("contents must be an array")),
        };
        let userdata = parse_userdata(fields, "userdata")?;
        let times = fields.opt_int("times", 1, 3)?.unwrap_or(2) as u8;
        let finishkey = fields
            .opt_nonempty_str("finishkey")?
            .map(|s| DtmfKey::parse("finishkey", s))
            .transpose()?;
        let repeatkey = fields
            .opt_nonempty_str("repeatkey")?
            .map(|s| DtmfKey::parse("repeatkey", s))
            .transpose()?;
        let finishvoice = fields
            .opt_nonempty_str("finishvoice")?
            .map(|s| PromptName::parse("finishvoice", s))
            .transpose()?;
        Ok(Self {
            to,
            from,
            userdata,
            script: NoticeScript {
                contents,
                times,
                finishkey,
                repeatkey,
                finishvoice,
            },
        })
    }
}

/// Reads an optional free-text userdata field (≤ 256 bytes).
pub fn parse_userdata(fields: Fields<'_>, name: &str) -> Result<Option<String>, ParamError> {
    let value = fields.opt_nonempty_str(name)?;
    if let Some(v) = value {
        check_max_bytes(name, v, MAX_USERDATA_BYTES)?;
    }
    Ok(value.map(str::to_string))
}

fn parse_callee_list(list: &str) -> Result<Vec<PhoneNumber>, ParamError> {
    let mut out: Vec<PhoneNumber> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let number = PhoneNumber::parse("to", raw)?;
        if seen.insert(number.clone()) {
            if out.len() == MAX_BATCH_CALLEES {
                return Err(ParamError::new(format!(
                    "to must list at most {MAX_BATCH_CALLEES} numbers"
                )));
            }
            out.push(number);
        }
    }
    if out.is_empty() {
        return Err(ParamError::new("missing to"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value, batch: bool) -> Result<VoiceNotice, String> {
        VoiceNotice::parse(Fields(body.as_object().unwrap()), batch).map_err(|e| e.0)
    }

    #[test]
    fn full_notice() {
        let n = parse(
            json!({"to":"13800100001","from":"01080001001","contents":[{"type":"voice","content":"a.wav"},{"type":"digits","content":"123"},{"type":"money","content":"2.14"},{"type":"time","content":"2013-07-30"},{"type":"number","content":112}],"times":"3","finishkey":"1","repeatkey":"any","finishvoice":"b.wav","userdata":"u"}),
            false,
        )
        .unwrap();
        assert_eq!(n.script.times, 3);
        assert_eq!(n.script.finishkey, Some(DtmfKey::Key('1')));
        assert_eq!(n.script.repeatkey, Some(DtmfKey::Any));
        assert_eq!(n.script.contents[4], ContentItem::Number("112".into()));
        let prompts: Vec<String> = n
            .script
            .prompts()
            .map(|(f, p)| format!("{f}={p}"))
            .collect();
        assert_eq!(prompts, ["contents[0].content=a.wav", "finishvoice=b.wav"]);
    }

    #[test]
    fn field_errors() {
        let base = || json!({"to":"13800100001","contents":[{"type":"digits","content":"1"}]});
        let case = |patch: Value| {
            let mut b = base();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    b.as_object_mut().unwrap().remove(k);
                } else {
                    b[k] = v.clone();
                }
            }
            parse(b, false).unwrap_err()
        };
        assert_eq!(case(json!({"contents": null})), "missing contents");
        assert_eq!(case(json!({"contents": []})), "missing contents");
        assert_eq!(case(json!({"contents": "x"})), "contents must be an array");
        assert_eq!(
            case(json!({"contents": vec![json!({"type":"digits","content":"1"}); 21]})),
            "contents must have at most 20 items"
        );
        assert_eq!(
            case(json!({"contents": [{"type":"song","content":"1"}]})),
            "contents[0].type must be one of voice, time, money, number, digits"
        );
        assert_eq!(
            case(json!({"contents": [{"content":"1"}]})),
            "missing contents[0].type"
        );
        assert_eq!(
            case(json!({"contents": [{"type":"money","content":"1.234"}]})),
            "invalid contents[0].content: \"1.234\" (expected a decimal with at most 2 places)"
        );
        assert_eq!(
            case(json!({"contents": [{"type":"time","content":"2013-02-30"}]})),
            "invalid contents[0].content: \"2013-02-30\" (expected a date YYYY-MM-DD)"
        );
        assert_eq!(case(json!({"to": null})), "missing to");
        assert_eq!(case(json!({"to": 138})), "to must be a string");
        assert_eq!(case(json!({"times": 4})), "times must be 1-3");
        assert_eq!(case(json!({"times": "two"})), "times must be 1-3");
        assert_eq!(
            case(json!({"finishkey": "12"})),
            "finishkey must be one of 0-9 * # or any"
        );
        assert_eq!(
            case(json!({"userdata": "x".repeat(257)})),
            "userdata must be at most 256 bytes"
        );
        assert_eq!(
            case(json!({"from": "abc"})),
            "invalid from: \"abc\" (expected 3–20 ASCII digits, optionally after a leading +)"
        );
    }

    #[test]
    fn batch_list() {
        let n = parse(json!({"to":" 13800100001, 13800100002,13800100001,","contents":[{"type":"digits","content":"1"}]}), true).unwrap();
        assert_eq!(
            n.to.iter().map(PhoneNumber::as_str).collect::<Vec<_>>(),
            ["13800100001", "13800100002"]
        );
        let err = parse(
            json!({"to":"13800100001,12x45","contents":[{"type":"digits","content":"1"}]}),
            true,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "invalid to: \"12x45\" (expected 3–20 ASCII digits, optionally after a leading +)"
        );
        let many: Vec<String> = (0..1001).map(|i| format!("1380000{i:04}")).collect();
        let err = parse(
            json!({"to": many.join(","),"contents":[{"type":"digits","content":"1"}]}),
            true,
        )
        .unwrap_err();
        assert_eq!(err, "to must list at most 1000 numbers");
    }
}

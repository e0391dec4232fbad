//! An application's CTI settings (agents' contract §3.5): where agent events are pushed and
//! in which format, number masking, recording, ring and talk limits, hold music and the
//! web origins allowed to open agent sockets. The same fields are set by the customer
//! (`PATCH …/CtiSettings`) and by the operator (the application PATCH).

use serde_json::Value;

use super::fields::{Fields, ParamError};
use super::phone::printable;
use super::prompt::PromptName;
use super::webhook_url::WebhookUrl;

/// Most web origins an application may list.
pub const MAX_ALLOWED_ORIGINS: usize = 100;

/// The body fields of the CTI settings.
pub const CTI_FIELDS: &[&str] = &[
    "eventUrl",
    "eventFormat",
    "encryptNumber",
    "recordAgentCalls",
    "agentRingTimeout",
    "maxCallDuration",
    "musicOnHold",
    "allowedOrigins",
];

/// How agent events are posted to `eventUrl` (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// `{"type","seq","data"}` JSON (the default).
    #[default]
    Json,
    /// Seed 004's form-encoded call events.
    Astercc,
}

impl EventFormat {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Astercc => "astercc",
        }
    }

    /// The format named `s`, if any.
    pub fn from_word(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "astercc" => Some(Self::Astercc),
            _ => None,
        }
    }
}

/// A change of CTI settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtiPatch {
    /// `Some(None)` clears it.
    pub event_url: Option<Option<WebhookUrl>>,
    /// json or astercc.
    pub event_format: Option<EventFormat>,
    /// Mask users' numbers on agent sockets.
    pub encrypt_number: Option<bool>,
    /// Record agent conversations.
    pub record_agent_calls: Option<bool>,
    /// Seconds an agent leg rings (5–120).
    pub agent_ring_timeout: Option<i64>,
    /// Longest talk in seconds (0 = none, else 60–86400).
    pub max_call_duration: Option<i64>,
    /// `Some(None)`: the built-in music.
    pub music_on_hold: Option<Option<PromptName>>,
    /// Web origins (`scheme://host[:port]`) allowed to open agent sockets; empty = any.
    pub allowed_origins: Option<Vec<String>>,
}

impl CtiPatch {
    /// Parses the CTI fields of `fields` (other fields are the caller's business).
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let event_url = if fields.0.contains_key("eventUrl") {
            Some(
                fields
                    .opt_nonempty_str("eventUrl")?
                    .map(|s| WebhookUrl::parse("eventUrl", s))
                    .transpose()?,
            )
        } else {
            None
        };
        let event_format = fields
            .opt_str("eventFormat")?
            .map(|s| {
                EventFormat::from_word(s).ok_or_else(|| {
                    ParamError::new(format!(
                        "invalid eventFormat: {} (json or astercc)",
                        printable(s)
                    ))
                })
            })
            .transpose()?;
        let max_call_duration = fields.opt_int("maxCallDuration", 0, 86_400)?;
        if max_call_duration.is_some_and(|d| (1..60).contains(&d)) {
            return Err(ParamError::new(
                "maxCallDuration must be 0 (no limit) or 60-86400",
            ));
        }
        let music_on_hold = fields
            .opt_str("musicOnHold")?
            .map(|s| {
                (!s.is_empty())
                    .then(|| PromptName::parse("musicOnHold", s))
                    .transpose()
            })
            .transpose()?;
        Ok(Self {
            event_url,
            event_format,
            encrypt_number: fields.opt_bool("encryptNumber")?,
            record_agent_calls: fields.opt_bool("recordAgentCalls")?,
            agent_ring_timeout: fields.opt_int("agentRingTimeout", 5, 120)?,
            max_call_duration,
            music_on_hold,
            allowed_origins: parse_origins(fields.raw("allowedOrigins"))?,
        })
    }

    /// Whether the change sets nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A web origin as browsers send it in `Origin`: `scheme://host[:port]`, lower case, the
/// scheme's default port left out.
pub fn parse_origin(s: &str) -> Result<String, ParamError> {
    let bad = || {
        ParamError::new(format!(
            "invalid allowedOrigins entry: {} (expected an origin like https://crm.example.com)",
            printable(s)
        ))
    };
    let url = url::Url::parse(s).map_err(|_| bad())?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || !bare || !url.username().is_empty() {
        return Err(bad());
    }
    match url.origin() {
        url::Origin::Tuple(..) => Ok(url.origin().ascii_serialization()),
        url::Origin::Opaque(_) => Err(bad()),
    }
}

fn parse_origins(value: Option<&Value>) -> Result<Option<Vec<String>>, ParamError> {
    let shape = || {
        ParamError::new(format!(
            "allowedOrigins must be an array of at most {MAX_ALLOWED_ORIGINS} strings"
        ))
    };
    let Some(value) = value else { return Ok(None) };
    let items = value.as_array().ok_or_else(shape)?;
    if items.len() > MAX_ALLOWED_ORIGINS {
        return Err(shape());
    }
    let mut origins = Vec::with_capacity(items.len());
    for item in items {
        let origin = parse_origin(item.as_str().ok_or_else(shape)?)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(Some(origins))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<CtiPatch, String> {
        CtiPatch::parse(Fields(body.as_object().unwrap())).map_err(|e| e.0)
    }

    #[test]
    fn fields_and_refusals() {
        let p = parse(json!({"eventUrl":"","eventFormat":"astercc","encryptNumber":true,
            "agentRingTimeout":"30","maxCallDuration":0,"musicOnHold":"","allowedOrigins":["HTTPS://CRM.example.com:443/"]}))
        .unwrap();
        assert_eq!(p.event_url, Some(None));
        assert_eq!(p.event_format, Some(EventFormat::Astercc));
        assert_eq!(p.agent_ring_timeout, Some(30));
        assert_eq!(p.music_on_hold, Some(None));
        assert_eq!(
            p.allowed_origins.unwrap(),
            ["https://crm.example.com".to_string()]
        );
        assert!(parse(json!({})).unwrap().is_empty());
        for (body, msg) in [
            (
                json!({"eventFormat":"xml"}),
                "invalid eventFormat: \"xml\" (json or astercc)",
            ),
            (
                json!({"agentRingTimeout":4}),
                "agentRingTimeout must be 5-120",
            ),
            (
                json!({"maxCallDuration":59}),
                "maxCallDuration must be 0 (no limit) or 60-86400",
            ),
            (
                json!({"eventUrl":"ftp://x"}),
                "eventUrl must be an http or https URL",
            ),
            (
                json!({"allowedOrigins":["https://crm.example.com/page"]}),
                "invalid allowedOrigins entry: \"https://crm.example.com/page\" (expected an origin like https://crm.example.com)",
            ),
            (
                json!({"allowedOrigins":"https://a"}),
                "allowedOrigins must be an array of at most 100 strings",
            ),
            (
                json!({"musicOnHold":"x.mp3"}),
                "invalid musicOnHold: \"x.mp3\" (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)",
            ),
        ] {
            assert_eq!(parse(body.clone()).unwrap_err(), msg, "{body}");
        }
    }
}

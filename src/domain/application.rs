//! Settings of an application (API.md §10): callback URLs, the batched CDR feed and the
//! caller ids it may display.

use serde_json::Value;

use super::cti::{CTI_FIELDS, CtiPatch};
use super::fields::{Fields, ParamError, check_label};
use super::phone::PhoneNumber;
use super::webhook_url::WebhookUrl;

/// Most caller ids an application may list.
pub const MAX_ALLOWED_CALLER_IDS: usize = 1000;
/// Longest application or account name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Fields of an application create (`name` required) or update (all optional). For URLs,
/// `Some(None)` clears the value (`null` or `""` in the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettings {
    /// A label.
    pub name: Option<String>,
    /// Result callbacks of notices and captchas.
    pub notify_url: Option<Option<WebhookUrl>>,
    /// Click-to-call status callbacks.
    pub status_url: Option<Option<WebhookUrl>>,
    /// Click-to-call CDR callbacks.
    pub cdr_url: Option<Option<WebhookUrl>>,
    /// Batched CDR feed.
    pub cdr_feed_url: Option<Option<WebhookUrl>>,
    /// CDRs per feed batch (1–1000).
    pub cdr_batch_size: Option<i64>,
    /// Longest wait before a partial feed batch is sent (0–60000 ms).
    pub cdr_batch_window_ms: Option<i64>,
    /// Caller ids the application may show; empty = any.
    pub allowed_caller_ids: Option<Vec<PhoneNumber>>,
    /// Its CTI settings (agents' contract §3.5).
    pub cti: CtiPatch,
}

impl AppSettings {
    /// The callback URLs set by this change, with their field names.
    pub fn urls(&self) -> Vec<(&'static str, &WebhookUrl)> {
        [
            ("notifyUrl", &self.notify_url),
            ("statusUrl", &self.status_url),
            ("cdrUrl", &self.cdr_url),
            ("cdrFeedUrl", &self.cdr_feed_url),
            ("eventUrl", &self.cti.event_url),
        ]
        .into_iter()
        .filter_map(|(f, u)| u.as_ref().and_then(Option::as_ref).map(|u| (f, u)))
        .collect()
    }

    /// Parses an admin request body; `creating` makes `name` required.
    pub fn parse(fields: Fields<'_>, creating: bool) -> Result<Self, ParamError> {
        let known: Vec<&str> = [
            "name",
            "notifyUrl",
            "statusUrl",
            "cdrUrl",
            "cdrFeedUrl",
            "cdrBatchSize",
            "cdrBatchWindowMs",
            "allowedCallerIds",
        ]
        .into_iter()
        .chain(CTI_FIELDS.iter().copied())
        .collect();
        fields.only(&known)?;
        let name = fields.opt_nonempty_str("name")?;
        if creating && name.is_none() {
            return Err(ParamError::new("missing name"));
        }
        if let Some(name) = name {
            check_label("name", name, MAX_NAME_BYTES)?;
        }
        let url = |key: &str| -> Result<Option<Option<WebhookUrl>>, ParamError> {
            if !fields.0.contains_key(key) {
                return Ok(None);
            }
            Ok(Some(
                fields
                    .opt_nonempty_str(key)?
                    .map(|s| WebhookUrl::parse(key, s))
                    .transpose()?,
            ))
        };
        let allowed_caller_ids = match fields.raw("allowedCallerIds") {
            None => None,
            Some(Value::Array(items)) if items.len() <= MAX_ALLOWED_CALLER_IDS => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str().ok_or_else(|| {
                            ParamError::new("allowedCallerIds must be an array of strings")
                        })
                    })
                    .map(|s| s.and_then(|s| PhoneNumber::parse("allowedCallerIds", s)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(Value::Array(_)) => {
                return Err(ParamError::new(format!(
                    "allowedCallerIds must have at most {MAX_ALLOWED_CALLER_IDS} numbers"
                )));
            }
            Some(_) => {
                return Err(ParamError::new(
                    "allowedCallerIds must be an array of strings",
                ));
            }
        };
        Ok(Self {
            name: name.map(str::to_string),
            notify_url: url("notifyUrl")?,
            status_url: url("statusUrl")?,
            cdr_url: url("cdrUrl")?,
            cdr_feed_url: url("cdrFeedUrl")?,
            cdr_batch_size: fields.opt_int("cdrBatchSize", 1, 1000)?,
            cdr_batch_window_ms: fields.opt_int("cdrBatchWindowMs", 0, 60_000)?,
            allowed_caller_ids,
            cti: CtiPatch::parse(fields)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_and_patch() {
        let body = json!({"name":"shop","notifyUrl":"https://a.example/n","cdrBatchSize":"50","allowedCallerIds":["01012345678"]});
        let s = AppSettings::parse(Fields(body.as_object().unwrap()), true).unwrap();
        assert_eq!(s.cdr_batch_size, Some(50));
        assert_eq!(s.allowed_caller_ids.unwrap().len(), 1);
        assert_eq!(s.status_url, None);
        let patch = json!({"statusUrl": null});
        assert_eq!(
            AppSettings::parse(Fields(patch.as_object().unwrap()), false)
                .unwrap()
                .status_url,
            Some(None)
        );
        for (body, msg) in [
            (json!({}), "missing name"),
            (
                json!({"name":"x","cdrBatchSize":0}),
                "cdrBatchSize must be 1-1000",
            ),
            (
                json!({"name":"x","allowedCallerIds":"1"}),
                "allowedCallerIds must be an array of strings",
            ),
            (
                json!({"name":"x","allowedCallerIds":["x"]}),
                "invalid allowedCallerIds: \"x\" (expected 3–20 ASCII digits, optionally after a leading +)",
            ),
            (
                json!({"name":"x","cdrUrl":"mailto:a@b"}),
                "cdrUrl must be an http or https URL",
            ),
        ] {
            assert_eq!(
                AppSettings::parse(Fields(body.as_object().unwrap()), true)
                    .unwrap_err()
                    .0,
                msg
            );
        }
    }
}

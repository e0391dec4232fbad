//! Callback target URLs given by customers: `http(s)` with a host. Whether the host may be
//! reached (the SSRF guard of API.md §7) is decided by the webhook dispatcher.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::ParamError;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// An absolute `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Accepts `s` if it is an absolute http(s) URL with a host; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParamError> {
        let bad = || ParamError::new(format!("{field} must be an http or https URL"));
        if s.len() > MAX_URL_LEN {
            return Err(ParamError::new(format!(
                "{field} must be at most {MAX_URL_LEN} characters"
            )));
        }
        let url = url::Url::parse(s).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad());
        }
        Ok(Self(url.to_string()))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls() {
        assert!(WebhookUrl::parse("u", "https://example.com/hook?a=1").is_ok());
        assert!(WebhookUrl::parse("u", "http://127.0.0.1:9000/x").is_ok());
        for bad in [
            "ftp://x.com",
            "example.com/x",
            "http://",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(
                WebhookUrl::parse("u", bad).unwrap_err().0,
                "u must be an http or https URL",
                "{bad}"
            );
        }
    }
}

//! The kinds of call the platform places: the `kind` of a CDR (API.md §7 feed, §8 query).

use serde::{Deserialize, Serialize};

/// What a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// A voice notice (§2, §3).
    Notice,
    /// A voice captcha (§4).
    Captcha,
    /// A click-to-call conversation (§6).
    Click2Call,
    /// An agent's conversation (agents' contract §7, §10).
    Agent,
}

impl CallKind {
    /// Every kind.
    pub const ALL: [CallKind; 4] = [
        CallKind::Notice,
        CallKind::Captcha,
        CallKind::Click2Call,
        CallKind::Agent,
    ];

    /// Its name in the contract and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notice => "notice",
            Self::Captcha => "captcha",
            Self::Click2Call => "click2call",
            Self::Agent => "agent",
        }
    }

    /// The kind called `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it is a conversation of several legs (fenced through its first leg).
    pub fn is_conversation(self) -> bool {
        matches!(self, Self::Click2Call | Self::Agent)
    }

    /// The callback kind of its CDR: `result` (§5) or `cdr` (§6.2).
    pub fn cdr_callback(self) -> &'static str {
        match self {
            Self::Notice | Self::Captcha => "result",
            Self::Click2Call | Self::Agent => "cdr",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in CallKind::ALL {
            assert_eq!(CallKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(CallKind::parse("Agent"), None);
    }
}

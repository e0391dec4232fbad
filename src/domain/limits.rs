//! Per-account limits an operator sets (API.md §1a, §10), with their allowed ranges.

use super::fields::{Fields, ParamError};

/// Changes to an account's limits and state; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPatch {
    /// Calls started per second (1–10000).
    pub cps: Option<i64>,
    /// Calls live at once (1–1000000).
    pub max_concurrent_calls: Option<i64>,
    /// Calls waiting in the queue (0–100000000).
    pub max_queued_calls: Option<i64>,
    /// Seconds a callee is rung (10–120).
    pub answer_timeout: Option<i64>,
    /// Enable or disable the account.
    pub enabled: Option<bool>,
}

impl AccountPatch {
    /// Parses `PATCH /admin/accounts/{sid}`.
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        fields.only(&[
            "cps",
            "maxConcurrentCalls",
            "maxQueuedCalls",
            "answerTimeout",
            "enabled",
        ])?;
        Ok(Self {
            cps: fields.opt_int("cps", 1, 10_000)?,
            max_concurrent_calls: fields.opt_int("maxConcurrentCalls", 1, 1_000_000)?,
            max_queued_calls: fields.opt_int("maxQueuedCalls", 0, 100_000_000)?,
            answer_timeout: fields.opt_int("answerTimeout", 10, 120)?,
            enabled: fields.opt_bool("enabled")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges() {
        let ok = json!({"cps": 20, "answerTimeout": "60", "enabled": false});
        let p = AccountPatch::parse(Fields(ok.as_object().unwrap())).unwrap();
        assert_eq!(
            (p.cps, p.answer_timeout, p.enabled, p.max_queued_calls),
            (Some(20), Some(60), Some(false), None)
        );
        for (body, msg) in [
            (json!({"answerTimeout": 5}), "answerTimeout must be 10-120"),
            (json!({"cps": 0}), "cps must be 1-10000"),
            (json!({"enabled": "yes"}), "enabled must be true or false"),
        ] {
            assert_eq!(
                AccountPatch::parse(Fields(body.as_object().unwrap()))
                    .unwrap_err()
                    .0,
                msg
            );
        }
    }
}

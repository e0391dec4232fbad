//! Phone numbers of the contract: 3–20 characters, digits with an optional leading `+`.

use std::fmt;

use super::fields::ParamError;

/// A callee or caller-id number that passed the contract's format rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts `s` if it is a well-formed number; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParamError> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        let ok = (3..=20).contains(&s.len())
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ParamError::new(format!(
                "invalid {field}: {} (expected 3–20 ASCII digits, optionally after a leading +)",
                printable(s)
            )))
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bounded, quoted echo of a bad value for an error message.
pub fn printable(s: &str) -> String {
    let cut: String = s.chars().take(32).collect();
    let ellipsis = if cut.len() < s.len() { "…" } else { "" };
    format!("{:?}", format!("{cut}{ellipsis}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_rule() {
        for ok in [
            "+8613800138000",
            "01080001001",
            "123",
            "12345678901234567890",
        ] {
            assert!(PhoneNumber::parse("to", ok).is_ok(), "{ok}");
        }
        for bad in [
            "12",
            "+",
            "+1",
            "123456789012345678901",
            "138-0013",
            "1 3",
            "١٢٣",
            "++123",
            "📞123",
        ] {
            let err = PhoneNumber::parse("to", bad).unwrap_err();
            assert!(err.0.starts_with("invalid to: "), "{bad}");
        }
    }
}

//! Voice captchas (API.md §4). The code is kept out of `Debug` so it cannot reach a log line.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::{Fields, ParamError};
use super::notice::parse_userdata;
use super::phone::PhoneNumber;

/// A captcha code: 4–8 letters or digits, case-insensitive (kept upper-case).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaptchaCode(String);

impl CaptchaCode {
    /// Accepts 4–8 ASCII letters or digits.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        if (4..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_ascii_uppercase()))
        } else {
            Err(ParamError::new("code must be 4-8 letters or digits"))
        }
    }

    /// The characters to read, in order.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.0.chars()
    }
}

impl fmt::Debug for CaptchaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaptchaCode({} chars)", self.0.len())
    }
}

/// Language the code is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Mandarin (default).
    Zh,
    /// English.
    En,
}

/// What a captcha call reads; stored with the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaScript {
    /// The code.
    pub code: CaptchaCode,
    /// Its language.
    pub lang: Lang,
}

/// A parsed `VoiceCaptchas` request, minus the appid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceCaptcha {
    /// The callee.
    pub to: PhoneNumber,
    /// Caller id shown to the callee.
    pub from: Option<PhoneNumber>,
    /// Returned in the result callback and CDR.
    pub userdata: Option<String>,
    /// What to read.
    pub script: CaptchaScript,
}

impl VoiceCaptcha {
    /// Parses a `VoiceCaptchas` body.
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let code = CaptchaCode::parse(fields.req_str("code")?)?;
        let to = PhoneNumber::parse("to", fields.req_str("to")?)?;
        let from = fields
            .opt_nonempty_str("from")?
            .map(|s| PhoneNumber::parse("from", s))
            .transpose()?;
        let lang = match fields.opt_nonempty_str("lang")? {
            None | Some("zh") => Lang::Zh,
            Some("en") => Lang::En,
            Some(_) => return Err(ParamError::new("lang must be zh or en")),
        };
        let userdata = parse_userdata(fields, "userdata")?;
        Ok(Self {
            to,
            from,
            userdata,
            script: CaptchaScript { code, lang },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules() {
        let ok = json!({"code":"ab12","to":"13800138000","lang":"en"});
        let c = VoiceCaptcha::parse(Fields(ok.as_object().unwrap())).unwrap();
        assert_eq!(c.script.code.chars().collect::<String>(), "AB12");
        assert_eq!(c.script.lang, Lang::En);
        assert!(!format!("{c:?}").contains("AB12"));
        for (body, msg) in [
            (json!({"to":"13800138000"}), "missing code"),
            (
                json!({"code":"abc","to":"13800138000"}),
                "code must be 4-8 letters or digits",
            ),
            (
                json!({"code":"abcdefghi","to":"13800138000"}),
                "code must be 4-8 letters or digits",
            ),
            (
                json!({"code":"ab-1","to":"13800138000"}),
                "code must be 4-8 letters or digits",
            ),
            (json!({"code":"1234"}), "missing to"),
            (
                json!({"code":"1234","to":"13800138000","lang":"fr"}),
                "lang must be zh or en",
            ),
        ] {
            assert_eq!(
                VoiceCaptcha::parse(Fields(body.as_object().unwrap()))
                    .unwrap_err()
                    .0,
                msg
            );
        }
    }
}

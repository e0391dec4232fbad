//! An inbound number's routing (agents' contract §3.3): what `PUT …/Numbers/{number}`
//! carries — a label, the welcome prompt played once, and the route.

use serde_json::{Value, json};

use super::fields::{Fields, ParamError, check_label};
use super::prompt::PromptName;
use super::route::{Names, Route};

/// Longest number label, in characters.
pub const MAX_NUMBER_NAME_CHARS: usize = 64;

/// A number's routing, whole (a `PUT` replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRouting {
    /// A label (≤ 64 characters, may be empty).
    pub name: String,
    /// Played once before the route (`None`: nothing).
    pub welcome_prompt: Option<PromptName>,
    /// Where the caller goes.
    pub route: Route,
}

impl NumberRouting {
    /// Parses a `PUT` body (`route` required).
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        fields.only(&["name", "welcomePrompt", "route"])?;
        let name = fields.opt_str("name")?.unwrap_or_default();
        if name.chars().count() > MAX_NUMBER_NAME_CHARS {
            return Err(ParamError::new(format!(
                "name must be at most {MAX_NUMBER_NAME_CHARS} characters"
            )));
        }
        check_label("name", name, usize::MAX)?;
        let welcome_prompt = fields
            .opt_nonempty_str("welcomePrompt")?
            .map(|p| PromptName::parse("welcomePrompt", p))
            .transpose()?;
        let route = Route::parse(
            fields
                .raw("route")
                .ok_or_else(|| ParamError::new("missing route"))?,
        )?;
        Ok(Self {
            name: name.to_string(),
            welcome_prompt,
            route,
        })
    }

    /// Every queue, agent and prompt named, the welcome prompt included.
    pub fn names(&self) -> Names<'_> {
        let mut names = self.route.names();
        names.prompts.extend(&self.welcome_prompt);
        names
    }

    /// The contract's fields (without the number and times).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "welcomePrompt": self.welcome_prompt.as_ref().map_or("", PromptName::as_str),
            "route": self.route.to_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_parses_and_names_its_prompts() {
        let body = json!({"name":"hotline","welcomePrompt":"hi.wav",
            "route":{"type":"hangup","prompt":"closed.wav"}});
        let r = NumberRouting::parse(Fields(body.as_object().unwrap())).unwrap();
        assert_eq!(r.to_json(), body);
        assert_eq!(r.names().prompts.len(), 2);
        for (body, msg) in [
            (json!({}), "missing route"),
            (
                json!({"route":{"type":"hangup"},"welcomePrompt":"x"}),
                "invalid welcomePrompt: \"x\" (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)",
            ),
            (
                json!({"route":{"type":"hangup"},"name":"a\u{0}"}),
                "name must not contain control characters",
            ),
        ] {
            let err = NumberRouting::parse(Fields(body.as_object().unwrap())).unwrap_err();
            assert_eq!(err.0, msg);
        }
    }
}

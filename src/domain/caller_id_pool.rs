//! Caller-id pools (agents' contract §3.4): the numbers outbound agent legs show, taken
//! round-robin; one pool of an application may be its default.

use serde_json::Value;

use super::fields::{Fields, ParamError, check_label};
use super::phone::PhoneNumber;

/// Most numbers in one pool.
pub const MAX_POOL_NUMBERS: usize = 1000;
/// Longest pool name, in characters.
pub const MAX_POOL_NAME_CHARS: usize = 64;

/// A pool's fields from a create (`name` and `numbers` required) or a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSpec {
    /// A label (1–64 characters).
    pub name: Option<String>,
    /// 1–1000 numbers, without repeats.
    pub numbers: Option<Vec<PhoneNumber>>,
    /// Whether this is the application's default pool.
    pub default: Option<bool>,
}

impl PoolSpec {
    /// Parses a create (`creating`) or change body.
    pub fn parse(fields: Fields<'_>, creating: bool) -> Result<Self, ParamError> {
        fields.only(&["name", "numbers", "default"])?;
        let name = fields.opt_str("name")?;
        if let Some(name) = name {
            if name.is_empty() || name.chars().count() > MAX_POOL_NAME_CHARS {
                return Err(ParamError::new(format!(
                    "name must be 1-{MAX_POOL_NAME_CHARS} characters"
                )));
            }
            check_label("name", name, usize::MAX)?;
        }
        let numbers = match fields.raw("numbers") {
            None => None,
            Some(value) => Some(parse_numbers(value)?),
        };
        if creating && name.is_none() {
            return Err(ParamError::new("missing name"));
        }
        if creating && numbers.is_none() {
            return Err(ParamError::new("missing numbers"));
        }
        Ok(Self {
            name: name.map(str::to_string),
            numbers,
            default: fields.opt_bool("default")?,
        })
    }
}

fn parse_numbers(value: &Value) -> Result<Vec<PhoneNumber>, ParamError> {
    let shape = || {
        ParamError::new(format!(
            "numbers must be an array of 1-{MAX_POOL_NUMBERS} phone numbers"
        ))
    };
    let items = value.as_array().ok_or_else(shape)?;
    if items.is_empty() || items.len() > MAX_POOL_NUMBERS {
        return Err(shape());
    }
    let mut numbers: Vec<PhoneNumber> = Vec::with_capacity(items.len());
    for item in items {
        let number = PhoneNumber::parse("numbers", item.as_str().ok_or_else(shape)?)?;
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pools() {
        let parse = |body: Value, creating| {
            PoolSpec::parse(Fields(body.as_object().unwrap()), creating).map_err(|e| e.0)
        };
        let p = parse(
            json!({"name":"hq","numbers":["01088880000","01088880000","01088880001"],"default":true}),
            true,
        )
        .unwrap();
        assert_eq!(p.numbers.unwrap().len(), 2);
        assert_eq!(p.default, Some(true));
        assert!(parse(json!({"default":false}), false).is_ok());
        for (body, msg) in [
            (json!({"numbers":["01088880000"]}), "missing name"),
            (json!({"name":"x"}), "missing numbers"),
            (
                json!({"name":"x","numbers":[]}),
                "numbers must be an array of 1-1000 phone numbers",
            ),
            (
                json!({"name":"x","numbers":["abc"]}),
                "invalid numbers: \"abc\" (expected 3–20 ASCII digits, optionally after a leading +)",
            ),
            (
                json!({"name":"","numbers":["010"]}),
                "name must be 1-64 characters",
            ),
        ] {
            assert_eq!(parse(body.clone(), true).unwrap_err(), msg, "{body}");
        }
    }
}

//! Reading the fields of a JSON request body with the contract's error messages
//! (`missing contents`, `times must be 1-3`, …). Every parser in `domain/` goes through
//! here, so a field of the wrong type always gets the same kind of message.

use serde_json::{Map, Value};

/// A parameter error; the text is the `statusmsg` and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

impl ParamError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The top-level object of a request body.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// Refuses a field not in `known` (the operator API's bodies: a misspelt limit must
    /// not be ignored in silence; customer requests ignore unknown fields, as the contract
    /// says).
    pub fn only(&self, known: &[&str]) -> Result<(), ParamError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(ParamError::new(format!(
                "unknown field {} (known: {})",
                super::phone::printable(unknown),
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The raw value of a field; JSON `null` counts as absent.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// An optional string field; any other JSON type is an error.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ParamError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ParamError::new(format!("{name} must be a string"))),
        }
    }

    /// An optional string field where `""` also means absent.
    pub fn opt_nonempty_str(&self, name: &str) -> Result<Option<&'a str>, ParamError> {
        Ok(self.opt_str(name)?.filter(|s| !s.is_empty()))
    }

    /// A required, non-empty string field.
    pub fn req_str(&self, name: &str) -> Result<&'a str, ParamError> {
        self.opt_nonempty_str(name)?
            .ok_or_else(|| ParamError::new(format!("missing {name}")))
    }

    /// An optional whole number given as a JSON number or a numeric string, within
    /// `min..=max`; `""` means absent.
    pub fn opt_int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ParamError> {
        let out_of_range = || ParamError::new(format!("{name} must be {min}-{max}"));
        let n = match self.raw(name) {
            None => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| out_of_range())?,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(out_of_range)?,
            Some(_) => return Err(out_of_range()),
        };
        if (min..=max).contains(&n) {
            Ok(Some(n))
        } else {
            Err(out_of_range())
        }
    }
}

/// Checks a label (an account's or application's name): at most `max` bytes and no
/// control characters (names are shown on screens and in logs, and U+0000 cannot be stored).
pub fn check_label(field: &str, value: &str, max: usize) -> Result<(), ParamError> {
    if value.len() > max {
        return Err(ParamError::new(format!(
            "{field} must be at most {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ParamError::new(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

impl Fields<'_> {
    /// An optional boolean (`true`/`false`, also as strings).
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ParamError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(ParamError::new(format!("{name} must be true or false"))),
        }
    }
}

/// Checks a free-text field's size in bytes (userdata and the like).
pub fn check_max_bytes(name: &str, value: &str, max: usize) -> Result<(), ParamError> {
    if value.len() > max {
        return Err(ParamError::new(format!(
            "{name} must be at most {max} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_name_the_field() {
        let body = json!({"a": 5, "b": "x", "n": "2", "m": 7, "e": ""});
        let f = Fields(body.as_object().unwrap());
        assert_eq!(f.req_str("zz").unwrap_err().0, "missing zz");
        assert_eq!(f.req_str("e").unwrap_err().0, "missing e");
        assert_eq!(f.opt_str("a").unwrap_err().0, "a must be a string");
        assert_eq!(f.opt_int("n", 1, 3).unwrap(), Some(2));
        assert_eq!(f.opt_int("m", 1, 3).unwrap_err().0, "m must be 1-3");
        assert_eq!(f.opt_int("b", 1, 3).unwrap_err().0, "b must be 1-3");
        assert_eq!(f.opt_int("e", 1, 3).unwrap(), None);
    }
}

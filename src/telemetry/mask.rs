//! Phone numbers in logs: only the last four digits are shown, so a log line can be
//! matched with a customer's report without spreading their numbers.

use std::fmt;

/// Shows a phone number as `*******1234` (its length kept, all but the last four
/// characters starred; four or fewer characters are all starred).
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.chars().count();
        let shown = if count > 4 { 4 } else { 0 };
        for (i, c) in self.0.chars().enumerate() {
            if i + shown < count {
                f.write_str("*")?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Masked;

    #[test]
    fn keeps_only_the_last_four() {
        assert_eq!(Masked("13800009995").to_string(), "*******9995");
        assert_eq!(Masked("+8613800009995").to_string(), "**********9995");
        assert_eq!(Masked("12345").to_string(), "*2345");
        assert_eq!(Masked("1234").to_string(), "****");
        assert_eq!(Masked("").to_string(), "");
    }
}

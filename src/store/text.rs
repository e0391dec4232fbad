//! Free text as the databases keep it. PostgreSQL's `text` cannot hold U+0000, which a
//! customer's free text (userdata) may contain; both backends therefore store free text
//! with U+0000 escaped reversibly — as U+10FFFF followed by `0`, U+10FFFF itself doubled —
//! and reading undoes it, so a callback carries exactly what the customer sent.

use std::borrow::Cow;

/// The escape character: a noncharacter no text exchanged with us should hold (it is
/// doubled when it does).
const ESCAPE: char = '\u{10FFFF}';

/// `text` as stored.
pub fn encode(text: &str) -> Cow<'_, str> {
    if !text.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\0' => {
                out.push(ESCAPE);
                out.push('0');
            }
            ESCAPE => {
                out.push(ESCAPE);
                out.push(ESCAPE);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Stored text as it was given to [`encode`].
pub fn decode(stored: String) -> String {
    if !stored.contains(ESCAPE) {
        return stored;
    }
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(ESCAPE) => out.push(ESCAPE),
            // Not written by `encode` (a row from before the escape existed): kept.
            Some(other) => {
                out.push(ESCAPE);
                out.push(other);
            }
            None => out.push(ESCAPE),
        }
    }
    out
}

/// Bytes someone else sent (a receiver's answer, an error about it) as text any database
/// keeps and any screen shows: invalid UTF-8 becomes U+FFFD, control characters other than
/// tab and line breaks become `\u{…}` escapes, and at most `max` bytes of input are read.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == ESCAPE {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A nullable free-text column, decoded as it is read (`#[sqlx(try_from = "StoredText")]`
/// on an `Option<String>` field).
#[derive(Debug)]
pub struct StoredText(Option<String>);

impl From<StoredText> for Option<String> {
    fn from(text: StoredText) -> Self {
        text.0.map(decode)
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for StoredText
where
    Option<String>: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <Option<String> as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <Option<String> as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for StoredText
where
    Option<String>: sqlx::Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(StoredText(
            <Option<String> as sqlx::Decode<'r, DB>>::decode(value)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nul_is_escaped_and_restored() {
        assert_eq!(encode("a\0b"), "a\u{10FFFF}0b");
        assert_eq!(encode("plain"), Cow::Borrowed("plain"));
        assert_eq!(decode("a\u{10FFFF}0b".into()), "a\0b");
        assert_eq!(decode("x\u{10FFFF}y".into()), "x\u{10FFFF}y");
    }

    #[test]
    fn printable_escapes_controls_and_bad_bytes() {
        assert_eq!(
            printable(b"ok\0\x01\n\xff", 100),
            "ok\\u{0}\\u{1}\n\u{fffd}"
        );
        assert_eq!(printable(b"abcdef", 3), "abc");
    }

    proptest! {
        #[test]
        fn printable_holds_no_nul(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(!printable(&bytes, 100).contains('\0'));
        }


        #[test]
        fn round_trip(text in "(\\PC|\u{0}|\u{10FFFF}|0)*") {
            let stored = encode(&text);
            prop_assert!(!stored.contains('\0'));
            prop_assert_eq!(decode(stored.into_owned()), text);
        }
    }
}

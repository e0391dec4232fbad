//! Events (`text/event-plain` bodies, ESL.md §3): url-decoded headers, an optional body,
//! and typed access to what the orchestrator needs.

use std::sync::{LazyLock, OnceLock};

use super::codec::{decode_into, url_encode_into};

/// A header name the hot paths look up, with its searcher for `\n<name>:` made once (the
/// statics below).
pub struct Known {
    name: &'static str,
    line: LazyLock<memchr::memmem::Finder<'static>>,
}

/// Declares each `STATIC = "Header-Name";` as a [`Known`] header.
macro_rules! known {
    ($($header:ident = $name:literal;)*) => {$(
        #[doc = concat!("`", $name, "`.")]
        pub static $header: Known = Known {
            name: $name,
            line: LazyLock::new(|| {
                memchr::memmem::Finder::new(concat!("\n", $name, ":").as_bytes())
            }),
        };
    )*};
}

known! {
    EVENT_NAME = "Event-Name";
    UNIQUE_ID = "Unique-ID";
    JOB_UUID = "Job-UUID";
    HANGUP_CAUSE = "Hangup-Cause";
    DTMF_DIGIT = "DTMF-Digit";
    APPLICATION_UUID = "Application-UUID";
    EVENT_DATE_TIMESTAMP = "Event-Date-Timestamp";
    EVENT_SEQUENCE = "Event-Sequence";
    CHANNEL_NAME = "Channel-Name";
    ANSWER_UEPOCH = "variable_answer_uepoch";
    SIP_TERM_STATUS = "variable_sip_term_status";
    PROTO_HANGUP_CAUSE = "variable_proto_specific_hangup_cause";
}

/// One event. It keeps its header block as received (url-encoded, `Name: value` lines):
/// [`get_exact`](Self::get_exact) finds a [`Known`] header with one SIMD search and
/// [`get`](Self::get) any header by walking the lines; both hand out the value itself
/// when it has no `%XX` escapes, which is what the orchestrator's lookups (event name,
/// uuid, cause, digits, …) meet. The full decoded index is built only when something needs
/// it (an escaped value, a case-insensitive lookup, iterating every header).
#[derive(Default)]
pub struct Event {
    /// The header block in wire form, each line ending in `\n`.
    raw: String,
    index: OnceLock<Index>,
    /// The event's own body (BACKGROUND_JOB output, …).
    pub body: Option<String>,
}

/// `(name start, name end)` in `raw`, `(value start, value end)` in `raw` or, when the
/// flag is set (the value had escapes), in `decoded`.
type IndexedField = ((u32, u32), (u32, u32), bool);

/// Every header, decoded.
#[derive(Default)]
struct Index {
    decoded: String,
    fields: Vec<IndexedField>,
}

impl Clone for Event {
    fn clone(&self) -> Self {
        Event {
            raw: self.raw.clone(),
            index: OnceLock::new(),
            body: self.body.clone(),
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.headers().eq(other.headers()) && self.body == other.body
    }
}

impl Eq for Event {}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

impl Event {
    /// Parses the body of a `text/event-plain` message.
    pub fn parse_plain(bytes: &[u8]) -> Event {
        Self::parse_plain_owned(bytes.to_vec())
    }

    /// Parses the body of a `text/event-plain` message, keeping its buffer.
    pub fn parse_plain_owned(bytes: Vec<u8>) -> Event {
        static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
        let mut raw = match String::from_utf8(bytes) {
            Ok(raw) => raw,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let head_len = BLANK_LINE.find(raw.as_bytes()).map_or(raw.len(), |i| i + 1);
        // A body's length is the head's last line (FreeSWITCH writes it there).
        let head = &raw[..head_len];
        let last_line = head
            .trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .unwrap_or_default();
        let length = last_line
            .strip_prefix("Content-Length:")
            .and_then(|n| n.trim().parse::<usize>().ok());
        let body = length.map(|length| {
            let rest = &raw[head_len..];
            let rest = rest.strip_prefix('\n').unwrap_or(rest);
            let end = (0..=length.min(rest.len()))
                .rev()
                .find(|i| rest.is_char_boundary(*i))
                .unwrap_or(0);
            rest[..end].to_string()
        });
        raw.truncate(head_len);
        if !raw.is_empty() && !raw.ends_with('\n') {
            raw.push('\n');
        }
        Event {
            raw,
            index: OnceLock::new(),
            body,
        }
    }

    /// An empty event with room for `bytes` of headers (the sandbox's events are a few KB).
    pub fn with_capacity(bytes: usize) -> Self {
        Event {
            raw: String::with_capacity(bytes),
            ..Event::default()
        }
    }

    /// Appends a header (the sandbox builds events with this); empty values are left out,
    /// as FreeSWITCH leaves them out.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        if value.is_empty() {
            return;
        }
        self.raw.push_str(name.as_ref());
        self.raw.push_str(": ");
        url_encode_into(value, &mut self.raw);
        self.raw.push('\n');
        self.index = OnceLock::new();
    }

    /// Every header as (name, decoded value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let index = self.index();
        index.fields.iter().map(move |&(name, value, escaped)| {
            let text = if escaped { &index.decoded } else { &self.raw };
            (
                &self.raw[name.0 as usize..name.1 as usize],
                &text[value.0 as usize..value.1 as usize],
            )
        })
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let raw = self.raw.as_bytes();
            let mut index = Index {
                decoded: String::new(),
                fields: Vec::with_capacity(64),
            };
            let mut decoded = Vec::new();
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', raw) {
                let line = &raw[start..end];
                let line_start = start;
                start = end + 1;
                if line.is_empty() {
                    continue;
                }
                let colon = line.iter().position(|b| *b == b':').unwrap_or(line.len());
                let (name_start, name_end) = trimmed(line, 0, colon);
                let mut value_start = (colon + 1).min(line.len());
                if line.get(value_start) == Some(&b' ') {
                    value_start += 1;
                }
                let value = &line[value_start..];
                let name = span(line_start + name_start, line_start + name_end);
                index.fields.push(if value.contains(&b'%') {
                    let from = decoded.len();
                    decode_into(value, &mut decoded);
                    (name, span(from, decoded.len()), true)
                } else {
                    (name, span(line_start + value_start, end), false)
                });
            }
            index.decoded = match String::from_utf8(decoded) {
                Ok(text) => text,
                // Escapes that decode to invalid UTF-8 (rare): re-decode value by value, lossily.
                Err(e) => {
                    let bytes = e.into_bytes();
                    let mut text = String::new();
                    for field in index.fields.iter_mut().filter(|f| f.2) {
                        let from = text.len();
                        text.push_str(&String::from_utf8_lossy(
                            &bytes[field.1.0 as usize..field.1.1 as usize],
                        ));
                        field.1 = span(from, text.len());
                    }
                    text
                }
            };
            index
        })
    }

    /// Serializes as a `text/event-plain` body (the sandbox's side).
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut out =
            String::with_capacity(self.raw.len() + 32 + self.body.as_ref().map_or(0, String::len));
        for line in self
            .raw
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("Content-Length:"))
        {
            out.push_str(line);
        }
        match &self.body {
            Some(body) => {
                out.push_str(&format!("Content-Length: {}\n\n", body.len()));
                out.push_str(body);
            }
            None => out.push('\n'),
        }
        out.into_bytes()
    }

    /// A known header's decoded value (the quick lookup of the hot paths: one SIMD search
    /// for its line, no second search unless the value has escapes).
    pub fn get_exact(&self, header: &Known) -> Option<&str> {
        match self.find_known(header) {
            Some(value) if !value.contains('%') => Some(value),
            Some(_) => self.get(header.name),
            None => None,
        }
    }

    /// The raw (still encoded) value of the first line named exactly `header`.
    fn find_known(&self, header: &Known) -> Option<&str> {
        let raw = self.raw.as_bytes();
        let name = header.name.as_bytes();
        let after_colon = if raw.starts_with(name) && raw.get(name.len()) == Some(&b':') {
            name.len() + 1
        } else {
            // The match starts at the line's `\n`; values never hold a raw one.
            header.line.find(raw)? + 1 + name.len() + 1
        };
        Some(self.value_from(after_colon))
    }

    /// The raw value of the line whose name and `:` end at `after_colon`: one leading
    /// space skipped, up to the end of the line.
    fn value_from(&self, after_colon: usize) -> &str {
        let raw = self.raw.as_bytes();
        let start = (after_colon + usize::from(raw.get(after_colon) == Some(&b' '))).min(raw.len());
        let end = memchr::memchr(b'\n', &raw[start..]).map_or(raw.len(), |i| start + i);
        &self.raw[start..end]
    }

    /// A header's decoded value. Names match as FreeSWITCH writes them; a name in another
    /// case is found too (through the slower full index).
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.index.get().is_none() {
            match self.find_raw(name) {
                Some(value) if !value.contains('%') => return Some(value),
                Some(_) => {}
                None if !self.has_name_ignoring_case(name) => return None,
                None => {}
            }
        }
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether some line is named `name` in any case (without building the index).
    fn has_name_ignoring_case(&self, name: &str) -> bool {
        self.raw.split('\n').any(|line| {
            line.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
    }

    /// The raw (still encoded) value of the first line named exactly `name`. Lines are
    /// walked from the top (the headers read most, name and uuid, come first).
    fn find_raw(&self, name: &str) -> Option<&str> {
        let raw = self.raw.as_bytes();
        let needle = name.as_bytes();
        let mut at = 0;
        while at < raw.len() {
            let end = memchr::memchr(b'\n', &raw[at..]).map_or(raw.len(), |i| at + i);
            let line = &raw[at..end];
            if line.len() > needle.len()
                && line[0] == needle[0]
                && line[needle.len()] == b':'
                && line.starts_with(needle)
            {
                return Some(self.value_from(at + needle.len() + 1));
            }
            at = end + 1;
        }
        None
    }

    /// `Event-Name`.
    pub fn name(&self) -> &str {
        self.get_exact(&EVENT_NAME).unwrap_or_default()
    }

    /// `Unique-ID` of the channel (channel events).
    pub fn unique_id(&self) -> Option<&str> {
        self.get_exact(&UNIQUE_ID)
    }

    /// `Job-UUID` (BACKGROUND_JOB).
    pub fn job_uuid(&self) -> Option<&str> {
        self.get_exact(&JOB_UUID)
    }

    /// `Hangup-Cause`.
    pub fn hangup_cause(&self) -> Option<&str> {
        self.get_exact(&HANGUP_CAUSE)
    }

    /// `Answer-State` (ringing, early, answered, hangup).
    pub fn answer_state(&self) -> Option<&str> {
        self.get("Answer-State")
    }

    /// `DTMF-Digit` (DTMF).
    pub fn dtmf_digit(&self) -> Option<&str> {
        self.get_exact(&DTMF_DIGIT)
    }

    /// `Application` (CHANNEL_EXECUTE[_COMPLETE]).
    pub fn application(&self) -> Option<&str> {
        self.get("Application")
    }

    /// `Application-Response` (CHANNEL_EXECUTE_COMPLETE).
    pub fn application_response(&self) -> Option<&str> {
        self.get("Application-Response")
    }

    /// `Application-UUID`: the `event-uuid` a sendmsg set.
    pub fn application_uuid(&self) -> Option<&str> {
        self.get_exact(&APPLICATION_UUID)
    }

    /// A channel variable (`variable_<name>`).
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.get(&format!("variable_{name}"))
    }

    /// A numeric channel variable (`variable_billsec`, `variable_answer_epoch`, …).
    pub fn variable_i64(&self, name: &str) -> Option<i64> {
        self.variable(name).and_then(|v| v.trim().parse().ok())
    }

    /// `Event-Date-Timestamp` (the media server's clock) in Unix milliseconds.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.get_exact(&EVENT_DATE_TIMESTAMP)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|us| us / 1000)
    }

    /// `Event-Sequence`, the authoritative order of events.
    pub fn sequence(&self) -> Option<u64> {
        self.get_exact(&EVENT_SEQUENCE).and_then(|v| v.parse().ok())
    }
}

fn span(start: usize, end: usize) -> (u32, u32) {
    (start as u32, end as u32)
}

/// `(start, end)` of `line[from..to]` without surrounding ASCII whitespace.
fn trimmed(line: &[u8], from: usize, to: usize) -> (usize, usize) {
    let part = &line[from..to];
    let start = part
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(part.len());
    let end = part
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    (from + start, from + end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_job_with_body() {
        let raw = b"Event-Name: BACKGROUND_JOB\nJob-UUID: 6c5c\nJob-Command-Arg: loopback/9664%20%26park()\nContent-Length: 41\n\n+OK cedb5c30-5f61-49e8-b05a-edc33dd336c8\n";
        let e = Event::parse_plain(raw);
        assert_eq!(e.name(), "BACKGROUND_JOB");
        assert_eq!(e.get("Job-Command-Arg"), Some("loopback/9664 &park()"));
        assert_eq!(
            e.body.as_deref(),
            Some("+OK cedb5c30-5f61-49e8-b05a-edc33dd336c8\n")
        );
        assert_eq!(Event::parse_plain(&e.encode_plain()), e);
    }

    #[test]
    fn known_headers_are_found_on_their_own_line_only() {
        let e = Event::parse_plain(b"Event-Name: CHANNEL_EXECUTE_COMPLETE\nOther-Unique-ID: no\nUnique-IDs: no\nUnique-ID:  two-spaces\nUnique-ID: second\nApplication-UUID: g1r2\nvariable_sip_term_status: 4%30%34\nChannel-Name:\n\n");
        assert_eq!(e.name(), "CHANNEL_EXECUTE_COMPLETE");
        assert_eq!(e.unique_id(), Some(" two-spaces"));
        assert_eq!(e.application_uuid(), Some("g1r2"));
        assert_eq!(e.get_exact(&SIP_TERM_STATUS), Some("404"));
        assert_eq!(e.get_exact(&CHANNEL_NAME), Some(""));
        assert_eq!(e.job_uuid(), None);
        let last = Event::parse_plain(b"Event-Name: DTMF\nDTMF-Digit: 5");
        assert_eq!(last.dtmf_digit(), Some("5"));
        assert_eq!(Event::parse_plain(b"").name(), "");
    }

    #[test]
    fn variables() {
        let e = Event::parse_plain(b"Event-Name: CHANNEL_HANGUP_COMPLETE\nvariable_billsec: 3\nvariable_answer_epoch: 1795242704\n\n");
        assert_eq!(e.variable_i64("billsec"), Some(3));
        assert_eq!(e.variable("ANSWER_EPOCH"), Some("1795242704"));
        assert_eq!(e.variable("billmsec"), None);
        assert_eq!(e.body, None);
    }
}

//! Events (`text/event-plain` bodies, ESL.md §3): url-decoded headers, an optional body,
//! and typed access to what the orchestrator needs.

use super::codec::{decode_into, url_encode};

/// One event. Its text is the received header block itself; only values that contain
/// `%XX` escapes are decoded, into a side buffer. So parsing an event copies almost
/// nothing and allocates twice, not twice per header.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Event {
    raw: String,
    decoded: String,
    fields: Vec<Field>,
    /// The event's own body (BACKGROUND_JOB output, …).
    pub body: Option<String>,
}

/// Where one header's name and value are.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
    /// The value is in `decoded`, not in `raw`.
    escaped: bool,
}

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
        let raw = match String::from_utf8(bytes) {
            Ok(raw) => raw,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let head_len = memchr::memmem::find(raw.as_bytes(), b"\n\n").unwrap_or(raw.len());
        let head = &raw.as_bytes()[..head_len];
        let mut decoded = Vec::new();
        let mut fields = Vec::with_capacity(64);
        let mut content_length = None;
        // One pass finds every line end, name/value colon and escape: values never hold a
        // raw ':' or '\n' (FreeSWITCH encodes both), so the first ':' of a line ends its name.
        let (mut line_start, mut colon, mut escaped) = (0usize, None::<usize>, false);
        for pos in memchr::memchr3_iter(b'\n', b':', b'%', head).chain([head_len]) {
            match head.get(pos).copied().unwrap_or(b'\n') {
                b':' if colon.is_none() => colon = Some(pos),
                b'%' if colon.is_some() => escaped = true,
                b'\n' => {
                    let (start, end) = (line_start, pos);
                    let colon_at = colon.take().unwrap_or(end);
                    let was_escaped = std::mem::take(&mut escaped);
                    line_start = pos + 1;
                    if start >= end {
                        continue;
                    }
                    let (name_start, name_end) = trimmed(head, start, colon_at);
                    let mut value_start = (colon_at + 1).min(end);
                    if head.get(value_start) == Some(&b' ') && value_start < end {
                        value_start += 1;
                    }
                    let value = &head[value_start..end];
                    if &head[name_start..name_end] == b"Content-Length" {
                        content_length = std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.trim().parse::<usize>().ok());
                    }
                    let name = span(name_start, name_end);
                    fields.push(if was_escaped {
                        let from = decoded.len();
                        decode_into(value, &mut decoded);
                        Field {
                            name,
                            value: span(from, decoded.len()),
                            escaped: true,
                        }
                    } else {
                        Field {
                            name,
                            value: span(value_start, end),
                            escaped: false,
                        }
                    });
                }
                _ => {}
            }
        }
        let body = content_length.and_then(|n| {
            raw.get(head_len + 2..)
                .map(|rest| rest.get(..n).unwrap_or(rest).to_string())
        });
        let decoded = match String::from_utf8(decoded) {
            Ok(decoded) => decoded,
            // A value whose escapes decode to invalid UTF-8 (rare): rebuild lossily.
            Err(e) => return Self::rebuilt(&raw, e.as_bytes(), &fields, body),
        };
        Event {
            raw,
            decoded,
            fields,
            body,
        }
    }

    fn rebuilt(raw: &str, decoded: &[u8], fields: &[Field], body: Option<String>) -> Event {
        let mut event = Event {
            body,
            ..Event::default()
        };
        for f in fields {
            let name = &raw[f.name.0 as usize..f.name.1 as usize];
            let value = if f.escaped {
                String::from_utf8_lossy(&decoded[f.value.0 as usize..f.value.1 as usize])
                    .into_owned()
            } else {
                raw[f.value.0 as usize..f.value.1 as usize].to_string()
            };
            event.push(name, value);
        }
        event
    }

    /// Appends a header (the sandbox builds events with this).
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let start = self.raw.len();
        self.raw.push_str(name.as_ref());
        let middle = self.raw.len();
        self.raw.push_str(value.as_ref());
        self.fields.push(Field {
            name: span(start, middle),
            value: span(middle, self.raw.len()),
            escaped: false,
        });
    }

    /// Every header as (name, decoded value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|f| {
            let value_text = if f.escaped { &self.decoded } else { &self.raw };
            (
                &self.raw[f.name.0 as usize..f.name.1 as usize],
                &value_text[f.value.0 as usize..f.value.1 as usize],
            )
        })
    }

    /// Serializes as a `text/event-plain` body (the sandbox's side).
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut out = String::with_capacity(self.raw.len() * 2);
        for (name, value) in self
            .headers()
            .filter(|(n, v)| !v.is_empty() && !n.eq_ignore_ascii_case("Content-Length"))
        {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&url_encode(value));
            out.push('\n');
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

    /// A header value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// `Event-Name`.
    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or_default()
    }

    /// `Unique-ID` of the channel (channel events).
    pub fn unique_id(&self) -> Option<&str> {
        self.get("Unique-ID")
    }

    /// `Job-UUID` (BACKGROUND_JOB).
    pub fn job_uuid(&self) -> Option<&str> {
        self.get("Job-UUID")
    }

    /// `Hangup-Cause`.
    pub fn hangup_cause(&self) -> Option<&str> {
        self.get("Hangup-Cause")
    }

    /// `Answer-State` (ringing, early, answered, hangup).
    pub fn answer_state(&self) -> Option<&str> {
        self.get("Answer-State")
    }

    /// `DTMF-Digit` (DTMF).
    pub fn dtmf_digit(&self) -> Option<&str> {
        self.get("DTMF-Digit")
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
        self.get("Application-UUID")
    }

    /// A channel variable (`variable_<name>`).
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| {
                n.len() == 9 + name.len()
                    && n.starts_with("variable_")
                    && n[9..].eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| v)
    }

    /// A numeric channel variable (`variable_billsec`, `variable_answer_epoch`, …).
    pub fn variable_i64(&self, name: &str) -> Option<i64> {
        self.variable(name).and_then(|v| v.trim().parse().ok())
    }

    /// `Event-Sequence`, the authoritative order of events.
    pub fn sequence(&self) -> Option<u64> {
        self.get("Event-Sequence").and_then(|v| v.parse().ok())
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
    fn variables() {
        let e = Event::parse_plain(b"Event-Name: CHANNEL_HANGUP_COMPLETE\nvariable_billsec: 3\nvariable_answer_epoch: 1795242704\n\n");
        assert_eq!(e.variable_i64("billsec"), Some(3));
        assert_eq!(e.variable("ANSWER_EPOCH"), Some("1795242704"));
        assert_eq!(e.variable("billmsec"), None);
        assert_eq!(e.body, None);
    }
}

//! Events (`text/event-plain` bodies, ESL.md §3): url-decoded headers, an optional body,
//! and typed access to what the orchestrator needs.

use super::codec::{Headers, url_decode, url_encode};

/// One event with decoded header values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Headers in order, values url-decoded.
    pub headers: Headers,
    /// The event's own body (BACKGROUND_JOB output, …).
    pub body: Option<String>,
}

impl Event {
    /// Parses the body of a `text/event-plain` message.
    pub fn parse_plain(bytes: &[u8]) -> Event {
        let (head, rest) = match bytes.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&bytes[..i], Some(&bytes[i + 2..])),
            None => (bytes, None),
        };
        let mut headers = Headers::default();
        for line in String::from_utf8_lossy(head)
            .split('\n')
            .filter(|l| !l.is_empty())
        {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            headers.push(
                name.trim(),
                url_decode(value.strip_prefix(' ').unwrap_or(value)),
            );
        }
        let body = match (
            headers
                .get("Content-Length")
                .and_then(|n| n.trim().parse::<usize>().ok()),
            rest,
        ) {
            (Some(n), Some(rest)) => {
                Some(String::from_utf8_lossy(&rest[..n.min(rest.len())]).into_owned())
            }
            _ => None,
        };
        Event { headers, body }
    }

    /// Serializes as a `text/event-plain` body (the sandbox's side).
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut out = String::with_capacity(1024);
        for (name, value) in self
            .headers
            .iter()
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
        self.headers.get(name)
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
        self.headers
            .iter()
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

//! Event Socket framing, both directions (ESL.md §1, §3).
//!
//! A message is `Name: value` lines, an empty line, and — when the headers carry
//! `Content-Length: N` — exactly N bytes of body. Client → server messages start with a
//! command line instead of a header. The decoder is incremental: feed it whatever a read
//! returned, take out every complete message; it never slices text by byte counts and caps
//! a message at [`MAX_MESSAGE`] (the connection must then be dropped).

use std::fmt;

/// Largest message (headers + body) accepted; past it the stream is unusable.
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// Why a byte stream cannot be decoded any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A message (or its announced body) is larger than [`MAX_MESSAGE`].
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    /// `Content-Length` is not a number.
    #[error("bad Content-Length {0:?}")]
    BadLength(String),
}

/// Headers in arrival order; names compare case-insensitively; duplicates are kept. They
/// share one text (a message's few headers are two allocations, not two per header).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    text: String,
    /// `(name start, value start, value end)` in `text`; a name ends where its value starts.
    fields: Vec<(u32, u32, u32)>,
}

impl Headers {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let at = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        let start = at(&self.text);
        self.text.push_str(name.as_ref());
        let middle = at(&self.text);
        self.text.push_str(value.as_ref());
        self.fields.push((start, middle, at(&self.text)));
    }

    /// Headers as (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|&(start, middle, end)| {
            let part = |from: u32, to: u32| self.text.get(from as usize..to as usize);
            (
                part(start, middle).unwrap_or_default(),
                part(middle, end).unwrap_or_default(),
            )
        })
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The command line of a client → server message (`None` server → client).
    pub command: Option<String>,
    /// Outer headers (not url-encoded).
    pub headers: Headers,
    /// The `Content-Length` bytes, if any.
    pub body: Option<Vec<u8>>,
}

impl Message {
    /// `Content-Type`, or `""`.
    pub fn content_type(&self) -> &str {
        self.headers.get("Content-Type").unwrap_or_default()
    }

    /// The body as text (lossy), or `""`.
    pub fn body_text(&self) -> String {
        self.body
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// Serializes: command line (if any), headers in their order, blank line, body. A
    /// `Content-Length` header gets the body's real length where it stands; without one,
    /// it is added after the others (FreeSWITCH puts it first on events, last on replies).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body.as_ref().map_or(0, Vec::len));
        if let Some(command) = &self.command {
            out.extend_from_slice(command.as_bytes());
            out.push(b'\n');
        }
        let length = self.body.as_ref().map(|b| b.len().to_string());
        let mut wrote_length = false;
        for (name, value) in self.headers.iter() {
            let value = if name.eq_ignore_ascii_case("Content-Length") {
                wrote_length = true;
                match &length {
                    Some(length) => length.as_str(),
                    None => continue,
                }
            } else {
                value
            };
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        if let (Some(length), false) = (&length, wrote_length) {
            out.extend_from_slice(format!("Content-Length: {length}\n").as_bytes());
        }
        out.push(b'\n');
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
        out
    }
}

/// Which side's messages a decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Server → client: headers only (the client side decodes these).
    FromServer,
    /// Client → server: a command line, then headers (the sandbox decodes these).
    FromClient,
}

/// Incremental decoder of a byte stream into [`Message`]s.
#[derive(Debug)]
pub struct Decoder {
    direction: Direction,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already consumed.
    start: usize,
    /// Headers parsed, waiting for this many body bytes.
    pending: Option<(Message, usize)>,
}

impl Decoder {
    /// A decoder for messages coming from `direction`.
    pub fn new(direction: Direction) -> Self {
        Self {
            direction,
            buf: Vec::new(),
            start: 0,
            pending: None,
        }
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet part of a returned message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, CodecError> {
        loop {
            if let Some((_, need)) = &self.pending {
                let need = *need;
                if self.buffered() < need {
                    return Ok(None);
                }
                let body = self.buf[self.start..self.start + need].to_vec();
                self.start += need;
                let (mut message, _) = self.pending.take().unwrap_or_default();
                message.body = Some(body);
                return Ok(Some(message));
            }
            let window = &self.buf[self.start..];
            // Blank lines between messages carry nothing (clients often send "\n\n" twice).
            let skip = window
                .iter()
                .take_while(|b| **b == b'\n' || **b == b'\r')
                .count();
            if skip > 0 {
                self.start += skip;
                continue;
            }
            let Some(end) = find_blank_line(window) else {
                if window.len() > MAX_MESSAGE {
                    return Err(CodecError::TooLarge);
                }
                return Ok(None);
            };
            let (head, after) = (&window[..end.0], end.1);
            let message = self.parse_head(head)?;
            self.start += after;
            let length = match message.headers.get("Content-Length") {
                None => return Ok(Some(message)),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| CodecError::BadLength(v.chars().take(32).collect()))?,
            };
            if length > MAX_MESSAGE {
                return Err(CodecError::TooLarge);
            }
            self.pending = Some((message, length));
        }
    }

    fn parse_head(&self, head: &[u8]) -> Result<Message, CodecError> {
        // Valid UTF-8 (every message FreeSWITCH sends) is checked in one fast pass.
        let text = match std::str::from_utf8(head) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(head),
        };
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let command = match self.direction {
            Direction::FromClient => lines.next().map(|l| l.trim().to_string()),
            Direction::FromServer => None,
        };
        let mut headers = Headers {
            text: String::with_capacity(head.len()),
            fields: Vec::with_capacity(4),
        };
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            headers.push(name.trim(), value.strip_prefix(' ').unwrap_or(value));
        }
        Ok(Message {
            command,
            headers,
            body: None,
        })
    }
}

/// `(end of head, start of what follows)` of the first blank line (`\n\n`, `\r` ignored).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'\n', &buf[from..]) {
        let i = from + at;
        let mut j = i + 1;
        if j < buf.len() && buf[j] == b'\r' {
            j += 1;
        }
        if j < buf.len() && buf[j] == b'\n' {
            return Some((i, j + 1));
        }
        from = i + 1;
    }
    None
}

/// Percent-encodes an event header value as FreeSWITCH does: bytes < 0x20 or > 0x7E and
/// `` #%&+:;<=>?@[\]^`{|}" `` become `%XX` (upper-case hex); `/ , ( ) ' ! * . _ -` pass.
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    url_encode_into(value, &mut out);
    out
}

/// [`url_encode`] appended to `out` (the sandbox writes every header of every event this
/// way): the runs that need no escape are copied whole.
pub fn url_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = value;
    while let Some(i) = rest.bytes().position(|b| ESCAPED[usize::from(b)]) {
        out.push_str(&rest[..i]);
        // A multi-byte character is escaped byte by byte.
        let len = rest[i..].chars().next().map_or(1, char::len_utf8);
        for b in rest[i..i + len].bytes() {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        rest = &rest[i + len..];
    }
    out.push_str(rest);
}

/// The bytes [`url_encode`] escapes.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b < 0x20 || b > 0x7e;
        b += 1;
    }
    let specials = b" #%&+:;<=>?@[\\]^`{|}\"";
    let mut i = 0;
    while i < specials.len() {
        table[specials[i] as usize] = true;
        i += 1;
    }
    table
};

/// Decodes `%XX` sequences (only those: `+` stays `+`); malformed escapes stay as they are.
pub fn url_decode(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
    decode_into(value.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `%XX` (only) into `out`; the runs between escapes are copied as they are.
pub(crate) fn decode_into(value: &[u8], out: &mut Vec<u8>) {
    let mut rest = value;
    // Values are short and mostly free of escapes: a plain scan beats memchr's setup.
    while let Some(i) = rest.iter().position(|b| *b == b'%') {
        out.extend_from_slice(&rest[..i]);
        let (h, l) = (
            rest.get(i + 1).map_or(255, |b| hex_value(*b)),
            rest.get(i + 2).map_or(255, |b| hex_value(*b)),
        );
        if h < 16 && l < 16 {
            out.push(h << 4 | l);
            rest = &rest[i + 3..];
        } else {
            out.push(b'%');
            rest = &rest[i + 1..];
        }
    }
    out.extend_from_slice(rest);
}

/// The value of a hex digit, or 255.
const fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 255,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(direction: Direction, bytes: &[u8]) -> Vec<Message> {
        let mut d = Decoder::new(direction);
        d.feed(bytes);
        std::iter::from_fn(|| d.next_message().unwrap()).collect()
    }

    #[test]
    fn replies_and_bodies() {
        let stream = b"Content-Type: auth/request\n\nContent-Type: api/response\nContent-Length: 22\n\n-ERR No such channel!\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n";
        let m = decode_all(Direction::FromServer, stream);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].content_type(), "auth/request");
        assert_eq!(m[1].body_text(), "-ERR No such channel!\n");
        assert_eq!(m[2].headers.get("reply-text"), Some("+OK accepted"));
    }

    #[test]
    fn commands_with_headers_and_crlf() {
        let stream = b"auth ClueCon\r\n\r\nsendmsg abc\ncall-command: execute\nexecute-app-name: playback\n\n\n\napi status\n\n";
        let m = decode_all(Direction::FromClient, stream);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].command.as_deref(), Some("auth ClueCon"));
        assert_eq!(m[1].headers.get("Execute-App-Name"), Some("playback"));
        assert_eq!(m[2].command.as_deref(), Some("api status"));
    }

    #[test]
    fn encode_round_trips() {
        let mut headers = Headers::default();
        headers.push("Content-Type", "api/response");
        let m = Message {
            command: None,
            headers,
            body: Some("+OK é\n".as_bytes().to_vec()),
        };
        let back = decode_all(Direction::FromServer, &m.encode());
        assert_eq!(back[0].body, m.body);
        assert_eq!(back[0].headers.get("Content-Length"), Some("7"));
    }

    #[test]
    fn limits() {
        let mut d = Decoder::new(Direction::FromServer);
        d.feed(b"Content-Length: 99999999999\n\n");
        assert_eq!(d.next_message(), Err(CodecError::TooLarge));
        let mut d = Decoder::new(Direction::FromServer);
        d.feed(b"Content-Length: ten\n\n");
        assert!(matches!(d.next_message(), Err(CodecError::BadLength(_))));
    }

    #[test]
    fn url_coding() {
        assert_eq!(
            url_encode("2026-11-21 06:31:44"),
            "2026-11-21%2006%3A31%3A44"
        );
        assert_eq!(
            url_encode("loopback/9664 &park()"),
            "loopback/9664%20%26park()"
        );
        assert_eq!(url_encode("fd00::2"), "fd00%3A%3A2");
        assert_eq!(url_encode("中"), "%E4%B8%AD");
        assert_eq!(url_decode("%E4%B8%AD+a%2"), "中+a%2");
        assert_eq!(url_decode(&url_encode("a b+c:%\n\"中")), "a b+c:%\n\"中");
    }

    #[test]
    fn url_encoding_escapes_exactly_freeswitchs_bytes() {
        let passes = |b: u8| (0x20..=0x7e).contains(&b) && !b" #%&+:;<=>?@[\\]^`{|}\"".contains(&b);
        for b in 0u8..=0x7f {
            let text = char::from(b).to_string();
            let want = if passes(b) {
                text.clone()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(
                url_encode(&format!("a{text}b{text}")),
                format!("a{want}b{want}")
            );
        }
        assert_eq!(url_encode("é/中 x"), "%C3%A9/%E4%B8%AD%20x");
        let mut out = String::from("Name: ");
        url_encode_into("a:b", &mut out);
        assert_eq!(out, "Name: a%3Ab");
    }
}

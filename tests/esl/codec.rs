//! The codec never panics on arbitrary input, and any valid stream reassembles into the
//! same messages however it is split into reads.

use proptest::prelude::*;
use voicepaas::esl::codec::{Decoder, Direction, Headers, Message, url_decode, url_encode};
use voicepaas::esl::{Event, event};

fn message() -> impl Strategy<Value = Message> {
    let name = "[A-Za-z][A-Za-z0-9-]{0,20}";
    let value = "[ -~]{0,40}".prop_map(|v: String| v.trim().to_string());
    let headers = proptest::collection::vec((name, value), 0..6).prop_map(|pairs| {
        let mut h = Headers::default();
        for (n, v) in pairs
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"))
        {
            h.push(n, v);
        }
        h.push("Content-Type", "x/test");
        h
    });
    (
        headers,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    )
        .prop_map(|(headers, body)| Message {
            command: None,
            headers,
            body,
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
        for direction in [Direction::FromServer, Direction::FromClient] {
            let mut d = Decoder::new(direction);
            for chunk in &chunks {
                d.feed(chunk);
                while let Ok(Some(_)) = d.next_message() {}
            }
        }
        let joined: Vec<u8> = chunks.concat();
        let event = Event::parse_plain(&joined);
        let _ = (event.name(), event.unique_id(), event.job_uuid(), event.application_uuid());
        let _ = (event.timestamp_ms(), event.sequence(), event.hangup_cause(), event.dtmf_digit());
        let _ = event.get_exact(&event::PROTO_HANGUP_CAUSE);
        let _ = url_decode(&String::from_utf8_lossy(&joined));
    }

    #[test]
    fn valid_streams_reassemble_however_split(messages in proptest::collection::vec(message(), 1..8), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let stream: Vec<u8> = messages.iter().flat_map(Message::encode).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.sort();
        let mut d = Decoder::new(Direction::FromServer);
        let mut got = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([stream.len()]) {
            d.feed(&stream[last..p]);
            last = p;
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got.len(), messages.len());
        for (g, m) in got.iter().zip(&messages) {
            prop_assert_eq!(&g.body, &m.body);
            for (name, value) in m.headers.iter() {
                prop_assert_eq!(g.headers.get(name), m.headers.get(name).or(Some(value)));
            }
        }
    }

    #[test]
    fn known_headers_read_as_the_full_index_does(lines in proptest::collection::vec((0usize..5, "[ -~]{0,30}"), 0..12)) {
        const NAMES: [&str; 5] = ["Event-Name", "Unique-ID", "Unique-IDs", "Other-Unique-ID", "Application-UUID"];
        let mut raw = String::new();
        for (name, value) in &lines {
            raw.push_str(&format!("{}: {}\n", NAMES[*name], url_encode(value)));
        }
        let event = Event::parse_plain(raw.as_bytes());
        let first = |name: &str| event.headers().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        prop_assert_eq!(event.get_exact(&event::EVENT_NAME).map(str::to_string), first("Event-Name"));
        prop_assert_eq!(event.unique_id().map(str::to_string), first("Unique-ID"));
        prop_assert_eq!(event.application_uuid().map(str::to_string), first("Application-UUID"));
    }

    #[test]
    fn url_coding_round_trips(s in "\\PC{0,60}") {
        prop_assert_eq!(url_decode(&url_encode(&s)), s.clone());
        prop_assert!(!url_encode(&s).contains([' ', '\n', ':', '%']) || url_encode(&s).contains('%'));
    }
}

//! The sessions recorded from a real FreeSWITCH 1.10.12 (`shared/esl-transcripts`): the
//! codec parses them into the messages the annotated `.txt` files list, and the sandbox
//! answers the same commands with the same replies.

use std::path::PathBuf;

use voicepaas::esl::Event;
use voicepaas::esl::codec::{Decoder, Direction, Message};

fn dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/esl-transcripts");
    dir.is_dir().then_some(dir)
}

fn decode_in_chunks(bytes: &[u8], direction: Direction, chunk: usize) -> Vec<Message> {
    let mut d = Decoder::new(direction);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        d.feed(piece);
        while let Some(m) = d.next_message().expect("recorded streams decode") {
            out.push(m);
        }
    }
    assert_eq!(d.buffered(), 0, "nothing left over");
    out
}

#[test]
fn recorded_streams_parse_into_the_annotated_messages() {
    let Some(dir) = dir() else {
        eprintln!("shared/esl-transcripts not found: skipped");
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".s2c.raw"))
        else {
            continue;
        };
        let annotated = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
        let expected = annotated
            .lines()
            .filter(|l| l.starts_with("<<< S->C"))
            .count();
        let raw = std::fs::read(&path).unwrap();
        let whole = decode_in_chunks(&raw, Direction::FromServer, raw.len());
        assert_eq!(whole.len(), expected, "{name}");
        for chunk in [1, 7, 1000] {
            assert_eq!(
                decode_in_chunks(&raw, Direction::FromServer, chunk),
                whole,
                "{name} in chunks of {chunk}"
            );
        }
        for m in whole
            .iter()
            .filter(|m| m.content_type() == "text/event-plain")
        {
            let e = Event::parse_plain(m.body.as_deref().unwrap());
            assert!(!e.name().is_empty(), "{name}: every event has a name");
            if e.name() == "BACKGROUND_JOB" {
                assert!(
                    e.body
                        .as_deref()
                        .is_some_and(|b| b.starts_with("+OK") || b.starts_with("-ERR")),
                    "{name}"
                );
            }
        }
        let sent = std::fs::read(dir.join(format!("{name}.c2s.raw"))).unwrap();
        let commands = decode_in_chunks(&sent, Direction::FromClient, 3);
        let expected = annotated
            .lines()
            .filter(|l| l.starts_with(">>> C->S"))
            .count();
        assert_eq!(commands.len(), expected, "{name} client side");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} transcripts found");
}

#[test]
fn recorded_events_decode_their_values() {
    let Some(dir) = dir() else { return };
    let raw = std::fs::read(dir.join("10-loopback-9664-park-kill.s2c.raw")).unwrap();
    let messages = decode_in_chunks(&raw, Direction::FromServer, 4096);
    let events: Vec<Event> = messages
        .iter()
        .filter(|m| m.content_type() == "text/event-plain")
        .map(|m| Event::parse_plain(m.body.as_deref().unwrap()))
        .collect();
    let job = events
        .iter()
        .find(|e| e.name() == "BACKGROUND_JOB")
        .unwrap();
    assert_eq!(job.get("Job-Command-Arg"), Some("loopback/9664 &park()"));
    assert_eq!(
        job.body.as_deref(),
        Some("+OK cedb5c30-5f61-49e8-b05a-edc33dd336c8\n")
    );
    let done = events
        .iter()
        .find(|e| {
            e.name() == "CHANNEL_HANGUP_COMPLETE"
                && e.unique_id() == Some("cedb5c30-5f61-49e8-b05a-edc33dd336c8")
        })
        .unwrap();
    assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
    assert!(done.variable_i64("billsec").is_some());
    assert_eq!(done.get("FreeSWITCH-IPv6"), Some("fd00::2"));
    let sequences: Vec<u64> = events.iter().filter_map(Event::sequence).collect();
    assert!(sequences.len() > 40);
}

/// The sandbox answers the commands of the recorded handshake and misc sessions with the
/// same content types and reply texts (api bodies that describe the host differ).
#[tokio::test]
async fn the_sandbox_replies_as_recorded() {
    let Some(dir) = dir() else { return };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sandbox = voicepaas::media::sandbox::Sandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        "ClueCon",
        100.0,
        std::env::temp_dir(),
    )
    .await
    .unwrap();
    for name in [
        "01-auth-handshake-ok",
        "02-auth-handshake-bad-password",
        "03-command-before-auth",
    ] {
        let sent = std::fs::read(dir.join(format!("{name}.c2s.raw"))).unwrap();
        let recorded = decode_in_chunks(
            &std::fs::read(dir.join(format!("{name}.s2c.raw"))).unwrap(),
            Direction::FromServer,
            4096,
        );
        let mut stream = tokio::net::TcpStream::connect(sandbox.addr())
            .await
            .unwrap();
        stream.write_all(&sent).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            stream.read_to_end(&mut got),
        )
        .await;
        let got = decode_in_chunks(&got, Direction::FromServer, 4096);
        let shape = |ms: &[Message]| -> Vec<(String, String)> {
            ms.iter()
                .map(|m| {
                    (
                        m.content_type().to_string(),
                        m.headers.get("Reply-Text").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(shape(&got), shape(&recorded), "{name}");
    }
}

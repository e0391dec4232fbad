//! The sessions recorded from a real FreeSWITCH 1.10.12 (`shared/esl-transcripts`): the
//! codec parses them into the messages the annotated `.txt` files list, and the sandbox
//! answers the same commands with the same replies.

use std::path::PathBuf;

use voicepaas::esl::codec::{Decoder, Direction, Message};
use voicepaas::esl::{Event, Incoming};

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

/// A sandbox at `speed`, writing recordings into a temporary directory that lives as long
/// as the handle returned with it.
async fn sandbox(speed: f64) -> (voicepaas::media::sandbox::Sandbox, tempfile::TempDir) {
    let recordings = tempfile::tempdir().unwrap();
    let sandbox = voicepaas::media::sandbox::Sandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        "ClueCon",
        speed,
        recordings.path().to_path_buf(),
    )
    .await
    .unwrap();
    (sandbox, recordings)
}

/// The `conference::maintenance` changes among `events`: (Action, Conference-Size) of a
/// room's creation, its members' arrivals and departures, and its end.
fn maintenance(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| {
            e.name() == "CUSTOM" && e.get("Event-Subclass") == Some("conference::maintenance")
        })
        .filter(|e| {
            matches!(
                e.get("Action"),
                Some("conference-create" | "add-member" | "del-member" | "conference-destroy")
            )
        })
        .map(|e| {
            let field = |h: &str| e.get(h).unwrap_or_default().to_string();
            (field("Action"), field("Conference-Size"))
        })
        .collect()
}

/// A conference as esl-transcripts 83 recorded it: A and B bridged, moved together by
/// `uuid_transfer A -both conference:rec83@default inline`, a third member C originated
/// into it, `conference rec83 list` / `list count` / `conference list`, C killed, then A
/// and B: the sandbox sends the same maintenance changes with the same room sizes, and
/// lists the members as FreeSWITCH does (newest first, `id;channel;uuid;…`).
#[tokio::test]
async fn the_sandbox_keeps_conferences_as_recorded() {
    let Some(dir) = dir() else { return };
    let recorded = recorded_events(&dir, "83-conference-three-way");
    let (sandbox, _recordings) = sandbox(10.0).await;
    let (client, mut incoming) =
        voicepaas::esl::EslClient::start(super::options(sandbox.addr().port()));
    assert_eq!(super::next(&mut incoming).await, Incoming::Connected);
    let subscription = ["CHANNEL_PARK", "CUSTOM", "conference::maintenance"];
    client.subscribe(&subscription).await.unwrap();
    let mut seen: Vec<Event> = Vec::new();
    // Reads events until `done` holds of those seen.
    async fn until(
        incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
        seen: &mut Vec<Event>,
        done: impl Fn(&[Event]) -> bool,
    ) {
        while !done(seen) {
            if let Incoming::Event(e) = super::next(incoming).await {
                seen.push(e);
            }
        }
    }
    let count = |action: &'static str| {
        move |seen: &[Event]| {
            maintenance(seen)
                .iter()
                .filter(|(a, _)| a == action)
                .count()
        }
    };
    let [a, b, c] = [(); 3].map(|()| super::new_uuid());
    for leg in [&a, &b] {
        client
            .bgapi(&super::originate(leg, "13800000001", 45))
            .await
            .unwrap();
    }
    until(&mut incoming, &mut seen, |s| {
        s.iter().filter(|e| e.name() == "CHANNEL_PARK").count() == 2
    })
    .await;
    client.api(&format!("uuid_bridge {a} {b}")).await.unwrap();
    let moved = client
        .api(&format!(
            "uuid_transfer {a} -both conference:rec83@default inline"
        ))
        .await
        .unwrap();
    assert_eq!(moved.trim(), "+OK");
    until(&mut incoming, &mut seen, |s| count("add-member")(s) == 2).await;
    let third = format!(
        "originate {{origination_uuid={c}}}sofia/gateway/pstn/13800000002 &conference(rec83@default)"
    );
    client.bgapi(&third).await.unwrap();
    until(&mut incoming, &mut seen, |s| count("add-member")(s) == 3).await;
    let list = client.api("conference rec83 list").await.unwrap();
    let uuids: Vec<&str> = list
        .lines()
        .map(|l| l.split(';').nth(2).unwrap_or_default())
        .collect();
    assert_eq!(uuids, [c.as_str(), b.as_str(), a.as_str()], "{list}");
    assert!(list.lines().all(|l| l.split(';').count() == 9), "{list}");
    assert_eq!(
        client.api("conference rec83 list count").await.unwrap(),
        "3"
    );
    let all = client.api("conference list").await.unwrap();
    assert!(all.starts_with("+OK Conference rec83 (3 members "), "{all}");
    client.api(&format!("uuid_kill {c}")).await.unwrap();
    until(&mut incoming, &mut seen, |s| count("del-member")(s) == 1).await;
    assert_eq!(
        client
            .api("conference rec83 list")
            .await
            .unwrap()
            .lines()
            .count(),
        2
    );
    for leg in [&a, &b] {
        client.api(&format!("uuid_kill {leg}")).await.unwrap();
    }
    until(&mut incoming, &mut seen, |s| {
        count("conference-destroy")(s) == 1
    })
    .await;
    assert_eq!(maintenance(&seen), maintenance(&recorded));
    let gone = client.api("conference rec83 list").await.unwrap();
    assert!(
        gone.starts_with("-ERR Conference rec83 not found"),
        "{gone}"
    );
}

/// What a failed leg's CHANNEL_HANGUP_COMPLETE says: Hangup-Cause, the SIP status, the
/// protocol's own cause and the Q.850 code.
fn hangup_facts(e: &Event) -> [String; 4] {
    [
        "Hangup-Cause",
        "variable_sip_term_status",
        "variable_proto_specific_hangup_cause",
        "variable_hangup_cause_q850",
    ]
    .map(|h| e.get(h).unwrap_or_default().to_string())
}

/// The recorded events of transcript `name`.
fn recorded_events(dir: &std::path::Path, name: &str) -> Vec<Event> {
    let raw = std::fs::read(dir.join(format!("{name}.s2c.raw"))).unwrap();
    decode_in_chunks(&raw, Direction::FromServer, 4096)
        .iter()
        .filter(|m| m.content_type() == "text/event-plain")
        .map(|m| Event::parse_plain(m.body.as_deref().unwrap()))
        .collect()
}

/// The CHANNEL_HANGUP_COMPLETE facts of leg `uuid`.
async fn hangup_of(
    incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
    uuid: &str,
) -> [String; 4] {
    loop {
        if let Incoming::Event(e) = super::next(incoming).await
            && e.name() == "CHANNEL_HANGUP_COMPLETE"
            && e.unique_id() == Some(uuid)
        {
            return hangup_facts(&e);
        }
    }
}

/// Failed SIP legs as esl-transcripts 88 recorded them: a 404 ends UNALLOCATED_NUMBER and
/// a 480 NO_USER_RESPONSE, each with its SIP status, `sip:<status>` and Q.850 code, and the
/// originate's job answers `-ERR <cause>`. The sandbox's number ending 9992 is refused as
/// the 404 was; a ringing leg hung up with NO_USER_RESPONSE ends as the 480 did.
#[tokio::test]
async fn the_sandbox_ends_failed_legs_as_recorded() {
    let Some(dir) = dir() else { return };
    let recorded = recorded_events(&dir, "88-hangup-causes");
    let recorded_end = |uuid: &str| {
        let done = recorded
            .iter()
            .find(|e| e.name() == "CHANNEL_HANGUP_COMPLETE" && e.unique_id() == Some(uuid))
            .unwrap();
        let job = recorded
            .iter()
            .find(|e| {
                e.name() == "BACKGROUND_JOB"
                    && e.get("Job-Command-Arg").is_some_and(|a| a.contains(uuid))
            })
            .unwrap();
        (hangup_facts(done), job.body.clone().unwrap_or_default())
    };
    let rejected_404 = recorded_end("474be7d0-d08f-4979-892f-fc0b5c21b5bd");
    let rejected_480 = recorded_end("e9da0d5c-2556-472c-940c-c3c0fae633d8");
    assert_eq!(rejected_404.0[0], "UNALLOCATED_NUMBER");

    let mut r = super::rig().await;
    let answer =
        |out: Result<String, voicepaas::esl::EslError>| out.unwrap_or_else(|e| e.to_string());
    let refused = super::new_uuid();
    let line = super::originate(&refused, "13800009992", 45);
    let refused_job = r.client.send_bgapi(&line).await.unwrap();
    let facts = hangup_of(&mut r.incoming, &refused).await;
    assert_eq!((facts, answer(refused_job.await)), rejected_404);
    let ringing = super::new_uuid();
    let line = super::originate(&ringing, "13800009991", 45);
    let ringing_job = r.client.send_bgapi(&line).await.unwrap();
    loop {
        if let Incoming::Event(e) = super::next(&mut r.incoming).await
            && e.name() == "CHANNEL_PROGRESS"
            && e.unique_id() == Some(ringing.as_str())
        {
            break;
        }
    }
    let kill = format!("uuid_kill {ringing} NO_USER_RESPONSE");
    r.client.api(&kill).await.unwrap();
    let facts = hangup_of(&mut r.incoming, &ringing).await;
    assert_eq!((facts, answer(ringing_job.await)), rejected_480);
}

/// A blocking `api` as esl-transcripts 89 recorded it: `api msleep` answers `+OK` when it
/// is done, and the events of a call that went on meanwhile (its park, its hangup) arrive
/// only after that reply, on the sandbox as on FreeSWITCH.
#[tokio::test]
async fn a_blocking_api_holds_the_events_back_as_recorded() {
    let Some(dir) = dir() else { return };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The api/response's body, and whether the first CHANNEL_PARK and CHANNEL_HANGUP
    // come after it.
    let shape = |messages: &[Message]| {
        let reply = messages
            .iter()
            .position(|m| m.content_type() == "api/response")
            .unwrap();
        let first = |name: &str| {
            messages.iter().position(|m| {
                m.content_type() == "text/event-plain"
                    && Event::parse_plain(m.body.as_deref().unwrap_or_default()).name() == name
            })
        };
        let body = String::from_utf8_lossy(messages[reply].body.as_deref().unwrap_or_default())
            .to_string();
        let after = |i: Option<usize>| i.is_some_and(|i| i > reply);
        (
            body,
            after(first("CHANNEL_PARK")),
            after(first("CHANNEL_HANGUP")),
        )
    };
    let raw = std::fs::read(dir.join("89-api-slow-command.s2c.raw")).unwrap();
    let recorded = shape(&decode_in_chunks(&raw, Direction::FromServer, 4096));
    assert_eq!(recorded, ("+OK".to_string(), true, true));

    let (sandbox, _recordings) = sandbox(10.0).await;
    let mut stream = tokio::net::TcpStream::connect(sandbox.addr())
        .await
        .unwrap();
    let uuid = super::new_uuid();
    // The callee answers after 1 s and hangs up 2 s later, within the 5 s sleep.
    let session = format!(
        "auth ClueCon\n\nevent plain ALL\n\nbgapi originate {{origination_uuid={uuid}}}sofia/gateway/pstn/13800009995 &park()\n\napi msleep 5000\n\n"
    );
    stream.write_all(session.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(1500),
        stream.read_to_end(&mut got),
    )
    .await;
    let messages = decode_in_chunks(&got, Direction::FromServer, 4096);
    assert_eq!(shape(&messages), recorded);
}

/// The registration events among `events`: (subclass, from-user, contact, status,
/// expires), with the headers both kinds carry.
fn registrations(events: &[Event]) -> Vec<[String; 5]> {
    events
        .iter()
        .filter(|e| e.name() == "CUSTOM")
        .filter(|e| {
            e.get("Event-Subclass")
                .is_some_and(|s| s.starts_with("sofia::"))
        })
        .map(|e| {
            [
                "Event-Subclass",
                "from-user",
                "contact",
                "status",
                "expires",
            ]
            .map(|h| e.get(h).unwrap_or_default().to_string())
        })
        .collect()
}

/// Registrations as esl-transcripts 86 recorded them: a device registering gives
/// `sofia::register` (status `Registered(UDP)`, its expiry), `sofia_contact` names it, an
/// originate reaches it; unregistering gives `sofia::unregister` (expires 0) and
/// `sofia_contact` answers `error/user_not_registered`. On the sandbox the device is made
/// to register with `voicepaas_register`; a device that left cannot be dialled
/// (USER_NOT_REGISTERED), and a registration not renewed lapses with `sofia::expire`.
#[tokio::test]
async fn the_sandbox_registers_devices_as_recorded() {
    let Some(dir) = dir() else { return };
    let recorded = registrations(&recorded_events(&dir, "86-sofia-register"));
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let mut r = super::rig().await;
    let api = |cmd: String| {
        let client = r.client.clone();
        async move { client.api(&cmd).await.unwrap() }
    };
    assert_eq!(
        api("sofia_contact 1000@voicepaas.local".into()).await,
        "sofia/internal/sip:1000@127.0.0.1:5070"
    );
    assert_eq!(
        api("voicepaas_register 1000@voicepaas.local 120".into())
            .await
            .trim(),
        "+OK"
    );
    let dial = |uuid: &str| {
        format!("originate {{origination_uuid={uuid}}}user/1000@voicepaas.local &park()")
    };
    let reached = super::new_uuid();
    let answer = r.client.bgapi(&dial(&reached)).await.unwrap();
    assert_eq!(answer.trim(), format!("+OK {reached}"));
    api(format!("uuid_kill {reached}")).await;
    assert_eq!(
        api("voicepaas_register 1000@voicepaas.local 0".into())
            .await
            .trim(),
        "+OK"
    );
    assert_eq!(
        api("sofia_contact 1000@voicepaas.local".into()).await,
        "error/user_not_registered"
    );
    let refused = r
        .client
        .bgapi(&dial(&super::new_uuid()))
        .await
        .unwrap_or_else(|e| e.to_string());
    assert_eq!(refused.trim(), "-ERR USER_NOT_REGISTERED");
    // 2 s of sandbox time: the registration lapses.
    api("voicepaas_register 1000@voicepaas.local 2".into()).await;
    let mut seen = Vec::new();
    while registrations(&seen).len() < 4 {
        if let Incoming::Event(e) = super::next(&mut r.incoming).await {
            seen.push(e);
        }
    }
    let got = registrations(&seen);
    assert_eq!(got[..2], recorded[..]);
    let tail: Vec<(&str, &str)> = got[2..]
        .iter()
        .map(|g| (g[0].as_str(), g[4].as_str()))
        .collect();
    assert_eq!(tail, [("sofia::register", "2"), ("sofia::expire", "0")]);
    assert_eq!(
        api("sofia_contact 1000@voicepaas.local".into()).await,
        "error/user_not_registered"
    );
}

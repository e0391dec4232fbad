//! The Event Socket client against the sandbox media server, over real TCP: every outcome of
//! the suffix table (API.md §12) with FreeSWITCH's event order, the applications the
//! orchestrator uses, timers on the sandbox clock, reconnection, and fidelity to the
//! sessions recorded from a real FreeSWITCH (`shared/esl-transcripts`).

mod codec;
mod transcripts;

use std::time::Duration;

use tokio::sync::mpsc;
use voicepaas::esl::client::Execute;
use voicepaas::esl::{EslClient, EslError, EslOptions, Event, Incoming};
use voicepaas::media::sandbox::Sandbox;

/// Sandbox clock speed for these tests: 30 s of call take 0.3 s.
const SPEED: f64 = 100.0;

struct Rig {
    sandbox: Sandbox,
    client: EslClient,
    incoming: mpsc::Receiver<Incoming>,
    _recordings: tempfile::TempDir,
}

fn options(port: u16) -> EslOptions {
    let mut o = EslOptions::new("127.0.0.1", port, "ClueCon");
    o.reconnect_min = Duration::from_millis(20);
    o.reconnect_max = Duration::from_millis(200);
    o.api_timeout = Duration::from_secs(5);
    o.bgapi_timeout = Duration::from_secs(10);
    o
}

async fn rig() -> Rig {
    let recordings = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(
        "127.0.0.1:0".parse().unwrap(),
        "ClueCon",
        SPEED,
        recordings.path().to_path_buf(),
    )
    .await
    .unwrap();
    let (client, mut incoming) = EslClient::start(options(sandbox.addr().port()));
    assert_eq!(next(&mut incoming).await, Incoming::Connected);
    client.subscribe(&["ALL"]).await.unwrap();
    Rig {
        sandbox,
        client,
        incoming,
        _recordings: recordings,
    }
}

impl Rig {
    /// Places a call to `number` (bgapi originate, answer timeout 45 s); its uuid.
    async fn call(&self, number: &str) -> String {
        let uuid = new_uuid();
        self.client
            .bgapi(&originate(&uuid, number, 45))
            .await
            .unwrap();
        uuid
    }

    /// The CHANNEL_EXECUTE_COMPLETE of the application queued with `event_uuid`.
    async fn completion(&mut self, event_uuid: &str) -> Event {
        loop {
            if let Incoming::Event(e) = next(&mut self.incoming).await
                && e.name() == "CHANNEL_EXECUTE_COMPLETE"
                && e.application_uuid() == Some(event_uuid)
            {
                return e;
            }
        }
    }
}

/// An application that holds later ones until it is done, tagged with `event_uuid`.
fn locked<'a>(app: &'a str, arg: &'a str, event_uuid: &'a str) -> Execute<'a> {
    Execute {
        app,
        arg,
        event_lock: true,
        event_uuid: Some(event_uuid),
    }
}

async fn next(incoming: &mut mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(Duration::from_secs(10), incoming.recv())
        .await
        .expect("something arrives")
        .expect("stream open")
}

/// Every event of channel `uuid` until its CHANNEL_DESTROY.
async fn life_of(incoming: &mut mpsc::Receiver<Incoming>, uuid: &str) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        if let Incoming::Event(e) = next(incoming).await
            && e.unique_id() == Some(uuid)
        {
            let done = e.name() == "CHANNEL_DESTROY";
            events.push(e);
            if done {
                return events;
            }
        }
    }
}

fn names(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .map(Event::name)
        .filter(|n| !matches!(*n, "CHANNEL_STATE" | "CHANNEL_CALLSTATE"))
        .collect()
}

fn originate(uuid: &str, number: &str, timeout: u32) -> String {
    format!(
        "originate {{origination_uuid={uuid},origination_caller_id_number=01080001001,originate_timeout={timeout}}}sofia/gateway/pstn/{number} &park()"
    )
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

const SETUP: [&str; 3] = ["CHANNEL_OUTGOING", "CHANNEL_CREATE", "CHANNEL_ORIGINATE"];
const TEARDOWN: [&str; 3] = ["CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", ""];

fn expect(prefix: &[&str], middle: &[&str]) -> Vec<String> {
    prefix
        .iter()
        .chain(middle)
        .chain(TEARDOWN[..2].iter())
        .map(|s| s.to_string())
        .collect()
}

fn hangup_complete(events: &[Event]) -> &Event {
    events
        .iter()
        .find(|e| e.name() == "CHANNEL_HANGUP_COMPLETE")
        .expect("CHANNEL_HANGUP_COMPLETE")
}

#[tokio::test]
async fn busy_unallocated_and_no_answer_fail_with_their_causes() {
    let mut r = rig().await;
    for (number, cause, q850) in [
        ("13800009990", "USER_BUSY", "17"),
        ("13800009992", "UNALLOCATED_NUMBER", "1"),
        ("13800009991", "NO_ANSWER", "19"),
    ] {
        let uuid = new_uuid();
        let result = r.client.bgapi(&originate(&uuid, number, 20)).await.unwrap();
        assert_eq!(result, format!("-ERR {cause}\n"));
        let events = life_of(&mut r.incoming, &uuid).await;
        let rang: &[&str] = if number.ends_with("9991") {
            &[
                "CHANNEL_PROGRESS",
                "CHANNEL_PROGRESS_MEDIA",
                "CHANNEL_HANGUP",
            ]
        } else {
            &["CHANNEL_HANGUP"]
        };
        assert_eq!(names(&events), expect(&SETUP, rang), "{number}");
        let done = hangup_complete(&events);
        assert_eq!(done.hangup_cause(), Some(cause));
        assert_eq!(done.variable("hangup_cause_q850"), Some(q850));
        assert_eq!(done.variable_i64("billsec"), Some(0));
        assert_eq!(done.variable_i64("answer_epoch"), Some(0));
        assert_eq!(
            done.variable("origination_caller_id_number"),
            Some("01080001001")
        );
        if number.ends_with("9991") {
            // Rang until originate_timeout (20 s of sandbox time).
            let rang_for = done.variable_i64("end_uepoch").unwrap()
                - done.variable_i64("start_uepoch").unwrap();
            assert!((20_000_000..22_000_000).contains(&rang_for), "{rang_for}");
        }
    }
}

#[tokio::test]
async fn answered_calls_follow_the_suffix_table() {
    let mut r = rig().await;
    let answered = [
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE",
        "CHANNEL_PARK",
    ];
    for (number, keys, talk_s, ring_s) in [
        ("13800009993", "1", 30, 1),
        ("13800009994", "21", 30, 1),
        ("13800009995", "", 2, 1),
        ("13800009996", "", 30, 10),
        ("13800001234", "", 30, 1),
    ] {
        let uuid = new_uuid();
        assert_eq!(
            r.client.bgapi(&originate(&uuid, number, 45)).await.unwrap(),
            format!("+OK {uuid}\n")
        );
        let events = life_of(&mut r.incoming, &uuid).await;
        let mut middle: Vec<&str> = answered.to_vec();
        middle.extend(keys.chars().map(|_| "DTMF"));
        middle.extend([
            "CHANNEL_HANGUP",
            "CHANNEL_UNPARK",
            "CHANNEL_EXECUTE_COMPLETE",
        ]);
        assert_eq!(names(&events), expect(&SETUP, &middle), "{number}");
        let pressed: String = events.iter().filter_map(Event::dtmf_digit).collect();
        assert_eq!(pressed, keys, "{number}");
        let done = hangup_complete(&events);
        assert_eq!(done.hangup_cause(), Some("NORMAL_CLEARING"));
        let billmsec = done.variable_i64("billmsec").unwrap();
        // At 100x, 2 sandbox seconds are 20 ms of a loaded machine's scheduling.
        assert!(
            (talk_s * 1000..talk_s * 1000 + 2000).contains(&billmsec),
            "{number}: {billmsec}"
        );
        let ring = done.variable_i64("answer_uepoch").unwrap()
            - done.variable_i64("start_uepoch").unwrap();
        assert!(
            (ring_s * 1_000_000..ring_s * 1_000_000 + 900_000).contains(&ring),
            "{number}: {ring}"
        );
        assert_eq!(done.variable_i64("billsec"), Some(billmsec / 1000));
    }
}

#[tokio::test]
async fn applications_run_for_their_sandbox_durations() {
    let mut r = rig().await;
    let uuid = r.call("13800001234").await;
    r.client
        .execute(&uuid, locked("playback", "/prompts/hello.wav", "e1"))
        .await
        .unwrap();
    r.client
        .execute(&uuid, locked("say", "zh NUMBER ITERATED 123", "e2"))
        .await
        .unwrap();
    r.client
        .execute(&uuid, locked("say", "en NAME_SPELLED ITERATED A1B2", "e3"))
        .await
        .unwrap();
    r.client
        .execute(&uuid, locked("hangup", "", "e4"))
        .await
        .unwrap();
    let events = life_of(&mut r.incoming, &uuid).await;
    let at = |name: &str, id: &str| {
        let e = events
            .iter()
            .find(|e| e.name() == name && e.application_uuid() == Some(id))
            .unwrap_or_else(|| panic!("{name} {id}"));
        e.get("Event-Date-Timestamp")
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let took = |id: &str| at("CHANNEL_EXECUTE_COMPLETE", id) - at("CHANNEL_EXECUTE", id);
    // Each within a sandbox second (10 ms at 100x) of its length, and short of the next
    // length a wrong rule would give.
    assert!(
        (2_000_000..3_000_000).contains(&took("e1")),
        "playback {}",
        took("e1")
    );
    assert!(
        (1_000_000..2_000_000).contains(&took("e2")),
        "say {}",
        took("e2")
    );
    assert!(
        (2_000_000..3_000_000).contains(&took("e3")),
        "spelled 4 chars {}",
        took("e3")
    );
    let played = events
        .iter()
        .find(|e| e.name() == "CHANNEL_EXECUTE_COMPLETE" && e.application_uuid() == Some("e1"))
        .unwrap();
    assert_eq!(played.application_response(), Some("FILE PLAYED"));
    let stop = events.iter().find(|e| e.name() == "PLAYBACK_STOP").unwrap();
    assert_eq!(
        (stop.get("Playback-File-Path"), stop.get("Playback-Status")),
        (Some("/prompts/hello.wav"), Some("done"))
    );
    let sequence: Vec<&str> = names(&events)
        .into_iter()
        .skip_while(|n| *n != "CHANNEL_UNPARK")
        .collect();
    assert_eq!(
        sequence[..7],
        [
            "CHANNEL_UNPARK",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_EXECUTE",
            "PLAYBACK_START",
            "PLAYBACK_STOP",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_EXECUTE"
        ]
    );
    assert_eq!(
        hangup_complete(&events).hangup_cause(),
        Some("NORMAL_CLEARING")
    );
}

/// Applications sent one after another are queued and run in order; `uuid_break` stops
/// the running one and the next starts, `uuid_break <uuid> all` also drops those queued
/// behind it (FreeSWITCH flushes the channel's queued messages).
#[tokio::test]
async fn break_all_drops_the_queued_applications() {
    let mut r = rig().await;
    let uuid = r.call("13800001234").await;
    for id in ["e1", "e2", "e3"] {
        r.client
            .execute(&uuid, locked("playback", "silence_stream://3600000", id))
            .await
            .unwrap();
    }
    // The next CHANNEL_EXECUTE[_COMPLETE] of the channel, as `<name> <Application-UUID>`.
    async fn next_run(r: &mut Rig, uuid: &str) -> String {
        loop {
            if let Incoming::Event(e) = next(&mut r.incoming).await
                && e.unique_id() == Some(uuid)
                && let Some(id) = e.application_uuid()
            {
                return format!("{} {id}", e.name());
            }
        }
    }
    assert_eq!(next_run(&mut r, &uuid).await, "CHANNEL_EXECUTE e1");
    assert_eq!(
        r.client.api(&format!("uuid_break {uuid}")).await.unwrap(),
        "+OK\n"
    );
    assert_eq!(next_run(&mut r, &uuid).await, "CHANNEL_EXECUTE_COMPLETE e1");
    assert_eq!(next_run(&mut r, &uuid).await, "CHANNEL_EXECUTE e2");
    let all = format!("uuid_break {uuid} all");
    assert_eq!(r.client.api(&all).await.unwrap(), "+OK\n");
    assert_eq!(next_run(&mut r, &uuid).await, "CHANNEL_EXECUTE_COMPLETE e2");
    r.client
        .execute(&uuid, locked("hangup", "", "e4"))
        .await
        .unwrap();
    assert_eq!(next_run(&mut r, &uuid).await, "CHANNEL_EXECUTE e4");
    let rest = life_of(&mut r.incoming, &uuid).await;
    assert!(
        rest.iter().all(|e| e.application_uuid() != Some("e3")),
        "e3 ran after uuid_break all"
    );
    assert_eq!(
        hangup_complete(&rest).hangup_cause(),
        Some("NORMAL_CLEARING")
    );
}

#[tokio::test]
async fn play_and_get_digits_collects_the_far_ends_keys() {
    let mut r = rig().await;
    let uuid = r.call("13800009994").await;
    let exec = locked(
        "play_and_get_digits",
        "1 2 1 9000 # menu.wav invalid.wav choice \\d+",
        "g",
    );
    r.client.execute(&uuid, exec).await.unwrap();
    let done = r.completion("g").await;
    assert_eq!(done.variable("choice"), Some("21"));
    assert_eq!(done.variable("read_result"), Some("success"));
    assert_eq!(
        r.client
            .api(&format!("uuid_getvar {uuid} choice"))
            .await
            .unwrap(),
        "21"
    );
    assert_eq!(
        r.client.api(&format!("uuid_kill {uuid}")).await.unwrap(),
        "+OK\n"
    );
}

#[tokio::test]
async fn recording_bridge_and_timers() {
    let mut r = rig().await;
    let (a, b) = (new_uuid(), new_uuid());
    r.client
        .bgapi(&originate(&a, "13800001111", 45))
        .await
        .unwrap();
    r.client
        .bgapi(&originate(&b, "13800002222", 45))
        .await
        .unwrap();
    let path = r._recordings.path().join("call.wav");
    let record = Execute {
        app: "record_session",
        arg: path.to_str().unwrap(),
        ..Execute::default()
    };
    r.client.execute(&a, record).await.unwrap();
    assert_eq!(
        r.client.api(&format!("uuid_bridge {a} {b}")).await.unwrap(),
        format!("+OK {b}\n")
    );
    assert_eq!(
        r.client.api(&format!("sched_hangup +5 {a}")).await.unwrap(),
        "+OK\n"
    );
    assert_eq!(
        r.client
            .api(&format!("sched_broadcast +2 {b} /prompts/lastmin.wav"))
            .await
            .unwrap(),
        "+OK Message scheduled\n"
    );
    let (mut a_events, mut b_events) = (Vec::new(), Vec::new());
    while !(a_events
        .iter()
        .any(|e: &Event| e.name() == "CHANNEL_DESTROY")
        && b_events
            .iter()
            .any(|e: &Event| e.name() == "CHANNEL_DESTROY"))
    {
        if let Incoming::Event(e) = next(&mut r.incoming).await {
            if e.unique_id() == Some(a.as_str()) {
                a_events.push(e);
            } else if e.unique_id() == Some(b.as_str()) {
                b_events.push(e);
            }
        }
    }
    let bridge = a_events
        .iter()
        .find(|e| e.name() == "CHANNEL_BRIDGE")
        .expect("CHANNEL_BRIDGE on the A leg");
    assert_eq!(
        (
            bridge.get("Bridge-A-Unique-ID"),
            bridge.get("Bridge-B-Unique-ID")
        ),
        (Some(a.as_str()), Some(b.as_str()))
    );
    assert!(
        !b_events.iter().any(|e| e.name() == "CHANNEL_BRIDGE"),
        "only the originating leg reports the bridge"
    );
    assert!(b_events.iter().any(|e| e.name() == "PLAYBACK_START"
        && e.get("Playback-File-Path") == Some("/prompts/lastmin.wav")));
    assert_eq!(
        hangup_complete(&a_events).hangup_cause(),
        Some("ALLOTTED_TIMEOUT")
    );
    assert_eq!(
        hangup_complete(&b_events).hangup_cause(),
        Some("NORMAL_CLEARING"),
        "the bridged partner ends too"
    );
    assert!(a_events.iter().any(|e| e.name() == "RECORD_START"));
    let stop = a_events
        .iter()
        .find(|e| e.name() == "RECORD_STOP")
        .expect("RECORD_STOP");
    assert_eq!(stop.get("Record-File-Path"), Some(path.to_str().unwrap()));
    let wav = std::fs::read(&path).unwrap();
    let info = voicepaas::domain::prompt::check_wav(&wav).unwrap();
    assert!(
        (5_000..5_900).contains(&info.duration_ms),
        "recording of ~5 s, got {} ms",
        info.duration_ms
    );
}

#[tokio::test]
async fn bridge_application_dials_a_b_leg() {
    let mut r = rig().await;
    let a = r.call("13800001234").await;
    let bridge = locked("bridge", "sofia/gateway/pstn/13800009995", "br");
    r.client.execute(&a, bridge).await.unwrap();
    r.client
        .execute(&a, locked("hangup", "", "end"))
        .await
        .unwrap();
    let events = life_of(&mut r.incoming, &a).await;
    let after_park: Vec<&str> = names(&events)
        .into_iter()
        .skip_while(|n| *n != "CHANNEL_UNPARK")
        .collect();
    // The B leg answers (bridge), hangs up 2 s later (unbridge); A goes on to its hangup.
    assert_eq!(
        after_park,
        [
            "CHANNEL_UNPARK",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_EXECUTE",
            "CHANNEL_BRIDGE",
            "CHANNEL_UNBRIDGE",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_EXECUTE",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_HANGUP",
            "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY"
        ]
    );
    let bridged = events
        .iter()
        .find(|e| e.name() == "CHANNEL_BRIDGE")
        .unwrap();
    assert_eq!(bridged.get("Bridge-A-Unique-ID"), Some(a.as_str()));
    // A busy B leg: the bridge app returns with the cause in originate_disposition.
    let a2 = r.call("13800001235").await;
    r.client
        .execute(
            &a2,
            locked("bridge", "sofia/gateway/pstn/13800009990", "busy"),
        )
        .await
        .unwrap();
    let done = r.completion("busy").await;
    assert_eq!(done.variable("originate_disposition"), Some("USER_BUSY"));
    r.client.api(&format!("uuid_kill {a2}")).await.unwrap();
}

#[tokio::test]
async fn api_commands_answer_like_freeswitch() {
    let r = rig().await;
    let c = &r.client;
    assert_eq!(
        c.api("uuid_kill 00000000-0000-0000-0000-000000000000")
            .await
            .unwrap(),
        "-ERR No such channel!\n"
    );
    assert_eq!(
        c.api("no_such_command foo").await.unwrap(),
        "-ERR no_such_command Command not found!\n"
    );
    assert_eq!(
        c.api("uuid_exists 00000000-0000-0000-0000-000000000000")
            .await
            .unwrap(),
        "false"
    );
    assert_eq!(
        c.api("show channels as json").await.unwrap(),
        "{\"row_count\": 0}\n"
    );
    assert!(c.api("status").await.unwrap().contains("is ready"));
    let uuid = new_uuid();
    let (c2, u2) = (c.clone(), uuid.clone());
    // A synchronous api originate answers when the call is answered.
    let answer = tokio::spawn(async move { c2.api(&originate(&u2, "13800001234", 45)).await });
    assert_eq!(answer.await.unwrap().unwrap(), format!("+OK {uuid}\n"));
    assert_eq!(c.api(&format!("uuid_exists {uuid}")).await.unwrap(), "true");
    assert!(c.api("show channels").await.unwrap().contains(&uuid));
    // As FreeSWITCH lists a parked channel (esl-transcripts 87).
    let listing: serde_json::Value =
        serde_json::from_str(&c.api("show channels as json").await.unwrap()).unwrap();
    let row = &listing["rows"][0];
    assert_eq!(listing["row_count"], 1, "{listing}");
    assert_eq!(
        [
            &row["uuid"],
            &row["direction"],
            &row["state"],
            &row["dest"],
            &row["application"],
            &row["callstate"],
            &row["cid_num"]
        ],
        [
            uuid.as_str(),
            "outbound",
            "CS_EXECUTE",
            "13800001234",
            "park",
            "ACTIVE",
            "01080001001"
        ],
        "{row}"
    );
    assert_eq!(
        c.command("sendmsg nobody", &[("call-command", "hangup")])
            .await,
        Err(EslError::Refused("-ERR invalid session id [nobody]".into()))
    );
    assert_eq!(
        c.command("bogus_command", &[]).await,
        Err(EslError::Refused("-ERR command not found".into()))
    );
    c.hangup(&uuid, "NORMAL_CLEARING").await.unwrap();
}

#[tokio::test]
async fn heartbeats_every_twenty_sandbox_seconds() {
    let mut r = rig().await;
    let started = std::time::Instant::now();
    loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.name() == "HEARTBEAT"
        {
            assert_eq!(e.get("Heartbeat-Interval"), Some("20"));
            break;
        }
    }
    // 20 s of sandbox time at speed 100 is 0.2 s.
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn conference_holds_three_parties() {
    let mut r = rig().await;
    let legs: Vec<String> = (0..3).map(|_| new_uuid()).collect();
    for (i, leg) in legs.iter().enumerate() {
        r.client
            .bgapi(&originate(leg, &format!("1380000000{i}"), 45))
            .await
            .unwrap();
        r.client
            .execute(
                leg,
                Execute {
                    app: "conference",
                    arg: "cv1@default",
                    ..Execute::default()
                },
            )
            .await
            .unwrap();
    }
    let mut joined = 0;
    while joined < 3 {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.name() == "CHANNEL_EXECUTE"
            && e.application() == Some("conference")
        {
            joined += 1;
        }
    }
    assert_eq!(
        r.client
            .api("conference cv1 list")
            .await
            .unwrap()
            .lines()
            .count(),
        3
    );
    r.client
        .api(&format!("uuid_kill {}", legs[2]))
        .await
        .unwrap();
    life_of(&mut r.incoming, &legs[2]).await;
    assert_eq!(
        r.client
            .api("conference cv1 list")
            .await
            .unwrap()
            .lines()
            .count(),
        2,
        "the other two go on"
    );
    r.client.api("conference cv1 kick all").await.unwrap();
}

#[tokio::test]
async fn reconnects_and_fails_pending_commands_fast() {
    let mut r = rig().await;
    let port = r.sandbox.addr().port();
    let uuid = r.call("13800001234").await;
    // A job that cannot finish before the media server goes away.
    let ringing = new_uuid();
    let c = r.client.clone();
    let pending =
        tokio::spawn(async move { c.bgapi(&originate(&ringing, "13800009991", 600)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    r.sandbox.stop();
    let failed = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .expect("fails fast")
        .unwrap();
    assert!(
        matches!(failed, Err(EslError::Disconnected(_))),
        "{failed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    loop {
        if let Incoming::Disconnected(_) = next(&mut r.incoming).await {
            break;
        }
    }
    assert_eq!(r.client.api("status").await, Err(EslError::NotConnected));
    drop(r.sandbox);
    // The media server comes back on the same port.
    let again = Sandbox::start(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "ClueCon",
        SPEED,
        std::env::temp_dir(),
    )
    .await
    .unwrap();
    let missed = loop {
        if let Incoming::Reconnected(missed) = next(&mut r.incoming).await {
            break missed;
        }
    };
    assert!(missed.contains(&uuid), "{missed:?} should name {uuid}");
    assert!(r.client.api("status").await.unwrap().contains("is ready"));
    // Subscriptions were replayed: a new call's events arrive.
    let fresh = new_uuid();
    r.client
        .bgapi(&originate(&fresh, "13800009992", 45))
        .await
        .unwrap();
    life_of(&mut r.incoming, &fresh).await;
    drop(again);
}

#[tokio::test]
async fn dropped_connection_keeps_calls_on_the_media_server() {
    let mut r = rig().await;
    let uuid = r.call("13800001234").await;
    r.sandbox.drop_connections();
    let missed = loop {
        if let Incoming::Reconnected(missed) = next(&mut r.incoming).await {
            break missed;
        }
    };
    assert_eq!(missed, vec![uuid.clone()]);
    assert_eq!(
        r.client.api(&format!("uuid_exists {uuid}")).await.unwrap(),
        "true"
    );
}

#[tokio::test]
async fn filters_keep_job_results_flowing() {
    let mut r = rig().await;
    let (mine, other) = (new_uuid(), new_uuid());
    r.client.filter("Unique-ID", &mine).await.unwrap();
    r.client
        .bgapi(&originate(&other, "13800009992", 45))
        .await
        .unwrap();
    r.client
        .bgapi(&originate(&mine, "13800009992", 45))
        .await
        .unwrap();
    let events = life_of(&mut r.incoming, &mine).await;
    assert!(events.iter().all(|e| e.unique_id() == Some(mine.as_str())));
}

#[tokio::test]
async fn authentication_and_garbage() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = rig().await;
    let addr = r.sandbox.addr();
    let mut wrong = tokio::net::TcpStream::connect(addr).await.unwrap();
    wrong
        .write_all(b"api status\n\nauth nope\n\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    wrong.read_to_end(&mut seen).await.unwrap();
    let text = String::from_utf8(seen).unwrap();
    assert_eq!(
        text,
        "Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: -ERR command not found\n\n\
         Content-Type: command/reply\nReply-Text: -ERR invalid\n\n\
         Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    );
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xff; 4096]).await.unwrap();
    garbage
        .write_all(b"\n\nauth ClueCon\n\nsendmsg x\nContent-Length: 999999999999\n\n")
        .await
        .unwrap();
    // The sandbox drops this connection (message over 8 MiB) and nothing else.
    let closed =
        tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut Vec::new())).await;
    assert!(closed.is_ok(), "the garbage connection is closed");
    // The others are unaffected.
    assert!(r.client.api("status").await.unwrap().contains("is ready"));
    let wrong = EslClient::start(EslOptions {
        password: "nope".into(),
        ..options(addr.port())
    });
    assert!(!wrong.0.is_connected());
}

/// Event frames are laid out as FreeSWITCH lays them out (transcript 13): the length
/// first, then the type, then the url-encoded event.
#[tokio::test]
async fn event_frames_match_freeswitch_byte_layout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = rig().await;
    let mut raw = tokio::net::TcpStream::connect(r.sandbox.addr())
        .await
        .unwrap();
    raw.write_all(b"auth ClueCon\n\nevent plain HEARTBEAT\n\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("Event-Name: HEARTBEAT") {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let frame = &text[text.find("Content-Length:").unwrap()..];
    let mut lines = frame.lines();
    assert!(lines.next().unwrap().starts_with("Content-Length: "));
    assert_eq!(lines.next(), Some("Content-Type: text/event-plain"));
    assert_eq!(lines.next(), Some(""));
    assert_eq!(lines.next(), Some("Event-Name: HEARTBEAT"));
    assert!(
        frame.contains("Event-Date-Local: 20") && frame.contains("%3A"),
        "values are url-encoded: {frame}"
    );
}

/// Any ESL client can drive the standalone sandbox: a short Python socket script.
#[tokio::test]
async fn a_python_socket_script_places_a_call() {
    let r = rig().await;
    let port = r.sandbox.addr().port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/esl_client.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(&port)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("+OK accepted"), "{stdout}");
    assert!(stdout.contains("CHANNEL_ANSWER"), "{stdout}");
    assert!(
        stdout.contains("CHANNEL_HANGUP_COMPLETE NORMAL_CLEARING"),
        "{stdout}"
    );
}

/// A fake media server that authenticates, answers subscriptions, then misbehaves: goes
/// silent (`Silent`) or announces a message larger than the 8 MiB cap (`Huge`).
async fn misbehaving_server(huge: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = stream.write_all(b"Content-Type: auth/request\n\n").await;
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                let mut answered = 0;
                // Answer the handshake (auth, event plain) one command at a time, then misbehave.
                while answered < 2 {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while answered < seen.windows(2).filter(|w| w == b"\n\n").count().min(2) {
                        let _ = stream
                            .write_all(b"Content-Type: command/reply\nReply-Text: +OK\n\n")
                            .await;
                        answered += 1;
                    }
                }
                if huge {
                    let _ = stream
                        .write_all(b"Content-Type: api/response\nContent-Length: 99999999999\n\n")
                        .await;
                }
                // Read and ignore everything from now on.
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_silent_server_is_declared_dead() {
    let port = misbehaving_server(false).await;
    let mut o = options(port);
    o.idle_probe = Duration::from_millis(100);
    o.probe_timeout = Duration::from_millis(100);
    o.api_timeout = Duration::from_millis(300);
    let (client, mut incoming) = EslClient::start(o);
    assert_eq!(next(&mut incoming).await, Incoming::Connected);
    let started = std::time::Instant::now();
    // No answer to this command or to the liveness probe: the connection is dropped.
    let pending = client.api("status").await;
    assert!(
        matches!(pending, Err(EslError::Disconnected(_))),
        "{pending:?}"
    );
    assert!(matches!(
        next(&mut incoming).await,
        Incoming::Disconnected(_)
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    // And it keeps trying: the fake server accepts again.
    assert!(matches!(
        next(&mut incoming).await,
        Incoming::Reconnected(_)
    ));
}

#[tokio::test]
async fn an_oversized_message_drops_the_connection() {
    let port = misbehaving_server(true).await;
    let (_client, mut incoming) = EslClient::start(options(port));
    assert_eq!(next(&mut incoming).await, Incoming::Connected);
    match next(&mut incoming).await {
        Incoming::Disconnected(why) => assert!(why.contains("larger than"), "{why}"),
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

/// The platform's filter: channels carrying this installation's `voicepaas_install` pass,
/// other channels' events do not, except DTMF (FreeSWITCH's DTMF events carry no channel
/// variables, so a variable filter alone would swallow every key).
#[tokio::test]
async fn an_installation_filter_keeps_other_channels_out_but_not_dtmf() {
    let mut r = rig().await;
    r.client
        .filter("variable_voicepaas_install", "shop1")
        .await
        .unwrap();
    r.client.filter("Event-Name", "DTMF").await.unwrap();
    let (mine, other) = (new_uuid(), new_uuid());
    r.client
        .bgapi(&originate(&other, "13800009993", 45))
        .await
        .unwrap();
    let tagged = format!(
        "originate {{origination_uuid={mine},voicepaas_install=shop1,originate_timeout=45}}sofia/gateway/pstn/13800009993 &park()"
    );
    r.client.bgapi(&tagged).await.unwrap();
    let mut seen = Vec::new();
    loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await {
            let my_key = e.name() == "DTMF" && e.unique_id() == Some(mine.as_str());
            seen.push(e);
            if my_key {
                break;
            }
        }
    }
    for e in &seen {
        if !matches!(e.name(), "DTMF" | "BACKGROUND_JOB") {
            assert_eq!(e.unique_id(), Some(mine.as_str()), "{}", e.name());
        }
    }
    let names: Vec<&str> = seen
        .iter()
        .filter(|e| e.unique_id() == Some(mine.as_str()))
        .map(Event::name)
        .collect();
    assert!(
        names.contains(&"CHANNEL_CREATE") && names.contains(&"CHANNEL_ANSWER"),
        "{names:?}"
    );
    for uuid in [&mine, &other] {
        r.client.api(&format!("uuid_kill {uuid}")).await.unwrap();
    }
}

/// An agent's device (`user/…`) rings 1 s, answers and stays up until it is hung up
/// (where a phone number would hang up after 30 s); its suffix 9995 still hangs up 2 s
/// after answering.
#[tokio::test]
async fn agent_devices_answer_and_stay_up() {
    let mut r = rig().await;
    let uuid = new_uuid();
    let dial = format!(
        "originate {{origination_uuid={uuid},originate_timeout=20,sip_auto_answer=true}}user/80000017@voicepaas.local &park()"
    );
    assert_eq!(
        r.client.bgapi(&dial).await.unwrap(),
        format!("+OK {uuid}\n")
    );
    loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.unique_id() == Some(uuid.as_str())
            && e.name() == "CHANNEL_ANSWER"
        {
            break;
        }
    }
    // Hold and retrieve as on a SIP leg (esl-transcripts 80-hold-retrieve-sofia).
    for (command, event) in [
        ("uuid_hold", "CHANNEL_HOLD"),
        ("uuid_hold off", "CHANNEL_UNHOLD"),
    ] {
        assert_eq!(
            r.client.api(&format!("{command} {uuid}")).await.unwrap(),
            "+OK Success\n"
        );
        loop {
            if let Incoming::Event(e) = next(&mut r.incoming).await
                && e.unique_id() == Some(uuid.as_str())
                && e.name() == event
            {
                break;
            }
        }
    }
    assert_eq!(
        r.client.api("uuid_hold off no-such-uuid").await.unwrap(),
        "-ERR No such channel!\n"
    );
    // Every agent's device counts as registered.
    assert_eq!(
        r.client
            .api("sofia_contact 80000017@voicepaas.local")
            .await
            .unwrap(),
        "sofia/internal/sip:80000017@127.0.0.1:5070"
    );
    // 60 sandbox seconds later it is still there.
    tokio::time::sleep(Duration::from_secs_f64(60.0 / SPEED)).await;
    assert_eq!(
        r.client.api(&format!("uuid_exists {uuid}")).await.unwrap(),
        "true"
    );
    r.client.api(&format!("uuid_kill {uuid}")).await.unwrap();
    let events = life_of(&mut r.incoming, &uuid).await;
    assert_eq!(
        hangup_complete(&events).hangup_cause(),
        Some("NORMAL_CLEARING")
    );

    let uuid = new_uuid();
    let dial = format!(
        "originate {{origination_uuid={uuid},originate_timeout=20}}user/80009995@voicepaas.local &park()"
    );
    r.client.bgapi(&dial).await.unwrap();
    let events = life_of(&mut r.incoming, &uuid).await;
    let done = hangup_complete(&events);
    let billmsec = done.variable_i64("billmsec").unwrap();
    assert!((2000..2900).contains(&billmsec), "{billmsec}");
}

/// A simulated caller (agents' contract §12) parks unanswered with `voicepaas_did` as the
/// §11.1 extension leaves it (esl-transcripts 85), is answered by `answer`, then behaves
/// by its own number; one nobody answers gives up after a minute.
#[tokio::test]
async fn callers_dial_in_and_park_with_the_did() {
    let mut r = rig().await;
    let reply = r
        .client
        .api("voicepaas_inbound 13800009995 4008001000 CA1")
        .await
        .unwrap();
    let uuid = reply
        .strip_prefix("+OK ")
        .and_then(|u| u.strip_suffix('\n'))
        .expect("+OK <uuid>")
        .to_string();
    let park = loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.unique_id() == Some(uuid.as_str())
            && e.name() == "CHANNEL_PARK"
        {
            break e;
        }
    };
    for (header, value) in [
        ("Call-Direction", "inbound"),
        ("Answer-State", "ringing"),
        ("Caller-Caller-ID-Number", "13800009995"),
        ("Caller-Destination-Number", "4008001000"),
        ("variable_voicepaas_did", "4008001000"),
        ("variable_park_after_bridge", "true"),
    ] {
        assert_eq!(park.get(header), Some(value), "{header}");
    }
    assert_eq!(
        r.client
            .api(&format!("uuid_setvar {uuid} voicepaas_conversation CV1"))
            .await
            .unwrap(),
        "+OK\n"
    );
    r.client
        .execute(&uuid, locked("answer", "", "answer-1"))
        .await
        .unwrap();
    let life = life_of(&mut r.incoming, &uuid).await;
    let seen = names(&life);
    let answer = seen
        .iter()
        .position(|n| *n == "CHANNEL_ANSWER")
        .expect("answered");
    assert!(seen[answer..].contains(&"CHANNEL_HANGUP"));
    let complete = hangup_complete(&life);
    assert_eq!(
        complete.get("Hangup-Cause"),
        Some("NORMAL_CLEARING"),
        "9995 hangs up 2 s after the answer"
    );
    assert_eq!(complete.get("variable_voicepaas_conversation"), Some("CV1"));
    assert_eq!(complete.get("variable_voicepaas_call_sid"), Some("CA1"));

    let reply = r
        .client
        .api("voicepaas_inbound 13800138000 4008001000")
        .await
        .unwrap();
    let waiting = reply.trim().trim_start_matches("+OK ").to_string();
    let life = life_of(&mut r.incoming, &waiting).await;
    assert!(!names(&life).contains(&"CHANNEL_ANSWER"));
    assert_eq!(
        hangup_complete(&life).get("Hangup-Cause"),
        Some("ORIGINATOR_CANCEL")
    );
    assert_eq!(
        r.client
            .api("voicepaas_inbound x 4008001000")
            .await
            .unwrap(),
        "-ERR usage: voicepaas_inbound <from> <to> [callSid]\n"
    );
}

/// esl-transcripts 82: `uuid_break` does not end a broadcast `endless_playback`;
/// `uuid_transfer <uuid> park inline` (an application without data) does, and parks.
#[tokio::test]
async fn transfer_to_park_ends_endless_playback() {
    let mut r = rig().await;
    let uuid = r.call("13800138000").await;
    loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.unique_id() == Some(uuid.as_str())
            && e.name() == "CHANNEL_ANSWER"
        {
            break;
        }
    }
    let client = r.client.clone();
    let api = |line: String| {
        let client = client.clone();
        async move { client.api(&line).await.unwrap() }
    };
    let music = format!("uuid_broadcast {uuid} endless_playback::local_stream://moh aleg");
    assert!(api(music).await.starts_with("+OK"));
    // What the channel runs, from now until `until` (or a 10 s deadline).
    async fn runs(r: &mut Rig, uuid: &str, until: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.last().is_none_or(|s| s != until) {
            assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
            if let Incoming::Event(e) = next(&mut r.incoming).await
                && e.unique_id() == Some(uuid)
                && matches!(
                    e.name(),
                    "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" | "CHANNEL_PARK"
                )
            {
                let app = e.get("Application").unwrap_or_default();
                seen.push(format!("{} {app}", e.name()).trim().to_string());
            }
        }
        seen
    }
    let started = runs(&mut r, &uuid, "CHANNEL_EXECUTE endless_playback").await;
    assert_eq!(
        started.last().map(String::as_str),
        Some("CHANNEL_EXECUTE endless_playback")
    );
    assert_eq!(api(format!("uuid_break {uuid} all")).await, "+OK\n");
    assert_eq!(
        api(format!("uuid_transfer {uuid} park inline")).await,
        "+OK\n"
    );
    assert_eq!(
        runs(&mut r, &uuid, "CHANNEL_PARK").await,
        [
            "CHANNEL_EXECUTE_COMPLETE endless_playback",
            "CHANNEL_EXECUTE park",
            "CHANNEL_PARK"
        ]
    );
    let _ = api(format!("uuid_kill {uuid}")).await;
}

/// Eavesdrop as esl-transcripts 84 recorded it: the media bug starts and stops on the
/// target (MEDIA_BUG_START/STOP, function `eavesdrop`, target its own uuid), mode keys
/// sent with `uuid_recv_dtmf` show only as DTMF events on the eavesdropper, and the
/// eavesdropper's call ends when its target's does.
#[tokio::test]
async fn eavesdrop_bugs_the_target_and_hears_keys() {
    let mut r = rig().await;
    let device = |uuid: &str, number: &str, app: &str| {
        format!(
            "originate {{origination_uuid={uuid},originate_timeout=20,sip_auto_answer=true,eavesdrop_enable_dtmf=true}}user/{number}@voicepaas.local &{app}"
        )
    };
    let (a, b) = (new_uuid(), new_uuid());
    r.client
        .bgapi(&device(&a, "80000021", "park()"))
        .await
        .unwrap();
    r.client
        .bgapi(&device(&b, "80000022", "park()"))
        .await
        .unwrap();
    bridge_when_answered(&mut r, &a, &b).await;
    // Waits for `name` on channel `uuid`.
    async fn wait(r: &mut Rig, uuid: &str, name: &str) -> Event {
        loop {
            if let Incoming::Event(e) = next(&mut r.incoming).await
                && e.unique_id() == Some(uuid)
                && e.name() == name
            {
                return e;
            }
        }
    }
    for round in 0..2 {
        let s = new_uuid();
        r.client
            .bgapi(&device(&s, "80002001", &format!("eavesdrop({a})")))
            .await
            .unwrap();
        let bug = wait(&mut r, &a, "MEDIA_BUG_START").await;
        assert_eq!(
            (bug.get("Media-Bug-Function"), bug.get("Media-Bug-Target")),
            (Some("eavesdrop"), Some(a.as_str()))
        );
        if round == 0 {
            for key in ["2", "3", "0"] {
                r.client
                    .api(&format!("uuid_recv_dtmf {s} {key}"))
                    .await
                    .unwrap();
                let dtmf = wait(&mut r, &s, "DTMF").await;
                assert_eq!(dtmf.dtmf_digit(), Some(key));
            }
            r.client.api(&format!("uuid_kill {s}")).await.unwrap();
            let stop = wait(&mut r, &a, "MEDIA_BUG_STOP").await;
            assert_eq!(stop.get("Media-Bug-Target"), Some(a.as_str()));
        } else {
            // The target goes: so does the eavesdropper.
            r.client.api(&format!("uuid_kill {a}")).await.unwrap();
            let events = life_of(&mut r.incoming, &s).await;
            assert_eq!(
                hangup_complete(&events).hangup_cause(),
                Some("NORMAL_CLEARING")
            );
        }
    }
}

/// A bridge broken by one side's hangup, as esl-transcripts 81 recorded it: the other
/// side (park_after_bridge=true) parks again and lives on, with `last_bridge_to` naming
/// the side that left and no `bridge_to`.
#[tokio::test]
async fn park_after_bridge_outlives_the_other_side() {
    let mut r = rig().await;
    let (a, b) = bridged_devices(&mut r, "80000031", "80000032").await;
    r.client.api(&format!("uuid_kill {a}")).await.unwrap();
    loop {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.unique_id() == Some(b.as_str())
            && e.name() == "CHANNEL_PARK"
        {
            break;
        }
    }
    let api = |cmd: String| {
        let client = r.client.clone();
        async move { client.api(&cmd).await.unwrap() }
    };
    assert_eq!(api(format!("uuid_exists {b}")).await, "true");
    assert_eq!(
        api(format!("uuid_getvar {b} park_after_bridge")).await,
        "true"
    );
    assert_eq!(api(format!("uuid_getvar {b} bridge_to")).await, "_undef_");
    assert_eq!(api(format!("uuid_getvar {b} last_bridge_to")).await, a);
    r.client.api(&format!("uuid_kill {b}")).await.unwrap();
}

/// SIP devices `first` and `second` (answering by themselves, parked after any bridge)
/// originated into `&park()` and, once both answered, bridged: their uuids.
async fn bridged_devices(r: &mut Rig, first: &str, second: &str) -> (String, String) {
    let (a, b) = (new_uuid(), new_uuid());
    for (uuid, number) in [(&a, first), (&b, second)] {
        let line = format!(
            "originate {{origination_uuid={uuid},originate_timeout=20,sip_auto_answer=true,park_after_bridge=true}}user/{number}@voicepaas.local &park()"
        );
        r.client.bgapi(&line).await.unwrap();
    }
    bridge_when_answered(r, &a, &b).await;
    (a, b)
}

/// Once channels `a` and `b` (just originated) have both answered: `uuid_bridge a b`.
async fn bridge_when_answered(r: &mut Rig, a: &str, b: &str) {
    let mut answered = 0;
    while answered < 2 {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.name() == "CHANNEL_ANSWER"
        {
            answered += 1;
        }
    }
    let bridged = r.client.api(&format!("uuid_bridge {a} {b}")).await.unwrap();
    assert!(bridged.starts_with("+OK"), "{bridged}");
}

/// One side of a `uuid_bridge` taken elsewhere by `uuid_transfer` (without `-both`): the
/// other side (park_after_bridge=true) hears CHANNEL_UNBRIDGE and parks, as when the other
/// side hangs up; the bridge is over for both, and neither is hung up.
#[tokio::test]
async fn a_side_transferred_away_leaves_the_other_parked() {
    let mut r = rig().await;
    let (a, b) = bridged_devices(&mut r, "80000041", "80000042").await;
    let moved = r
        .client
        .api(&format!("uuid_transfer {a} park inline"))
        .await
        .unwrap();
    assert_eq!(moved.trim(), "+OK");
    let mut seen = Vec::new();
    while !seen.contains(&"CHANNEL_PARK") {
        if let Incoming::Event(e) = next(&mut r.incoming).await
            && e.unique_id() == Some(b.as_str())
        {
            let kinds = ["CHANNEL_UNBRIDGE", "CHANNEL_PARK", "CHANNEL_HANGUP"];
            // (Its park from before the bridge may still be on the way.)
            let before = seen.is_empty() && e.name() == "CHANNEL_PARK";
            if let Some(kind) = kinds.into_iter().find(|k| *k == e.name() && !before) {
                seen.push(kind);
            }
        }
    }
    assert_eq!(seen, ["CHANNEL_UNBRIDGE", "CHANNEL_PARK"]);
    for leg in [&a, &b] {
        let exists = r.client.api(&format!("uuid_exists {leg}")).await.unwrap();
        assert_eq!(exists, "true", "{leg}");
        r.client.api(&format!("uuid_kill {leg}")).await.unwrap();
    }
}

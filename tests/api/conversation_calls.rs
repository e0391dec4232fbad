//! Click-to-call conversations placed end to end through the sandbox (API.md §6, §6.1,
//! §6.2, §12): byeType and per-leg callCause for each outcome, per-leg status callbacks in
//! order, recording, maxDuration, cancelCall in every state and the addCall rules.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use voicepaas::store::Store;

/// A server at `speed` with an application that has a statusUrl and a cdrUrl.
async fn ctc_app(db: &TestDb, speed: &str) -> TestApp {
    let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", speed)]).await;
    // Callees are rung 15 s: longer than 9996 rings, shorter than the 30 s after which
    // the sandbox's callers hang up.
    app.set_limits(json!({"cps": 1000, "maxConcurrentCalls": 1000, "answerTimeout": 15}))
        .await;
    let created = app
        .create_app(&app.sid, json!({"name": "ctc", "statusUrl": "https://example.com/status", "cdrUrl": "https://example.com/cdr"}))
        .await;
    app.app_id = created["appId"].as_str().unwrap().to_string();
    app
}

async fn start(app: &TestApp, caller: &str, callee: &str, extra: Value) -> String {
    let body = patched(
        json!({"action": "click2call", "caller": caller, "callee": callee, "userData": "ud1"}),
        extra,
    );
    let a = app.post(&app.ctc_path(), &body).await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    a.body["conversationSid"].as_str().unwrap().to_string()
}

/// Status callbacks of a conversation, per leg in dialling order: the callStatus values.
async fn statuses(store: &Store, cv: &str) -> Vec<(String, Vec<String>)> {
    let mut legs: Vec<(String, Vec<String>)> = Vec::new();
    let mut last_time: std::collections::HashMap<String, String> = Default::default();
    for (kind, body) in callbacks(store, cv).await {
        if kind != "status" {
            continue;
        }
        assert_eq!(body["conversationSid"], cv);
        assert_eq!(
            (
                body["apiVersion"].as_str(),
                body["direction"].as_str(),
                body["userData"].as_str()
            ),
            (Some("v1"), Some("outbound"), Some("ud1"))
        );
        let status = body["callStatus"].as_str().unwrap().to_string();
        assert_eq!(
            body["callCause"].as_str().unwrap().is_empty(),
            status != "completed",
            "{body}"
        );
        let time = body["timestamp"].as_str().unwrap().to_string();
        assert_eq!(time.len(), 14);
        let sid = body["callSid"].as_str().unwrap().to_string();
        // A leg's statuses come in order, their times never going backwards.
        let last = last_time.entry(sid.clone()).or_default();
        assert!(last.as_str() <= time.as_str(), "{last} then {body}");
        *last = time;
        match legs.iter_mut().find(|(s, _)| *s == sid) {
            Some((_, list)) => list.push(status),
            None => legs.push((sid, vec![status])),
        }
    }
    legs
}

/// Waits until leg `seq` of the conversation has reported `status`.
async fn wait_status(store: &Store, cv: &str, seq: usize, status: &str) {
    for _ in 0..1500 {
        let legs = statuses(store, cv).await;
        if legs
            .get(seq)
            .is_some_and(|(_, l)| l.iter().any(|s| s == status))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("leg {seq} of {cv} never reported {status}");
}

/// The conversation's CDR, checked against its status callbacks; returns it.
async fn ended(store: &Store, cv: &str) -> Value {
    let cdr = wait_cdr(store, cv).await;
    let rows = callbacks(store, cv).await;
    let (last_kind, last_body) = rows.last().unwrap();
    assert_eq!(
        (last_kind.as_str(), last_body),
        ("cdr", &cdr),
        "the CDR comes after every status"
    );
    let legs = statuses(store, cv).await;
    let cdrs = cdr["cdrs"].as_array().unwrap();
    assert_eq!(cdrs.len(), legs.len(), "{cdr}");
    for (i, (leg, (sid, list))) in cdrs.iter().zip(&legs).enumerate() {
        assert_eq!(
            (leg["callSeq"].as_str(), leg["callSid"].as_str()),
            (Some(i.to_string().as_str()), Some(sid.as_str()))
        );
        let expected: Vec<&str> = match (
            leg["ringTime"].as_str().unwrap().is_empty(),
            leg["answerTime"].as_str().unwrap().is_empty(),
        ) {
            (_, false) => vec!["initiated", "ringing", "answered", "completed"],
            (false, true) => vec!["initiated", "ringing", "completed"],
            (true, true)
                if leg["startTime"] == leg["stopTime"]
                    && leg["cause"] == "canceled"
                    && list.len() == 1 =>
            {
                vec!["completed"]
            }
            (true, true) => vec!["initiated", "completed"],
        };
        assert_eq!(list, &expected, "leg {i}: {cdr}");
        let times: Vec<&str> = ["startTime", "ringTime", "answerTime", "stopTime"]
            .iter()
            .map(|f| leg[f].as_str().unwrap())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "leg {i}: {cdr}");
    }
    assert_eq!(
        (cdr["conversationSid"].as_str(), cdr["userData"].as_str()),
        (Some(cv), Some("ud1"))
    );
    cdr
}

fn causes(cdr: &Value) -> Vec<&str> {
    cdr["cdrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cause"].as_str().unwrap())
        .collect()
}

both_backends! {
    /// Caller and callee suffixes of §12 → byeType and each leg's callCause.
    async fn outcomes_for_every_suffix(db: TestDb) {
        // 50 ms per sandbox second: outcomes that race (a caller hanging up at 30 s vs a
        // callee timing out at 15 s) keep a margin of most of a second under CI load.
        let app = ctc_app(&db, "20").await;
        let store = db.store().await;
        let ok = "13800000001";
        let cases: Vec<(&str, &str, Value, &str, Vec<&str>)> = vec![
            (ok, "13800009990", json!({}), "2", vec!["completed", "failed"]),
            (ok, "13800009991", json!({}), "2", vec!["completed", "time-out"]),
            (ok, "13800009992", json!({}), "2", vec!["completed", "failed"]),
            (ok, "13800009990", json!({"ringbackMode": 1}), "2", vec!["completed", "failed"]),
            (ok, "13800009993", json!({}), "3", vec!["completed", "completed"]),
            (ok, "13800009994", json!({}), "3", vec!["completed", "completed"]),
            (ok, "13800009995", json!({}), "4", vec!["completed", "completed"]),
            (ok, "13800009996", json!({"ringbackMode": 1}), "3", vec!["completed", "completed"]),
            (ok, "13800000002", json!({}), "3", vec!["completed", "completed"]),
            ("13800009990", ok, json!({}), "0", vec!["failed"]),
            ("13800009991", ok, json!({}), "0", vec!["time-out"]),
            ("13800009992", ok, json!({}), "0", vec!["failed"]),
            // The caller hangs up 2 s after answering, while the callee still rings.
            ("13800009995", "13800009996", json!({}), "1", vec!["completed", "canceled"]),
            (ok, "13800000002", json!({"maxDuration": 5}), "5", vec!["time-out", "time-out"]),
        ];
        let mut cvs = Vec::new();
        for (caller, callee, extra, ..) in &cases {
            cvs.push(start(&app, caller, callee, extra.clone()).await);
        }
        for ((caller, callee, extra, bye, expected), cv) in cases.iter().zip(&cvs) {
            let cdr = ended(&store, cv).await;
            assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some(*bye), expected.clone()), "{caller} → {callee} {extra}: {cdr}");
            assert_eq!((cdr["recordingUrl"].as_str(), cdr["recordingDuration"].as_str()), (Some(""), Some("0")));
            let legs = cdr["cdrs"].as_array().unwrap();
            assert_eq!(legs[0]["to"], *caller);
            if let Some(callee_leg) = legs.get(1) {
                assert_eq!((callee_leg["to"].as_str(), callee_leg["from"].as_str()), (Some(*callee), Some(*caller)));
            }
        }
        // maxDuration 5: five sandbox seconds of talk.
        let talk: i64 = wait_cdr(&store, &cvs[13]).await["cdrs"][1]["duration"].as_str().unwrap().parse().unwrap();
        assert!((4..=6).contains(&talk), "{talk}");
        // ringbackMode 1 and a busy callee: the caller heard the failure prompt.
        let busy = wait_cdr(&store, &cvs[3]).await;
        let heard: i64 = busy["cdrs"][0]["duration"].as_str().unwrap().parse().unwrap();
        assert!(heard >= 2, "{heard}");
        // The busy callee's leg keeps the media server's and the SIP side's causes.
        let signalling = |leg: &Value| ["hangupCause", "sipStatus", "protoCause"].map(|f| leg[f].as_str().map(str::to_string));
        assert_eq!(signalling(&busy["cdrs"][1]), ["USER_BUSY", "486", "sip:486"].map(|v| Some(v.to_string())), "{busy}");
        assert_eq!(signalling(&busy["cdrs"][0]), ["NORMAL_CLEARING", "200", ""].map(|v| Some(v.to_string())), "{busy}");
    }
}

both_backends! {
    /// Without maxDuration a conversation still ends at the channel ceiling
    /// (`VOICEPAAS_CHANNEL_MAX_SECS`, counted from the caller's channel's creation), as if
    /// maxDuration were reached.
    async fn the_channel_ceiling_ends_a_conversation(db: TestDb) {
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10"), ("VOICEPAAS_CHANNEL_MAX_SECS", "10")]).await;
        let created = app.create_app(&app.sid, json!({"name": "ctc", "statusUrl": "https://example.com/status", "cdrUrl": "https://example.com/cdr"})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let store = db.store().await;
        let cv = start(&app, "13800000001", "13800000002", json!({})).await;
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("5"), vec!["time-out", "time-out"]), "{cdr}");
        assert_eq!(cdr["cdrs"][0]["hangupCause"], "ALLOTTED_TIMEOUT", "{cdr}");
        // Created, rung 1 s, answered: 9 s of talk for the caller at most.
        let talk: i64 = cdr["cdrs"][0]["duration"].as_str().unwrap().parse().unwrap();
        assert!((7..=9).contains(&talk), "{cdr}");
    }
}

both_backends! {
    /// record 2 records from the callee's answer; the recording is a WAV file of the
    /// talk's length and the CDR points at it.
    async fn recording(db: TestDb) {
        // A slow clock: the platform's reaction time hardly counts in sandbox seconds
        // (at 10, 57 ms of reaction on a loaded machine cost 570 ms of recording).
        let app = ctc_app(&db, "4").await;
        let store = db.store().await;
        let cv = start(&app, "13800000001", "13800009995", json!({"record": 2})).await;
        let cdr = ended(&store, &cv).await;
        assert_eq!(cdr["byeType"], "4");
        assert_eq!(cdr["recordingUrl"], format!("/Accounts/{}/Recordings/{cv}.wav", app.sid));
        assert_eq!(cdr["recordingDuration"], "2");
        let file = app._files.path().join("recordings").join(format!("{cv}.wav"));
        let wav = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let info = voicepaas::domain::prompt::check_wav(&wav).expect("a WAV file");
        assert!((1500..=2900).contains(&info.duration_ms), "{info:?}");
        // The recordingUrl serves the file to the account, and to no one else.
        let served = app.send(reqwest::Method::GET, cdr["recordingUrl"].as_str().unwrap(), None).await;
        assert_eq!(served.status, 200);
        let raw = app.client.get(app.url(cdr["recordingUrl"].as_str().unwrap())).basic_auth(&app.sid, Some(&app.token)).send().await.unwrap();
        assert_eq!(raw.headers()["content-type"], "audio/wav");
        assert_eq!(raw.headers()["content-length"], wav.len().to_string().as_str());
        assert_eq!(raw.bytes().await.unwrap().as_ref(), wav.as_slice());
        let (other, other_token) = app.create_account("other").await;
        let foreign = app.client.get(app.url(&format!("/Accounts/{other}/Recordings/{cv}.wav"))).basic_auth(&other, Some(&other_token)).send().await.unwrap();
        assert_eq!(foreign.status(), 404);
        let a = app.send(reqwest::Method::GET, &format!("/Accounts/{}/Recordings/x.wav", app.sid), None).await;
        assert_eq!((a.status, a.code()), (200, "-4"));
    }
}

both_backends! {
    /// cancelCall in each state ends the conversation with byeType 6; legs not answered
    /// are `canceled`; an ended conversation answers 10007.
    async fn cancel_in_every_state(db: TestDb) {
        let app = ctc_app(&db, "20").await;
        let store = db.store().await;
        let cancel = |cv: &str| {
            let path = format!("{}/{cv}", app.ctc_path());
            let app = &app;
            async move { app.post(&path, &json!({"action": "cancelCall"})).await.code().to_string() }
        };
        // Caller ringing (9996 rings 10 s).
        let cv = start(&app, "13800009996", "13800000002", json!({})).await;
        wait_status(&store, &cv, 0, "ringing").await;
        assert_eq!(cancel(&cv).await, "00000");
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("6"), vec!["canceled"]));
        // Callee ringing.
        let cv = start(&app, "13800000001", "13800009996", json!({})).await;
        wait_status(&store, &cv, 1, "ringing").await;
        assert_eq!(cancel(&cv).await, "00000");
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("6"), vec!["completed", "canceled"]));
        // Bridged.
        let cv = start(&app, "13800000001", "13800000002", json!({})).await;
        wait_status(&store, &cv, 1, "answered").await;
        assert_eq!(cancel(&cv).await, "00000");
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("6"), vec!["completed", "completed"]));
        // Three parties.
        let cv = start(&app, "13800000001", "13800000002", json!({})).await;
        wait_status(&store, &cv, 1, "answered").await;
        let add = app.post(&format!("{}/{cv}", app.ctc_path()), &json!({"action": "addCall", "callee": "13800000003"})).await;
        assert_eq!(add.code(), "00000", "{}", add.body);
        wait_status(&store, &cv, 2, "answered").await;
        assert_eq!(cancel(&cv).await, "00000");
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("6"), vec!["completed", "completed", "completed"]));
        // Ended.
        assert_eq!(cancel(&cv).await, "10007");
    }
}

both_backends! {
    /// cancelCall of a conversation still in the queue: byeType 6, its caller leg
    /// `canceled` without ever being dialled (one `completed` status).
    async fn cancel_while_queued(db: TestDb) {
        let app = ctc_app(&db, "1").await;
        let store = db.store().await;
        app.occupy_line(&store).await;
        let cv = start(&app, "13800000001", "13800000002", json!({})).await;
        let a = app.post(&format!("{}/{cv}", app.ctc_path()), &json!({"action": "cancelCall"})).await;
        assert_eq!(a.code(), "00000");
        let cdr = ended(&store, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), causes(&cdr)), (Some("6"), vec!["canceled"]));
        assert_eq!(cdr["cdrs"][0]["answerTime"], "");
    }
}

both_backends! {
    /// addCall: refused while a party is being added and while three talk; when the
    /// added party leaves the other two go on and addCall is allowed again; when the
    /// original callee leaves, everyone's call ends (byeType 4).
    async fn add_call_in_a_live_conversation(db: TestDb) {
        // Speed 5: the added party rings 200 ms and talks 400 ms of real time, room for
        // the requests made meanwhile even on a loaded machine.
        let app = ctc_app(&db, "5").await;
        let store = db.store().await;
        let cv = start(&app, "13800000001", "13800000002", json!({})).await;
        let path = format!("{}/{cv}", app.ctc_path());
        let add = |callee: &str| json!({"action": "addCall", "callee": callee, "timeout": 30});
        wait_status(&store, &cv, 1, "answered").await;
        // The added party answers and hangs up 2 s later.
        assert_eq!(app.post(&path, &add("13800009995")).await.code(), "00000");
        let a = app.post(&path, &add("13800000004")).await;
        assert_eq!((a.code(), a.msg()), ("10007", "addCall is allowed only while the conversation is two-party and bridged; a party is being added"));
        wait_status(&store, &cv, 2, "answered").await;
        let a = app.post(&path, &add("13800000004")).await;
        assert_eq!((a.code(), a.msg()), ("10007", "addCall is allowed only while the conversation is two-party and bridged; the conversation has three parties"));
        wait_status(&store, &cv, 2, "completed").await;
        assert_eq!(app.post(&path, &add("13800000004")).await.code(), "00000");
        wait_status(&store, &cv, 3, "answered").await;
        // The caller hangs up first (30 s after its answer): callee and party 4 go on;
        // then the original callee hangs up and the conversation ends.
        let cdr = ended(&store, &cv).await;
        assert_eq!(cdr["byeType"], "4", "{cdr}");
        assert_eq!(causes(&cdr), vec!["completed"; 4]);
    }
}

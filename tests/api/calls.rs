//! Notices and captchas placed end to end through the sandbox (API.md §2, §4, §5, §12):
//! every suffix of the sandbox table, with the exact result, reason and inputkey of the
//! result callback, times in order and durations on the sandbox clock.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// Sandbox clock speed of these tests: one sandbox second is 50 ms. Durations are checked
/// from their exact sandbox length up to a second or two more: each item the platform
/// plays costs a round trip, which the fast clock magnifies.
const SPEED: &str = "20";

/// A server at test speed, an account allowed to place every call at once, and an
/// application with a notifyUrl; returns the app id.
async fn fast_app(db: &TestDb) -> (TestApp, String) {
    let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", SPEED)]).await;
    app.set_limits(json!({"cps": 1000, "maxConcurrentCalls": 1000}))
        .await;
    let created = app
        .create_app(&app.sid, json!({"name": "calls", "notifyUrl": "https://example.com/notify", "cdrFeedUrl": "https://example.com/feed"}))
        .await;
    (app, created["appId"].as_str().unwrap().to_string())
}

/// Callee suffix, result, reason, inputkey, duration range (sandbox seconds).
type NoticeCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    (i64, i64),
);

fn secs(cdr: &Value, field: &str) -> i64 {
    cdr[field].as_str().unwrap().parse().unwrap()
}

/// starttime ≤ ringtime ≤ answertime ≤ endtime, skipping times that did not happen.
fn assert_times_in_order(cdr: &Value) {
    let times: Vec<&str> = ["starttime", "ringtime", "answertime", "endtime"]
        .iter()
        .map(|f| cdr[f].as_str().unwrap())
        .filter(|t| !t.is_empty())
        .collect();
    assert!(times.iter().all(|t| t.len() == 14), "{cdr}");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times out of order: {cdr}"
    );
}

/// Checks a finished call's result callback and CDR; returns the CDR.
async fn finished(store: &voicepaas::store::Store, callid: &str, kind: &str) -> Value {
    let cdr = wait_cdr(store, callid).await;
    assert_times_in_order(&cdr);
    assert!(
        cdr.as_object().unwrap().values().all(Value::is_string),
        "{cdr}"
    );
    let rows = callbacks(store, callid).await;
    assert_eq!(rows.len(), 1, "one result callback: {rows:?}");
    assert_eq!((rows[0].0.as_str(), &rows[0].1), ("result", &cdr));
    let feed = callbacks(store, &format!("feed:{}", cdr["appid"].as_str().unwrap())).await;
    let item = feed
        .iter()
        .find(|(_, b)| b["callid"] == callid)
        .expect("feed item");
    assert_eq!(item.1["kind"], kind);
    cdr
}

both_backends! {
    /// Every sandbox suffix as a notice of three items played twice, finish key 1 (then
    /// bye.wav), repeat key 2.
    async fn notice_for_every_suffix(db: TestDb) {
        let (app, app_id) = fast_app(&db).await;
        app.upload_prompt("bye.wav").await;
        let path = format!("/Accounts/{}/Applications/{app_id}/Prompts/bye.wav", app.sid);
        let wav = voicepaas::domain::prompt::build_wav(8000, &[0; 8000]);
        assert_eq!(app.send(reqwest::Method::PUT, &path, Some(wav)).await.status / 100, 2);
        let store = db.store().await;
        // (suffix, result, reason, inputkey, duration range in sandbox seconds)
        let cases: [NoticeCase; 8] = [
            ("9990", "1", "2", "", (0, 0)),
            ("9991", "1", "1", "", (0, 0)),
            ("9992", "1", "2", "", (0, 0)),
            // 1 pressed at 3 s stops playback; bye.wav plays 2 s.
            ("9993", "0", "", "1", (5, 8)),
            // 2 at 3 s restarts from the top; 1 at 6 s finishes; bye.wav 2 s.
            ("9994", "0", "", "1", (8, 11)),
            // The callee hangs up 2 s after answering.
            ("9995", "0", "", "", (2, 2)),
            // Rings 10 s, then the whole notice: 3 items × 1 s × 2 times.
            ("9996", "0", "", "", (6, 9)),
            ("0000", "0", "", "", (6, 9)),
        ];
        let mut placed = Vec::new();
        for (suffix, ..) in &cases {
            let body = json!({
                "appid": app_id, "to": format!("1380000{suffix}"), "userdata": format!("u{suffix}"),
                "contents": [{"type": "number", "content": "12"}, {"type": "money", "content": "3.50"}, {"type": "time", "content": "2026-11-21"}],
                "finishkey": "1", "repeatkey": "2", "finishvoice": "bye.wav",
            });
            let a = app.post(&app.account_path("VoiceNotices"), &body).await;
            assert_eq!(a.code(), "0", "{}", a.body);
            placed.push((a.body["requestid"].as_str().unwrap().to_string(), a.body["callid"].as_str().unwrap().to_string()));
        }
        for ((suffix, result, reason, inputkey, (min, max)), (requestid, callid)) in cases.iter().zip(&placed) {
            let cdr = finished(&store, callid, "notice").await;
            let fields: Vec<&str> = cdr.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(fields.len(), 13, "{cdr}");
            assert_eq!((cdr["result"].as_str(), cdr["reason"].as_str(), cdr["inputkey"].as_str()), (Some(*result), Some(*reason), Some(*inputkey)), "{suffix}: {cdr}");
            assert_eq!((cdr["requestid"].as_str(), cdr["appid"].as_str(), cdr["to"].as_str()), (Some(requestid.as_str()), Some(app_id.as_str()), Some(format!("1380000{suffix}").as_str())));
            assert_eq!(cdr["userdata"], format!("u{suffix}"));
            let duration = secs(&cdr, "duration");
            assert!((*min..=*max).contains(&duration), "{suffix}: duration {duration} not in {min}..={max}: {cdr}");
            let answered = *result == "0";
            assert_eq!(!cdr["answertime"].as_str().unwrap().is_empty(), answered, "{suffix}: {cdr}");
            let rang = !matches!(*suffix, "9990" | "9992");
            assert_eq!(!cdr["ringtime"].as_str().unwrap().is_empty(), rang, "{suffix}: {cdr}");
        }
        // 9996 rang ten sandbox seconds before the answer.
        let cdr = wait_cdr(&store, &placed[6].1).await;
        let ring: i64 = cdr["ringtime"].as_str().unwrap().parse().unwrap();
        let answer: i64 = cdr["answertime"].as_str().unwrap().parse().unwrap();
        let as_secs = |t: i64| (t / 10000) * 3600 + (t / 100 % 100) * 60 + t % 100;
        assert!((10..=11).contains(&(as_secs(answer % 1_000_000) - as_secs(ring % 1_000_000)).rem_euclid(86_400)), "{cdr}");
        // Each leg was journaled through its states.
        let legs = store.calls_of_request(&placed[7].0).await.unwrap();
        assert_eq!((legs[0].state.as_str(), legs[0].cause.as_deref()), ("completed", Some("completed")));
    }
}

both_backends! {
    /// Every sandbox suffix as a captcha: intro (2 s) and the code read three times
    /// (4 characters × 0.5 s each); keys change nothing; no inputkey field.
    async fn captcha_for_every_suffix(db: TestDb) {
        let (app, app_id) = fast_app(&db).await;
        let store = db.store().await;
        let cases: [(&str, &str, &str, (i64, i64)); 8] = [
            ("9990", "1", "2", (0, 0)),
            ("9991", "1", "1", (0, 0)),
            ("9992", "1", "2", (0, 0)),
            ("9993", "0", "", (8, 10)),
            ("9994", "0", "", (8, 10)),
            ("9995", "0", "", (2, 2)),
            ("9996", "0", "", (8, 10)),
            ("0000", "0", "", (8, 10)),
        ];
        let mut placed = Vec::new();
        for (suffix, ..) in &cases {
            let body = json!({"appid": app_id, "to": format!("1390000{suffix}"), "code": "ab12", "lang": "en"});
            let a = app.post(&app.account_path("VoiceCaptchas"), &body).await;
            assert_eq!(a.code(), "0", "{}", a.body);
            placed.push(a.body["callid"].as_str().unwrap().to_string());
        }
        for ((suffix, result, reason, (min, max)), callid) in cases.iter().zip(&placed) {
            let cdr = finished(&store, callid, "captcha").await;
            assert_eq!(cdr.as_object().unwrap().len(), 12, "{cdr}");
            assert!(cdr.get("inputkey").is_none());
            assert_eq!((cdr["result"].as_str(), cdr["reason"].as_str()), (Some(*result), Some(*reason)), "{suffix}: {cdr}");
            let duration = secs(&cdr, "duration");
            assert!((*min..=*max).contains(&duration), "{suffix}: duration {duration} not in {min}..={max}: {cdr}");
        }
    }
}

both_backends! {
    /// Pacing (§1a): with cps 5 and maxConcurrentCalls 2, ten queued calls all complete,
    /// never more than two live at once, started in the order they were accepted.
    async fn pacing_holds_calls_in_order(db: TestDb) {
        let (app, app_id) = fast_app(&db).await;
        app.set_limits(json!({"cps": 5, "maxConcurrentCalls": 2})).await;
        let store = db.store().await;
        let mut ids = Vec::new();
        for i in 0..10 {
            let body = json!({"appid": app_id, "to": format!("1370000{i:04}"), "contents": [{"type": "digits", "content": "1"}], "times": 1});
            let a = app.post(&app.account_path("VoiceNotices"), &body).await;
            assert_eq!(a.code(), "0");
            ids.push(a.body["callid"].as_str().unwrap().to_string());
        }
        let started = std::time::Instant::now();
        let mut max_live = 0;
        loop {
            let live = store.live_legs(&app.sid).await.unwrap();
            max_live = max_live.max(live);
            if store.count_cdrs().await.unwrap() == 10 {
                break;
            }
            assert!(started.elapsed().as_secs() < 30, "calls did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(max_live <= 2, "{max_live} live legs");
        let mut starts = Vec::new();
        for id in &ids {
            starts.push(wait_cdr(&store, id).await["starttime"].as_str().unwrap().to_string());
        }
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        // Ten calls at 5 per second take at least ~1.6 s of real time (the bucket holds one).
        assert!(started.elapsed().as_millis() >= 1_500, "{:?}", started.elapsed());
    }
}

both_backends! {
    /// Calls queued for an account that is then disabled stay queued, never dialled, while
    /// it is disabled, and are placed once it is enabled again.
    async fn a_disabled_accounts_queue_waits(db: TestDb) {
        let (app, app_id) = fast_app(&db).await;
        let store = db.store().await;
        app.occupy_line(&store).await;
        let mut requests = Vec::new();
        for i in 0..3 {
            let body = json!({"appid": app_id, "to": format!("1370001{i:04}"), "contents": [{"type": "digits", "content": "1"}], "times": 1});
            let a = app.post(&app.account_path("VoiceNotices"), &body).await;
            assert_eq!(a.code(), "0");
            requests.push((a.body["requestid"].as_str().unwrap().to_string(), a.body["callid"].as_str().unwrap().to_string()));
        }
        app.set_limits(json!({"enabled": false, "maxConcurrentCalls": 100})).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        for (request, _) in &requests {
            assert_eq!(store.calls_of_request(request).await.unwrap()[0].state, "queued");
        }
        app.set_limits(json!({"enabled": true})).await;
        for (_, call) in &requests {
            assert_eq!(wait_cdr(&store, call).await["result"], "0");
        }
    }
}

//! The conversation engine under faults nobody scripted, with real processes: `voicepaas
//! serve` killed with SIGKILL in every shape a conversation can be in (three parties, a
//! party being added, the caller just gone from a three-party call, a cancel in flight, a
//! recording), with the media server surviving (a standalone sandbox) and with it dying;
//! and a process paused past its lease while another takes its calls over. Every
//! acknowledged call ends with exactly one CDR, every leg with one final status, its
//! statuses in order; a call is driven by one process at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voicepaas::esl::{EslClient, EslOptions, Incoming};
use voicepaas::store::Store;

use crate::both_backends;
use crate::helpers::*;
use crate::processes::*;

/// The test's own Event Socket connection to a standalone sandbox: it hangs channels up
/// as their far ends would, and witnesses every application run on each channel.
pub struct Media {
    client: EslClient,
    /// (channel, `Application-UUID`) of every CHANNEL_EXECUTE, in order.
    pub runs: Arc<Mutex<Vec<(String, String)>>>,
}

impl Media {
    pub async fn connect(port: u16) -> Media {
        let (client, mut incoming) =
            EslClient::start(EslOptions::new("127.0.0.1", port, "ClueCon"));
        assert_eq!(incoming.recv().await, Some(Incoming::Connected));
        client.subscribe(&["CHANNEL_EXECUTE"]).await.unwrap();
        let runs: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let sink = runs.clone();
        tokio::spawn(async move {
            while let Some(notice) = incoming.recv().await {
                if let Incoming::Event(e) = notice
                    && let Some(app) = e.application_uuid()
                {
                    let uuid = e.unique_id().unwrap_or_default().to_string();
                    sink.lock().unwrap().push((uuid, app.to_string()));
                }
            }
        });
        Media { client, runs }
    }

    /// Runs `command` as an `api` on the node; its output.
    pub async fn api(&self, command: &str) -> String {
        self.client.api(command).await.unwrap()
    }

    /// The far end of channel `uuid` hangs up.
    pub async fn hang_up(&self, uuid: &str) {
        let out = self
            .client
            .api(&format!("uuid_kill {uuid} NORMAL_CLEARING"))
            .await
            .unwrap();
        assert!(out.starts_with("+OK"), "{out}");
    }
}

/// The legs of conversation `cv` as stored.
async fn legs(store: &Store, cv: &str) -> Vec<voicepaas::store::placing::CallRecord> {
    store.conversation_legs(cv).await.unwrap()
}

/// Waits until leg `seq` of conversation `cv` is stored in `state`.
async fn wait_leg(store: &Store, cv: &str, seq: usize, state: &str) {
    let started = Instant::now();
    loop {
        if legs(store, cv)
            .await
            .get(seq)
            .is_some_and(|l| l.state == state)
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "leg {seq} of {cv} never {state}: {:?}",
            legs(store, cv).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exactly one CDR, last of the conversation's callbacks; each leg's statuses once each,
/// in contract order, ending `completed`; every stored leg ended.
pub async fn assert_clean_end(store: &Store, cv: &str) -> Value {
    let cdr = wait_cdr(store, cv).await;
    let rows = callbacks(store, cv).await;
    let cdrs: Vec<_> = rows.iter().filter(|(k, _)| k == "cdr").collect();
    assert_eq!(cdrs.len(), 1, "{cv}: {rows:?}");
    assert_eq!(
        rows.last().map(|(k, _)| k.as_str()),
        Some("cdr"),
        "{cv}: {rows:?}"
    );
    let order = ["initiated", "ringing", "answered", "completed"];
    let mut per_leg: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (kind, body) in &rows {
        if kind == "status" {
            let status = body["callStatus"].as_str().unwrap();
            let rank = order.iter().position(|s| *s == status).unwrap();
            per_leg
                .entry(body["callSid"].as_str().unwrap().to_string())
                .or_default()
                .push(rank);
        }
    }
    let stored = legs(store, cv).await;
    assert_eq!(cdr["cdrs"].as_array().unwrap().len(), stored.len(), "{cdr}");
    for leg in &stored {
        assert_eq!(leg.state, "completed", "{cv}: {leg:?}");
        let ranks = per_leg.get(&leg.id).cloned().unwrap_or_default();
        assert!(
            ranks.windows(2).all(|w| w[0] < w[1]),
            "{cv} leg {}: {ranks:?}",
            leg.id
        );
        assert_eq!(ranks.last(), Some(&3), "{cv} leg {}: {ranks:?}", leg.id);
    }
    cdr
}

async fn start(app: &TestApp, caller: &str, callee: &str, extra: Value) -> String {
    let body = patched(
        json!({"action": "click2call", "caller": caller, "callee": callee}),
        extra,
    );
    let a = app.post(&app.ctc_path(), &body).await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    a.body["conversationSid"].as_str().unwrap().to_string()
}

async fn add(app: &TestApp, cv: &str, callee: &str) {
    let a = app
        .post(
            &format!("{}/{cv}", app.ctc_path()),
            &json!({"action": "addCall", "callee": callee}),
        )
        .await;
    assert_eq!(a.code(), "00000", "{}", a.body);
}

both_backends! {
    /// SIGKILL while conversations are in every shape, the media server alive: the next
    /// process takes them over as they are and they end as their parties end them.
    async fn sigkill_in_every_shape(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let _sandbox = sandbox(media_port, "1", dir.path());
        let media = Media::connect(media_port).await;
        let (mut first, address) = server(&db, media_port, dir.path(), "10").await;
        let app = customer(&address, 100).await;
        let store = db.store().await;

        let three = start(&app, "13900000001", "13900000002", json!({})).await;
        let adding = start(&app, "13900000011", "13900000012", json!({})).await;
        let caller_gone = start(&app, "13900000021", "13900000022", json!({"maxDuration": 600})).await;
        let canceled = start(&app, "13900000031", "13900000032", json!({})).await;
        let recorded = start(&app, "13900000041", "13900000042", json!({"record": 2})).await;
        let notice = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id, "to": "13800000051",
            "contents": [{"type": "number", "content": "1"}, {"type": "number", "content": "2"}], "times": 3})).await;
        let notice = notice.body["callid"].as_str().unwrap().to_string();
        for cv in [&three, &adding, &caller_gone, &canceled, &recorded] {
            wait_leg(&store, cv, 1, "answered").await;
        }
        add(&app, &three, "13900000003").await;
        add(&app, &adding, "13900009996").await;
        add(&app, &caller_gone, "13900000023").await;
        wait_leg(&store, &three, 2, "answered").await;
        wait_leg(&store, &caller_gone, 2, "answered").await;
        wait_leg(&store, &adding, 2, "ringing").await;

        // The caller leaves the three-party call, a cancel is on its way: SIGKILL.
        let caller = legs(&store, &caller_gone).await[0].id.clone();
        media.hang_up(&caller).await;
        let cancel = {
            let (client, url, sid, token) = (app.client.clone(), app.url(&format!("{}/{canceled}", app.ctc_path())), app.sid.clone(), app.token.clone());
            tokio::spawn(async move {
                let r = client.post(url).basic_auth(sid, Some(token)).json(&json!({"action": "cancelCall"})).send().await;
                match r {
                    Ok(r) => r.json::<Value>().await.ok().and_then(|b| b["statusCode"].as_str().map(str::to_string)),
                    Err(_) => None,
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.0.kill().unwrap();
        first.0.wait().unwrap();
        let cancel_answer = cancel.await.unwrap();

        let (_second, address) = server(&db, media_port, dir.path(), "10").await;
        let mut app = app;
        app.address = address;
        // Taken over once the dead process's lease runs out (10 s): the party being added
        // (it answers 10 s after it was dialled) joins the others under the new process.
        wait_leg(&store, &adding, 2, "answered").await;
        let started = Instant::now();
        while store.conversation_state_of(&adding).await.unwrap() != Some(voicepaas::store::conversations::ConversationState::ThreeWay) {
            assert!(started.elapsed() < Duration::from_secs(30), "never three-way: {:?}", legs(&store, &adding).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The rest is ended by the customer, through the new process.
        for cv in [&three, &adding, &caller_gone, &recorded, &canceled] {
            let a = app.post(&format!("{}/{cv}", app.ctc_path()), &json!({"action": "cancelCall"})).await;
            assert!(["00000", "10007"].contains(&a.code()), "{}", a.body);
        }
        for cv in [&three, &adding, &caller_gone, &canceled, &recorded] {
            let cdr = assert_clean_end(&store, cv).await;
            assert_eq!(cdr["byeType"], "6", "{cdr}");
        }
        let legs_of = |cdr: &Value| cdr["cdrs"].as_array().unwrap().len();
        assert_eq!(legs_of(&wait_cdr(&store, &three).await), 3);
        assert_eq!(legs_of(&wait_cdr(&store, &adding).await), 3);
        // byeType 6 above: the callee and the party talked on after the caller left.
        if cancel_answer.as_deref() == Some("00000") {
            // Accepted before the kill: the conversation had ended (or ended) as canceled.
            assert_eq!(wait_cdr(&store, &canceled).await["byeType"], "6");
        }
        let rec = wait_cdr(&store, &recorded).await;
        let secs: i64 = rec["recordingDuration"].as_str().unwrap().parse().unwrap();
        assert!(secs >= 10, "{rec}");
        let file = dir.path().join("recordings").join(format!("{recorded}.wav"));
        let info = voicepaas::domain::prompt::check_wav(&std::fs::read(&file).unwrap()).unwrap();
        assert!(info.duration_ms >= 10_000, "{info:?}");
        let result = wait_cdr(&store, &notice).await;
        assert_eq!((result["result"].as_str(), result["reason"].as_str()), (Some("0"), Some("")), "{result}");
        assert_eq!(store.count_cdrs().await.unwrap(), 6);
    }
}

both_backends! {
    /// SIGKILL of the platform and of the media server together: when both come back
    /// (the media server without its channels), every acknowledged call ends with exactly
    /// one CDR, its legs failed.
    async fn sigkill_with_the_media_server(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let sandbox_proc = sandbox(media_port, "1", dir.path());
        let (mut first, address) = server(&db, media_port, dir.path(), "2").await;
        let app = customer(&address, 100).await;
        let store = db.store().await;
        let bridged = start(&app, "13900000101", "13900000102", json!({})).await;
        let three = start(&app, "13900000111", "13900000112", json!({})).await;
        wait_leg(&store, &bridged, 1, "answered").await;
        wait_leg(&store, &three, 1, "answered").await;
        add(&app, &three, "13900000113").await;
        wait_leg(&store, &three, 2, "answered").await;
        let notice = app.post(&app.account_path("VoiceNotices"), &app.notice("13800000151")).await;
        let notice = notice.body["callid"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(sandbox_proc);
        first.0.kill().unwrap();
        first.0.wait().unwrap();

        let _sandbox = sandbox(media_port, "1", dir.path());
        let (_second, _) = server(&db, media_port, dir.path(), "2").await;
        for cv in [&bridged, &three] {
            let cdr = assert_clean_end(&store, cv).await;
            let causes: Vec<&str> = cdr["cdrs"].as_array().unwrap().iter().map(|l| l["cause"].as_str().unwrap()).collect();
            assert!(causes.iter().all(|c| *c == "failed"), "{cdr}");
        }
        let result = wait_cdr(&store, &notice).await;
        assert_eq!((result["result"].as_str(), result["reason"].as_str()), (Some("1"), Some("2")), "{result}");
    }
}

/// The lease epoch in an `Application-UUID` (`g<generation>r<run>`, the epoch in the
/// generation's high half).
fn epoch_of(app_uuid: &str) -> Option<u64> {
    let hex = app_uuid.strip_prefix('g')?.split('r').next()?;
    u64::from_str_radix(hex, 16).ok().map(|g| g >> 32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// A process paused past its lease (SIGSTOP, as a long GC pause or a frozen VM would)
/// while another takes its calls over: resumed, it finds its lease gone and drives none of
/// them any more. On PostgreSQL, the database replicas share.
async fn a_paused_process_stops_driving_its_calls() {
    let Some(db) =
        TestDb::postgres("api::engine_faults::a_paused_process_stops_driving_its_calls").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let media_port = free_port();
    let _sandbox = sandbox(media_port, "1", dir.path());
    let media = Media::connect(media_port).await;
    let (first, address) = server(&db, media_port, dir.path(), "10").await;
    let app = customer(&address, 100).await;
    let store = db.store().await;
    let cv = start(&app, "13900000201", "13900000202", json!({})).await;
    let notice = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id, "to": "13800000251",
        "contents": (0..20).map(|i| json!({"type": "number", "content": i.to_string()})).collect::<Vec<_>>(), "times": 3})).await;
    let notice = notice.body["callid"].as_str().unwrap().to_string();
    wait_leg(&store, &cv, 1, "answered").await;

    signal(&first, "-STOP");
    let (_second, _) = server(&db, media_port, dir.path(), "10").await;
    // The second process takes both calls over once the paused one's lease runs out.
    let started = Instant::now();
    let epochs = |runs: &[(String, String)], uuid: &str| -> BTreeSet<u64> {
        runs.iter()
            .filter(|(u, _)| u == uuid)
            .filter_map(|(_, a)| epoch_of(a))
            .collect()
    };
    loop {
        let runs = media.runs.lock().unwrap().clone();
        if epochs(&runs, &notice).len() >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never taken over: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken_over = media.runs.lock().unwrap().len();
    signal(&first, "-CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // After the takeover, only the new process ran anything on the notice's channel.
    let runs = media.runs.lock().unwrap().clone();
    let after: BTreeSet<u64> = runs[taken_over..]
        .iter()
        .filter(|(u, _)| *u == notice)
        .filter_map(|(_, a)| epoch_of(a))
        .collect();
    assert!(
        after.len() <= 1,
        "two processes drove the notice: {after:?}"
    );
    // The conversation is ended through the first (resumed) process's API: it no longer
    // drives it, so the command goes to the one that does.
    let a = app
        .post(
            &format!("{}/{cv}", app.ctc_path()),
            &json!({"action": "cancelCall"}),
        )
        .await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    let cdr = assert_clean_end(&store, &cv).await;
    assert_eq!(cdr["byeType"], "6");
    let result = wait_cdr(&store, &notice).await;
    assert_eq!(
        callbacks(&store, &notice)
            .await
            .iter()
            .filter(|(k, _)| k == "result")
            .count(),
        1,
        "{result}"
    );
    let row = store
        .calls_of_request(result["requestid"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(row[0].state, "completed");
}

fn signal(process: &Proc, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

both_backends! {
    /// A write the database refuses (here a trigger refusing one caller's answer, for
    /// good): the call's driver gives up, and the call is ended from what is stored: its
    /// channels hung up, its legs `failed`, its CDR and callbacks written.
    async fn a_refused_write_ends_the_call(db: TestDb) {
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10")]).await;
        let created = app.create_app(&app.sid, json!({"name": "f", "statusUrl": "https://example.com/s", "cdrUrl": "https://example.com/c"})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let refused = "13900000777";
        if db.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(&format!("CREATE TRIGGER refuse_answer BEFORE UPDATE OF state ON calls \
                WHEN NEW.state = 'answered' AND NEW.to_number = '{refused}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"))
                .execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(&format!("CREATE FUNCTION refuse_answer() RETURNS trigger AS $$ BEGIN \
                IF NEW.state = 'answered' AND NEW.to_number = '{refused}' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                RETURN NEW; END $$ LANGUAGE plpgsql")).execute(&pool).await.unwrap();
            sqlx::query("CREATE TRIGGER refuse_answer BEFORE UPDATE ON calls FOR EACH ROW EXECUTE FUNCTION refuse_answer()")
                .execute(&pool).await.unwrap();
        }
        let cv = start(&app, refused, "13900000002", json!({})).await;
        let store = db.store().await;
        let cdr = assert_clean_end(&store, &cv).await;
        let causes: Vec<&str> = cdr["cdrs"].as_array().unwrap().iter().map(|l| l["cause"].as_str().unwrap()).collect();
        assert!(causes.iter().all(|c| *c == "failed"), "{cdr}");
        assert_eq!(cdr["byeType"], "0", "the caller's answer was never recorded: {cdr}");
    }
}

both_backends! {
    /// A leg whose end the platform never hears (here its channel is re-tagged to another
    /// installation, so the Event Socket filter drops its hangup, then hung up): the sweep
    /// of the node's channel list notices it missing, asks about it, and the call ends with
    /// its CDR within about half a minute.
    async fn a_channel_gone_unheard_is_swept(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let _sandbox = sandbox(media_port, "1", dir.path());
        let (_server, address) = server(&db, media_port, dir.path(), "2").await;
        let app = customer(&address, 10).await;
        let store = db.store().await;
        let media = Media::connect(media_port).await;
        let cv = start(&app, "13900000171", "13900000172", json!({})).await;
        wait_leg(&store, &cv, 1, "answered").await;
        let callee = legs(&store, &cv).await[1].id.clone();
        let out = media.client.api(&format!("uuid_setvar {callee} voicepaas_install someone-else")).await.unwrap();
        assert!(out.starts_with("+OK"), "{out}");
        media.hang_up(&callee).await;
        // Two sweeps (24 s) and the probe; unswept, nothing would end it before the
        // caller's own hang-up 30 s after its answer.
        let cdr = wait_cdr_within(&store, &cv, Duration::from_secs(27)).await;
        let callee_leg = &cdr["cdrs"][1];
        assert_eq!((callee_leg["cause"].as_str(), callee_leg["hangupCause"].as_str()), (Some("failed"), Some("MEDIA_LOST")), "{cdr}");
    }
}

/// Waits (up to `limit`) for the CDR of `id`.
async fn wait_cdr_within(store: &Store, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        if let Some(body) = store.cdr_body(id).await.unwrap() {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(
            started.elapsed() < limit,
            "no CDR for {id} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_backends! {
    /// No channel outlives a crash of the platform: every channel carries its own ceiling
    /// (`VOICEPAAS_CHANNEL_MAX_SECS`, here 10 s from its creation), so with the process
    /// killed and none to replace it the media server still hangs the call up, long
    /// before its parties would (30 s after answering).
    async fn channels_end_by_themselves_after_a_crash(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let _sandbox = sandbox(media_port, "2", dir.path());
        let (mut process, address) = server_with(&db, media_port, dir.path(), &[("VOICEPAAS_CHANNEL_MAX_SECS", "10")]).await;
        let app = customer(&address, 10).await;
        let store = db.store().await;
        let media = Media::connect(media_port).await;
        let cv = start(&app, "13900000181", "13900000182", json!({})).await;
        wait_leg(&store, &cv, 1, "answered").await;
        let uuids: Vec<String> = legs(&store, &cv).await.into_iter().map(|l| l.id).collect();
        process.0.kill().unwrap();
        process.0.wait().unwrap();
        let killed = Instant::now();
        for uuid in &uuids {
            loop {
                let exists = media.client.api(&format!("uuid_exists {uuid}")).await.unwrap();
                if exists.trim() == "false" {
                    break;
                }
                // 10 sandbox seconds are 5 s here; the parties' own hang-up, 15 s.
                assert!(killed.elapsed() < Duration::from_secs(9), "{uuid} still up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

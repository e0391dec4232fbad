//! The agent session (agents' contract §4–§6, §7.1 login/logout/ready/pause/getState/ping,
//! §8.3): over a real socket to the real server, and over REST (§5).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_client::{AgentSocket, Got};
use crate::both_backends;
use crate::helpers::{TestApp, TestDb};

/// Creates agent `agent_no` (password `s3cret!`) with extra fields.
pub async fn agent(app: &TestApp, agent_no: &str, extra: Value) -> Value {
    let mut body = json!({"agentNo": agent_no, "pwd": "s3cret!", "name": "Li Lei"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let a = app.cti(Method::POST, "Agents", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["agent"].clone()
}

/// A socket of `agent_no`, authenticated.
pub async fn signed_in(app: &TestApp, agent_no: &str) -> AgentSocket {
    let mut socket = AgentSocket::open(&app.address, &app.app_id, agent_no).await;
    let r = socket.auth("s3cret!").await;
    assert_eq!(r["statusCode"], "00000", "{r}");
    socket
}

fn ok(reply: &Value) -> &Value {
    assert_eq!(
        (reply["statusCode"].as_str(), reply["statusMsg"].as_str()),
        (Some("00000"), Some("success")),
        "{reply}"
    );
    &reply["data"]
}

fn refused(reply: &Value, code: &str, msg: &str) {
    assert_eq!(
        (reply["statusCode"].as_str(), reply["statusMsg"].as_str()),
        (Some(code), Some(msg)),
        "{reply}"
    );
}

/// Checks a statusEvent frame's seq and fields; its data.
fn status(frame: &Value, seq: i64, name: &str, work: &str, pause: &str) -> Value {
    assert_eq!(frame["type"], "statusEvent", "{frame}");
    assert_eq!(frame["seq"], seq, "{frame}");
    let d = &frame["data"];
    assert_eq!(
        (
            d["eventName"].as_str(),
            d["workStatus"].as_str(),
            d["pauseCause"].as_str()
        ),
        (Some(name), Some(work), Some(pause)),
        "{frame}"
    );
    let t = d["timestamp"].as_str().unwrap();
    assert!(t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()));
    d.clone()
}

pub async fn command(
    app: &TestApp,
    agent_no: &str,
    cmd: &str,
    params: Value,
) -> crate::helpers::Answer {
    app.cti(
        Method::POST,
        &format!("Agents/{agent_no}/Commands"),
        Some(json!({"cmd": cmd, "params": params})),
    )
    .await
}

both_backends! {
    /// auth, login, pause, ready, getState, ping, logout: replies and events as written.
    async fn a_working_day_in_brief(db: TestDb) {
        let app = db.spawn(&[]).await;
        let created = agent(&app, "1001", json!({})).await;
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        let r = s.auth("s3cret!").await;
        assert_eq!(r["id"], 1);
        let d = ok(&r);
        assert_eq!(d, &json!({"agentNo": "1001", "name": "Li Lei", "role": "agent", "phoneType": "3", "workStatus": "0",
            "agentState": "offline", "pauseCause": "", "pstnNumber": "", "sipNumber": "80000001", "sipPwd": created["sipPwd"],
            "sipDomain": "voicepaas.local", "wsAddr": "", "sessionSid": "", "lastSeq": "0", "resumed": "0"}));

        let r = s.request("login", json!({})).await;
        let d = ok(&r).clone();
        let sid = d["sessionSid"].as_str().unwrap().to_string();
        assert_id(&d["sessionSid"], "AG");
        assert_eq!((d["workStatus"].as_str(), d["agentState"].as_str(), d["lastSeq"].as_str()), (Some("1"), Some("ready"), Some("1")));
        assert_ne!(d["sipPwd"], created["sipPwd"], "a WebPhone login hands out a new sipPwd");
        let e = s.take_events(1).await;
        let login = status(&e[0], 1, "login", "ready", "");
        assert_eq!(login, json!({"eventName": "login", "appSid": app.app_id, "agentNo": "1001", "workStatus": "ready",
            "pauseCause": "", "wrapupTime": "", "readyCause": "", "timestamp": login["timestamp"], "phoneType": "3",
            "sessionSid": sid, "logoutCause": "", "forcedBy": ""}));

        ok(&s.request("pause", json!({"pauseCause": "小休"})).await);
        status(&s.take_events(1).await[0], 2, "pause", "pause", "小休");
        let state = ok(&s.request("getState", json!({})).await).clone();
        assert_eq!(state, json!({"agentNo": "1001", "workStatus": "pause", "agentState": "pause", "pauseCause": "小休",
            "phoneType": "3", "sessionSid": sid, "lastSeq": "2", "calls": []}));
        ok(&s.request("ready", json!({})).await);
        status(&s.take_events(1).await[0], 3, "ready", "ready", "");
        let pong = ok(&s.request("ping", json!({})).await).clone();
        assert_eq!(pong["serverTime"].as_str().unwrap().len(), 14);
        // A re-login updates the work status and says login again.
        let r = s.request("login", json!({"workStatus": "2", "pauseCause": "培训"})).await;
        assert_eq!((ok(&r)["workStatus"].as_str(), ok(&r)["sessionSid"].as_str()), (Some("2"), Some(sid.as_str())));
        status(&s.take_events(1).await[0], 4, "login", "pause", "培训");
        ok(&s.request("logout", json!({})).await);
        let logout = status(&s.take_events(1).await[0], 5, "logout", "offline", "");
        assert_eq!(logout["logoutCause"], "");
        // The socket stays open; the agent is offline.
        let state = ok(&s.request("getState", json!({})).await).clone();
        assert_eq!((state["agentState"].as_str(), state["sessionSid"].as_str()), (Some("offline"), Some("")));
        // A new login is a new session, counting from 1.
        let d = ok(&s.request("login", json!({"phoneType": "3"})).await).clone();
        assert_ne!(d["sessionSid"], sid.as_str());
        status(&s.take_events(1).await[0], 1, "login", "ready", "");
    }
}

both_backends! {
    /// The §6 table for the states a session reaches without a call, and the parameter
    /// checks of login and pause.
    async fn commands_refused_by_state(db: TestDb) {
        let app = db.spawn(&[]).await;
        agent(&app, "1001", json!({})).await;
        let mut s = signed_in(&app, "1001").await;
        for cmd in ["logout", "ready", "pause", "callOut", "answer", "bridge", "hangup", "setUserData", "holdCall",
            "retrieveCall", "transfer", "consult", "sendDtmf"] {
            refused(&s.request(cmd, json!({})).await, "20103", "agent not logged in");
        }
        // Supervisors' commands: the role first.
        for cmd in ["monitor", "barge", "intercept"] {
            refused(&s.request(cmd, json!({"agentNo": "1002"})).await, "20106", "supervisor role required");
        }
        ok(&s.request("login", json!({})).await);
        for state_cmd in ["ready", "pause"] {
            if state_cmd == "pause" {
                ok(&s.request("pause", json!({})).await);
            }
            for cmd in ["answer", "bridge", "hangup", "setUserData", "holdCall", "retrieveCall", "transfer", "consult",
                "consultTransfer", "consultConference", "cancelConsult", "sendDtmf"] {
                refused(&s.request(cmd, json!({})).await, "20104", "not allowed in the agent's current state");
            }
        }
        refused(&s.request("dance", json!({})).await, "20111", "unknown command");
        refused(&s.request("pause", json!({"pauseCause": "wrapup"})).await, "10004", "invalid pauseCause: wrapup is the platform's own");
        refused(&s.request("pause", json!({"pauseCause": "x".repeat(33)})).await, "10004", "invalid pauseCause (1-32 characters, no control characters)");
        refused(&s.request("login", json!({"phoneType": "4"})).await, "10004", "phoneType must be 1, 2 or 3");
        refused(&s.request("login", json!({"phoneType": "2"})).await, "20110", "no pstnNumber bound to the agent");
        refused(&s.request("auth", json!({"pwd": "s3cret!"})).await, "10004", "this socket is already authenticated");
        // Unreadable frames: 10002 with id "".
        s.send_text("{not json".into()).await;
        let Got::Frame(f) = s.next().await else { panic!("a reply") };
        assert_eq!((f["id"].as_str(), f["statusCode"].as_str()), (Some(""), Some("10002")));
    }
}

both_backends! {
    /// Authentication refusals: wrong password (4001), disabled (20102, 4001), no auth
    /// first (20100, 4003), unreadable first frame (4003), tokens, throttling.
    async fn authentication(db: TestDb) {
        let app = db.spawn(&[]).await;
        agent(&app, "1001", json!({})).await;
        agent(&app, "1002", json!({"enabled": false})).await;
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.auth("wrong!").await, "20101", "agent authentication failed");
        assert_eq!(s.closed().await, 4001);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "nobody").await;
        refused(&s.auth("s3cret!").await, "20101", "agent authentication failed");
        assert_eq!(s.closed().await, 4001);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1002").await;
        refused(&s.auth("s3cret!").await, "20102", "agent disabled");
        assert_eq!(s.closed().await, 4001);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.request("login", json!({})).await, "20100", "authenticate first");
        assert_eq!(s.closed().await, 4003);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        s.send_text("[]".into()).await;
        assert!(matches!(s.next().await, Got::Frame(f) if f["statusCode"] == "10002"));
        assert_eq!(s.closed().await, 4003);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.request("auth", json!({"pwd": "s3cret!", "token": "agt_x"})).await, "10004", "auth needs exactly one of pwd and token");

        // Tokens: accepted until revoked; a socket opened with one closes (4001) on revoke.
        let t = app.cti(Method::POST, "Agents/1001/Tokens", Some(json!({}))).await;
        let token = t.body["token"].as_str().unwrap().to_string();
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        ok(&s.request("auth", json!({"token": token})).await);
        app.cti(Method::DELETE, "Agents/1001/Tokens", None).await;
        assert_eq!(s.closed().await, 4001);
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.request("auth", json!({"token": token})).await, "20101", "agent authentication failed");

        // Five failures, then each attempt waits (1 s after the fifth); tokens are never held back.
        for _ in 0..4 {
            let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
            refused(&s.auth("wrong!").await, "20101", "agent authentication failed");
        }
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.auth("s3cret!").await, "20101", "too many failed attempts");
        let t = app.cti(Method::POST, "Agents/1001/Tokens", Some(json!({}))).await;
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        ok(&s.request("auth", json!({"token": t.body["token"]})).await);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        ok(&s.auth("s3cret!").await);
        // The success cleared the count.
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        refused(&s.auth("wrong!").await, "20101", "agent authentication failed");
    }
}

both_backends! {
    /// A second authentication takes the agent over: the first socket gets kicked_out and
    /// 4002; the session goes on, and a resume replays what the socket missed.
    async fn takeover_and_resume(db: TestDb) {
        let app = db.spawn(&[]).await;
        agent(&app, "1001", json!({})).await;
        let mut first = signed_in(&app, "1001").await;
        let d = ok(&first.request("login", json!({})).await).clone();
        let sid = d["sessionSid"].as_str().unwrap().to_string();
        first.take_events(1).await;

        let mut second = signed_in(&app, "1001").await;
        assert_eq!(first.closed().await, 4002);
        assert_eq!(first.events.pop().unwrap(), json!({"type": "connEvent", "data": {"connEvent": "kicked_out", "statusCode": "20112"}}));
        let state = ok(&second.request("getState", json!({})).await).clone();
        assert_eq!((state["sessionSid"].as_str(), state["agentState"].as_str()), (Some(sid.as_str()), Some("ready")));

        // Events while the socket is away are replayed on resume, with their own seqs.
        ok(&second.request("pause", json!({"pauseCause": "a"})).await);
        second.take_events(1).await;
        second.close().await;
        assert_eq!(command(&app, "1001", "ready", json!({})).await.code(), "00000");
        assert_eq!(command(&app, "1001", "pause", json!({"pauseCause": "b"})).await.code(), "00000");
        let mut third = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        let r = third.request("auth", json!({"pwd": "s3cret!", "sessionSid": sid, "lastSeq": "2"})).await;
        let d = ok(&r);
        assert_eq!((d["resumed"].as_str(), d["lastSeq"].as_str(), d["sessionSid"].as_str()), (Some("1"), Some("4"), Some(sid.as_str())));
        let replay = third.take_events(2).await;
        status(&replay[0], 3, "ready", "ready", "");
        status(&replay[1], 4, "pause", "pause", "b");
        // Then live, without a gap.
        ok(&third.request("ready", json!({})).await);
        status(&third.take_events(1).await[0], 5, "ready", "ready", "");
        // Another sessionSid does not resume.
        let mut fourth = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        let r = fourth.request("auth", json!({"pwd": "s3cret!", "sessionSid": "AG0", "lastSeq": "1"})).await;
        assert_eq!(ok(&r)["resumed"], "0");
    }
}

both_backends! {
    /// A logged-in agent without a socket is logged out after the grace period
    /// (`disconnected`); a REST login with no socket is socketless and stays.
    async fn grace_period_and_socketless_sessions(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_CTI_GRACE_SECONDS", "1")]).await;
        agent(&app, "1001", json!({})).await;
        agent(&app, "1002", json!({})).await;
        let mut s = signed_in(&app, "1001").await;
        ok(&s.request("login", json!({})).await);
        s.close().await;
        let a = command(&app, "1002", "login", json!({})).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        assert_eq!(a.body["data"]["agentState"], "ready");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let a = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(a.body["data"]["agentState"], "offline", "logged out after the grace");
        let a = command(&app, "1002", "getState", json!({})).await;
        assert_eq!(a.body["data"]["agentState"], "ready", "socketless: no grace rule");
        let logout = db.text("SELECT frame FROM agent_events WHERE seq = 2 AND frame LIKE '%\"logout\"%'").await.unwrap();
        assert!(logout.contains("\"logoutCause\":\"disconnected\""), "{logout}");
        // A socket back in time keeps the session.
        let mut s = signed_in(&app, "1001").await;
        ok(&s.request("login", json!({})).await);
        s.close().await;
        let mut s = signed_in(&app, "1001").await;
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(ok(&s.request("getState", json!({})).await)["agentState"], "ready");
    }
}

both_backends! {
    /// REST commands answer the socket's reply with the §2 HTTP statuses.
    async fn commands_over_rest(db: TestDb) {
        let app = db.spawn(&[]).await;
        agent(&app, "1001", json!({})).await;
        let a = command(&app, "1001", "logout", json!({})).await;
        assert_eq!((a.status, a.code(), a.msg()), (409, "20103", "agent not logged in"));
        let a = command(&app, "1001", "ping", json!({})).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "ping is a socket command"));
        let a = command(&app, "1001", "dance", json!({})).await;
        assert_eq!((a.status, a.code()), (400, "20111"));
        let a = command(&app, "1009", "login", json!({})).await;
        assert_eq!((a.status, a.code()), (404, "20001"));
        let a = command(&app, "1001", "login", json!({"workStatus": "2", "pauseCause": "meeting"})).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        assert_eq!(a.body["data"]["workStatus"], "2");
        let a = command(&app, "1001", "login", json!({"workStatus": "3"})).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "workStatus must be 1 or 2"));
        let a = app.cti(Method::POST, "Agents/1001/Commands", Some(json!({"cmd": "ready", "params": [1]}))).await;
        assert_eq!((a.status, a.msg()), (400, "params must be an object"));
        // Deleting a logged-in agent is refused; disabling logs it out and closes its socket (4005).
        let mut s = signed_in(&app, "1001").await;
        let a = app.cti(Method::DELETE, "Agents/1001", None).await;
        assert_eq!((a.status, a.code()), (409, "20004"));
        app.cti(Method::PATCH, "Agents/1001", Some(json!({"enabled": false}))).await;
        assert_eq!(s.closed().await, 4005);
        let logout = s.events.iter().find(|e| e["data"]["eventName"] == "logout").unwrap();
        assert_eq!(logout["data"]["logoutCause"], "disabled");
        let a = app.cti(Method::DELETE, "Agents/1001", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
    }
}

both_backends! {
    /// The socket's limits: an unknown application or a missing agentNo is refused before
    /// the upgrade; an origin outside allowedOrigins is 403; frames over 64 KiB close 1009;
    /// a socket silent past the limit closes 4004; no first frame in 10 s closes 4003.
    async fn socket_limits(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_CTI_SILENCE_SECONDS", "2")]).await;
        agent(&app, "1001", json!({})).await;
        assert_eq!(AgentSocket::open_with(&app.address, "00000000000000000000000000000000", "1001", &[]).await.err(), Some(404));
        assert_eq!(AgentSocket::open_with(&app.address, &app.app_id, "", &[]).await.err(), Some(400));
        app.cti(Method::PATCH, "CtiSettings", Some(json!({"allowedOrigins": ["https://crm.example.com"]}))).await;
        assert_eq!(AgentSocket::open_with(&app.address, &app.app_id, "1001", &[("origin", "https://evil.example.com")]).await.err(), Some(403));
        assert!(AgentSocket::open_with(&app.address, &app.app_id, "1001", &[("origin", "https://crm.example.com")]).await.is_ok());

        let mut s = signed_in(&app, "1001").await;
        s.send_text(format!("{{\"id\":2,\"cmd\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}", "a".repeat(70 * 1024))).await;
        assert_eq!(s.closed().await, 1009);
        let mut s = signed_in(&app, "1001").await;
        // Nothing goes back, not even pongs: the server hears nothing.
        let started = std::time::Instant::now();
        assert_eq!(s.close_code_unanswered().await, 4004);
        assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
        let mut s = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        let started = std::time::Instant::now();
        assert_eq!(s.closed().await, 4003);
        assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
    }
}

/// Two replicas on one PostgreSQL: the agent's socket on one, its commands taken by the
/// other; the events reach the socket in order (LISTEN/NOTIFY), and a takeover from the
/// other replica closes the first socket with 4002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_replicas() {
    let Some(db) = TestDb::postgres("api::agent_sessions::events_cross_replicas").await else {
        return;
    };
    let one = db.spawn(&[]).await;
    let other = crate::replicas::through(&one, &db.spawn(&[]).await.address);
    agent(&one, "1001", json!({})).await;
    let mut s = signed_in(&one, "1001").await;
    for (cmd, params) in [
        ("login", json!({})),
        ("pause", json!({"pauseCause": "a"})),
        ("ready", json!({})),
    ] {
        let a = command(&other, "1001", cmd, params).await;
        assert_eq!(a.code(), "00000", "{}", a.body);
    }
    let events = s.take_events(3).await;
    status(&events[0], 1, "login", "ready", "");
    status(&events[1], 2, "pause", "pause", "a");
    status(&events[2], 3, "ready", "ready", "");
    let mut moved = signed_in(&other, "1001").await;
    assert_eq!(s.closed().await, 4002);
    assert_eq!(
        ok(&moved.request("getState", json!({})).await)["lastSeq"],
        "3"
    );
}

/// A replica killed (-9) while holding an agent's socket: the other replica sees that
/// process stop vouching for its sockets, starts the agent's grace and logs it out
/// (`disconnected`), as if the socket had closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_of_a_killed_replica_start_their_grace() {
    let Some(db) =
        TestDb::postgres("api::agent_sessions::sockets_of_a_killed_replica_start_their_grace")
            .await
    else {
        return;
    };
    let timing = [
        ("VOICEPAAS_CTI_SILENCE_SECONDS", "2"),
        ("VOICEPAAS_CTI_GRACE_SECONDS", "1"),
    ];
    let survivor = db.spawn(&timing).await;
    agent(&survivor, "1001", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_voicepaas"));
    process
        .envs(timing)
        .env("VOICEPAAS_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let (doomed, address) = crate::processes::serve(&db, dir.path(), process).await;
    let mut s = AgentSocket::open(&address, &survivor.app_id, "1001").await;
    ok(&s.auth("s3cret!").await);
    ok(&s.request("login", json!({})).await);
    let kill = std::process::Command::new("kill")
        .args(["-9", &doomed.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = std::time::Instant::now();
    loop {
        let a = command(&survivor, "1001", "getState", json!({})).await;
        if a.body["data"]["agentState"] == "offline" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still logged in: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logout = db
        .text("SELECT frame FROM agent_events WHERE frame LIKE '%\"logout\"%'")
        .await
        .unwrap();
    assert!(
        logout.contains("\"logoutCause\":\"disconnected\""),
        "{logout}"
    );
}

/// The database stops under a logged-in agent: commands answer 10005 (HTTP 503 over REST)
/// without hanging, the socket stays open, and once the database is back the session
/// goes on where it was, with no seq lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_under_a_session() {
    let Some(pg) = crate::own_postgres::OwnPostgres::start(
        "api::agent_sessions::a_database_outage_under_a_session",
    ) else {
        return;
    };
    let db = TestDb::at_postgres(pg.url());
    let app = db.spawn(&[]).await;
    agent(&app, "1001", json!({})).await;
    let mut s = signed_in(&app, "1001").await;
    ok(&s.request("login", json!({})).await);
    status(&s.take_events(1).await[0], 1, "login", "ready", "");

    pg.stop();
    let started = std::time::Instant::now();
    let a = command(&app, "1001", "pause", json!({"pauseCause": "x"})).await;
    assert_eq!((a.status, a.code()), (503, "10005"), "{}", a.body);
    refused(
        &s.request("ready", json!({})).await,
        "10005",
        "service temporarily unavailable, retry later",
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    pg.resume();
    let back = std::time::Instant::now();
    loop {
        let a = command(&app, "1001", "pause", json!({"pauseCause": "back"})).await;
        if a.code() == "00000" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the database is back: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    status(&s.take_events(1).await[0], 2, "pause", "pause", "back");
    assert_eq!(ok(&s.request("getState", json!({})).await)["lastSeq"], "2");
}

both_backends! {
    /// Odd bytes in every place a client controls: the agentNo of the URL (refused before
    /// the upgrade, 10004) and of REST paths (20001), caller-id pool sids, frame ids,
    /// command names and params of the wrong type or with control characters. Each gets
    /// its code; nothing closes the socket or answers 5xx.
    async fn hostile_frames_and_fields(db: TestDb) {
        let app = db.spawn(&[]).await;
        agent(&app, "1001", json!({})).await;
        for odd in ["%00", "..%2F..", "a%20b", "%F0%9F%93%9E", &"9".repeat(300)] {
            let refused_upgrade = AgentSocket::open_with(&app.address, &app.app_id, odd, &[]).await.err();
            assert_eq!(refused_upgrade, Some(400), "{odd}");
            let a = app.cti(Method::POST, &format!("Agents/{odd}/Commands"), Some(json!({"cmd": "getState"}))).await;
            assert!(a.status == 404 && a.code() == "20001", "{odd}: {} {}", a.status, a.body);
        }
        for odd in ["%00", "CP%00", "x"] {
            let a = app.cti(Method::GET, &format!("CallerIdPools/{odd}"), None).await;
            assert!(a.status == 404 && a.code() == "20006", "{odd}: {} {}", a.status, a.body);
            let a = app.cti(Method::DELETE, &format!("CallerIdPools/{odd}"), None).await;
            assert!(a.status == 404 && a.code() == "20006", "{odd}: {} {}", a.status, a.body);
        }
        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"queues": [{"queueSid": "QU\u{0}"}]}))).await;
        assert_eq!((a.status, a.code()), (404, "20003"), "{}", a.body);
        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"callerIdPoolSid": "CP\u{0}"}))).await;
        assert_eq!((a.status, a.code()), (404, "20006"), "{}", a.body);
        let mut s = signed_in(&app, "1001").await;
        ok(&s.request("login", json!({})).await);
        s.take_events(1).await;
        for (frame, code) in [
            (r#"{"id":1,"cmd":5}"#, "20111"),
            (r#"{"id":2,"cmd":"pause","params":{"pauseCause":{"a":1}}}"#, "10004"),
            (r#"{"id":3,"cmd":"pause","params":{"pauseCause":"a\u0000b"}}"#, "10004"),
            (r#"{"id":4,"cmd":"login","params":{"phoneType":"3\n"}}"#, "10004"),
            (r#"{"id":5,"cmd":"login","params":{"workStatus":[1]}}"#, "10004"),
            (r#"{"id":"x","cmd":"getState"}"#, "00000"),
            (r#"{"id":1e400,"cmd":"getState"}"#, "10002"),
            (r#"{"id":6,"cmd":"getState","params":"x"}"#, "00000"),
        ] {
            s.send_text(frame.to_string()).await;
            let Got::Frame(f) = s.next().await else { panic!("closed after {frame}") };
            assert_eq!(f["statusCode"], code, "{frame}: {f}");
        }
        // Pause causes are any UTF-8 text, emoji included.
        ok(&s.request("pause", json!({"pauseCause": "☕ 小休"})).await);
        status(&s.take_events(1).await[0], 2, "pause", "pause", "☕ 小休");
    }
}

/// A media server that is a FreeSWITCH knowing no SIP registration: an Event Socket peer
/// answering every command with `+OK`, `sofia_contact` with `error/user_not_registered`
/// as FreeSWITCH does for a device that is not registered (esl-transcripts 86), and the
/// sandbox's own `voicepaas_inbound` as FreeSWITCH answers a command it does not have.
pub async fn unregistering_media() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"Content-Type: auth/request\n\n").await;
                let mut command = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.is_empty() {
                        if command.is_empty() {
                            command = line;
                        }
                        continue;
                    }
                    let reply = if let Some(api) = command.strip_prefix("api ") {
                        let body = if api.starts_with("sofia_contact") {
                            "error/user_not_registered"
                        } else if api.starts_with("voicepaas_inbound") {
                            "-ERR voicepaas_inbound Command not found!\n"
                        } else {
                            "+OK\n"
                        };
                        format!(
                            "Content-Type: api/response\nContent-Length: {}\n\n{body}",
                            body.len()
                        )
                    } else {
                        "Content-Type: command/reply\nReply-Text: +OK\n\n".to_string()
                    };
                    let _ = write.write_all(reply.as_bytes()).await;
                    command.clear();
                }
            });
        }
    });
    port
}

both_backends! {
    /// A SIP phone login is refused with 20109 while its sipNumber is registered on no
    /// media server; the sandbox counts every device as registered.
    async fn sip_phone_login_needs_a_registration(db: TestDb) {
        let port = unregistering_media().await;
        let media = format!("esl://:ClueCon@127.0.0.1:{port}");
        let app = db.spawn(&[("VOICEPAAS_MEDIA", media.as_str())]).await;
        agent(&app, "1001", json!({"phoneType": 1})).await;
        let mut s = signed_in(&app, "1001").await;
        let started = std::time::Instant::now();
        loop {
            let r = s.request("login", json!({})).await;
            if r["statusCode"] == "20109" {
                refused(&r, "20109", "SIP device not registered");
                break;
            }
            // Until the media connection is up: 10005.
            assert_eq!(r["statusCode"], "10005", "{r}");
            assert!(started.elapsed() < Duration::from_secs(10), "{r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = command(&app, "1001", "login", json!({"phoneType": "1"})).await;
        assert_eq!((a.status, a.code()), (409, "20109"), "{}", a.body);
        // A WebPhone login is not held to it (its registration decides its offers).
        ok(&s.request("login", json!({"phoneType": "3"})).await);

        let sandbox = db.spawn(&[]).await;
        agent(&sandbox, "1001", json!({"phoneType": 1})).await;
        let a = command(&sandbox, "1001", "login", json!({})).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "{}", a.body);
    }
}

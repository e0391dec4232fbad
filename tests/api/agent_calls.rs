//! Agents' calls (agents' contract §7.1 callOut, hangup, sendDtmf, setUserData, getState
//! calls; §8.1 callEvents; §8.5 masking; §10 agent CDRs): over a real socket to the real
//! server and the sandbox, whose agent devices answer by themselves.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_client::AgentSocket;
use crate::agent_sessions::{agent, command, signed_in};
use crate::both_backends;
use crate::helpers::{TestApp, TestDb, wait_cdr};

fn ok(reply: &Value) -> &Value {
    assert_eq!(reply["statusCode"], "00000", "{reply}");
    &reply["data"]
}

/// A callOut's events until its user and agent talk (`/2` the agent's leg, `/1` the
/// user's, `+`/`-` isBridged).
pub(crate) const CALL_OUT_CONNECTS: [&str; 7] = [
    "initiated/2",
    "ringing/2",
    "answered/2-",
    "initiated/1",
    "ringing/1",
    "answered/1+",
    "answered/2+",
];

/// The next frames, as `name/subtype(+|-)` for callEvents and `st name` for statusEvents,
/// checking that seqs follow `after`.
pub(crate) async fn script(
    socket: &mut AgentSocket,
    n: usize,
    after: i64,
) -> (Vec<String>, Vec<Value>) {
    let frames = socket.take_events(n).await;
    let mut names = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["seq"], after + 1 + i as i64, "{f}");
        let d = &f["data"];
        names.push(match f["type"].as_str() {
            Some("callEvent") => {
                let mut s = format!(
                    "{}/{}",
                    d["eventName"].as_str().unwrap(),
                    d["callSubtype"].as_str().unwrap()
                );
                if d["eventName"] == "answered" {
                    s.push(if d["isBridged"] == "1" { '+' } else { '-' });
                }
                for cause in ["failedCause", "completedCause"] {
                    if let Some(c) = d[cause].as_str().filter(|c| !c.is_empty()) {
                        s.push_str(&format!(" ({c})"));
                    }
                }
                s
            }
            _ => format!("st {}", d["eventName"].as_str().unwrap()),
        });
    }
    (names, frames)
}

/// Logs `agent_no` in (ready) over its socket; the seq of the login event.
pub(crate) async fn ready(app: &TestApp, agent_no: &str) -> AgentSocket {
    let mut socket = signed_in(app, agent_no).await;
    ok(&socket.request("login", json!({})).await);
    let login = socket.take_events(1).await;
    assert_eq!(login[0]["data"]["eventName"], "login");
    socket
}

pub(crate) async fn agent_cdr(app: &TestApp, db: &TestDb, cv: &str) -> Value {
    let store = db.store().await;
    wait_cdr(&store, cv).await;
    let a = app
        .send(Method::GET, &app.account_path(&format!("Cdrs/{cv}")), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["cdr"].clone()
}

both_backends! {
    async fn call_out_to_a_user_who_hangs_up(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let a = agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001"})).await;
        let patch = app.cti(Method::PATCH, "CtiSettings", Some(json!({"recordAgentCalls": true}))).await;
        assert_eq!(patch.status, 200, "{}", patch.body);
        let mut socket = ready(&app, "1001").await;
        let reply = socket
            .request("callOut", json!({"userNumber": "13800009995", "userData": "order 42/张"}))
            .await;
        let data = ok(&reply).clone();
        let cv = data["conversationSid"].as_str().unwrap().to_string();
        let agent_leg = data["callSid"].as_str().unwrap().to_string();
        assert!(cv.starts_with("CV") && agent_leg.starts_with("CA"), "{data}");
        let (names, frames) = script(&mut socket, 11, 1).await;
        assert_eq!(
            names,
            [
                "initiated/2", "ringing/2", "answered/2-", "initiated/1", "ringing/1",
                "answered/1+", "answered/2+", "completed/1", "completed/2", "st completed",
                "st autoReady",
            ]
        );
        let first = &frames[0]["data"];
        let user_leg = frames[3]["data"]["callSid"].as_str().unwrap().to_string();
        assert_eq!(first["callSid"], agent_leg.as_str());
        let t = first["timestamp"].as_str().unwrap().to_string();
        assert!(t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()), "{t}");
        assert_eq!(
            first,
            &json!({
                "eventName": "initiated", "appSid": app.app_id, "agentNo": "1001",
                "agentNumber": a["sipNumber"], "conversationSid": cv, "callSid": agent_leg,
                "failedCause": "", "completedCause": "", "callType": "4", "callSubtype": "2",
                "callState": "idle", "userNumber": "13800009995", "userNumberType": "2",
                "userArea": "", "isBridged": "0", "coAgentNo": "", "userData": "order 42/张",
                "timestamp": t, "queueSid": "", "didNumber": "", "monitorMode": "",
            })
        );
        assert_eq!(frames[5]["data"]["callState"], "connected");
        assert_eq!(frames[7]["data"]["callSid"], user_leg.as_str());
        assert_eq!(frames[9]["data"]["wrapupTime"], "0");
        assert_eq!(frames[10]["data"]["readyCause"], "wrapup");

        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!(
            (cdr["kind"].as_str(), cdr["callType"].as_str(), cdr["agentNo"].as_str(), cdr["byeType"].as_str()),
            (Some("agent"), Some("4"), Some("1001"), Some("3")),
            "{cdr}"
        );
        assert_eq!(cdr["userNumber"], "13800009995");
        assert_eq!(cdr["userData"], "order 42/张");
        assert_eq!(cdr["waitSeconds"], "0");
        // Recorded from the connection to the end (the user hangs up 2 s after answering).
        assert_eq!(cdr["recordingUrl"], format!("/Accounts/{}/Recordings/{cv}.wav", app.sid));
        assert_eq!(cdr["recordingDuration"], "2");
        let served = app.send(Method::GET, cdr["recordingUrl"].as_str().unwrap(), None).await;
        assert_eq!(served.status, 200);
        assert_ne!(cdr["answerTime"], "");
        let legs = cdr["cdrs"].as_array().unwrap();
        assert_eq!(legs.len(), 2);
        assert_eq!((legs[0]["role"].as_str(), legs[0]["agentNo"].as_str(), legs[0]["callSid"].as_str()), (Some("agent"), Some("1001"), Some(agent_leg.as_str())));
        assert_eq!((legs[1]["role"].as_str(), legs[1]["agentNo"].as_str(), legs[1]["to"].as_str()), (Some("user"), Some(""), Some("13800009995")));
        assert_eq!((legs[0]["cause"].as_str(), legs[1]["cause"].as_str()), (Some("completed"), Some("completed")));
        // Every CA finds the same CDR.
        let by_leg = app.send(Method::GET, &app.account_path(&format!("Cdrs/{user_leg}")), None).await;
        assert_eq!(by_leg.body["cdr"], cdr);
        let state = ok(&socket.request("getState", json!({})).await).clone();
        assert_eq!((state["agentState"].as_str(), state["calls"].as_array().map(Vec::len)), (Some("ready"), Some(0)));
    }
}

both_backends! {
    async fn call_out_failures(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        // The agent's device never answers: failed/2 only, back to the chosen state.
        agent(&app, "1001", json!({"sipNumber": "80009991"})).await;
        let patch = app.cti(Method::PATCH, "CtiSettings", Some(json!({"agentRingTimeout": 5}))).await;
        assert_eq!(patch.status, 200, "{}", patch.body);
        let mut socket = ready(&app, "1001").await;
        let cv = ok(&socket.request("callOut", json!({"userNumber": "13800000001"})).await)["conversationSid"]
            .as_str().unwrap().to_string();
        let (names, _) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "failed/2 (no-answer)"]);
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["answerTime"].as_str(), cdr["duration"].as_str()), (Some("0"), Some(""), Some("0")));
        assert_eq!(cdr["cdrs"].as_array().map(Vec::len), Some(1));
        let state = ok(&socket.request("getState", json!({})).await).clone();
        assert_eq!(state["agentState"], "ready");

        // The user is busy: failed/1, the agent's leg completed, no wrapup.
        agent(&app, "1002", json!({"wrapupTime": 0})).await;
        let mut socket = ready(&app, "1002").await;
        let cv = ok(&socket.request("callOut", json!({"userNumber": "13800009990"})).await)["conversationSid"]
            .as_str().unwrap().to_string();
        let (names, _) = script(&mut socket, 6, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2-", "initiated/1", "failed/1 (failed)", "completed/2"]);
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!(cdr["byeType"], "2");
        assert_eq!(cdr["cdrs"][1]["hangupCause"], "USER_BUSY");
        let state = ok(&socket.request("getState", json!({})).await).clone();
        assert_eq!(state["agentState"], "ready");
        // Nothing more came (no statusEvent): the next event is the pause asked for now.
        ok(&socket.request("pause", json!({})).await);
        let (names, _) = script(&mut socket, 1, 7).await;
        assert_eq!(names, ["st pause"]);
    }
}

both_backends! {
    async fn the_agent_hangs_up_and_commands_its_call(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "1001", json!({"wrapupTime": 0})).await;
        let mut socket = ready(&app, "1001").await;
        // Nothing to hang up yet.
        let r = socket.request("hangup", json!({})).await;
        assert_eq!((r["statusCode"].as_str(), r["statusMsg"].as_str()), (Some("20104"), Some("not allowed in the agent's current state")));
        let r = socket.request("callOut", json!({"userNumber": "12"})).await;
        assert_eq!(r["statusCode"], "10004", "{r}");
        let r = socket.request("callOut", json!({"userNumber": "13800000001", "displayNum": "01088880000"})).await;
        assert_eq!((r["statusCode"].as_str(), r["statusMsg"].as_str()), (Some("20008"), Some("displayNum not allowed for this application")));
        let cv = ok(&socket.request("callOut", json!({"userNumber": "13800000001"})).await)["conversationSid"]
            .as_str().unwrap().to_string();
        let (names, _) = script(&mut socket, 7, 1).await;
        assert_eq!(names[6], "answered/2+");
        // In a call: a second callOut is refused, the call's commands work.
        let r = socket.request("callOut", json!({"userNumber": "13800000002"})).await;
        assert_eq!(r["statusCode"], "20104", "{r}");
        let r = socket.request("sendDtmf", json!({"digits": "12#x"})).await;
        assert_eq!((r["statusCode"].as_str(), r["statusMsg"].as_str()), (Some("10004"), Some("invalid digits (1-32 of 0-9, * and #)")));
        ok(&socket.request("sendDtmf", json!({"digits": "1*#"})).await);
        ok(&socket.request("setUserData", json!({"userData": "ticket 7"})).await);
        // Hold and retrieve: the user hears the music meanwhile.
        let r = socket.request("retrieveCall", json!({})).await;
        assert_eq!((r["statusCode"].as_str(), r["statusMsg"].as_str()), (Some("20105"), Some("not allowed in the current call state: retrieveCall needs a held call")));
        ok(&socket.request("holdCall", json!({})).await);
        let r = socket.request("holdCall", json!({})).await;
        assert_eq!(r["statusCode"], "20105", "{r}");
        ok(&socket.request("retrieveCall", json!({})).await);
        let (names, frames) = script(&mut socket, 2, 8).await;
        assert_eq!(names, ["held/2", "retrieved/2"]);
        assert_eq!((frames[0]["data"]["callState"].as_str(), frames[1]["data"]["callState"].as_str()), (Some("held"), Some("connected")));
        assert_eq!(frames[0]["data"]["userData"], "ticket 7");
        let state = ok(&socket.request("getState", json!({})).await).clone();
        assert_eq!(state["agentState"], "talking");
        let calls = state["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2, "{state}");
        assert_eq!(
            (calls[0]["callSubtype"].as_str(), calls[0]["callState"].as_str(), calls[0]["isBridged"].as_str(), calls[0]["userNumber"].as_str()),
            (Some("2"), Some("connected"), Some("1"), Some("13800000001"))
        );
        assert_eq!(calls[1]["callSubtype"], "1");
        assert_eq!((calls[0]["userData"].as_str(), calls[1]["userData"].as_str()), (Some("ticket 7"), Some("ticket 7")));
        // Another agent finds the account at its limit (this call holds its one place).
        agent(&app, "1002", json!({})).await;
        assert_eq!(command(&app, "1002", "login", json!({})).await.status, 200);
        app.set_limits(json!({"maxConcurrentCalls": 1})).await;
        let a = command(&app, "1002", "callOut", json!({"userNumber": "13800000001"})).await;
        assert_eq!(
            (a.status, a.body["statusCode"].as_str(), a.body["statusMsg"].as_str()),
            (429, Some("10008"), Some("platform limit: the account's maxConcurrentCalls is reached")),
            "{}", a.body
        );
        app.set_limits(json!({"maxConcurrentCalls": 10})).await;
        ok(&socket.request("hangup", json!({})).await);
        let (names, frames) = script(&mut socket, 4, 10).await;
        assert_eq!(names, ["completed/2", "completed/1", "st completed", "st autoReady"]);
        assert_eq!(frames[0]["data"]["userData"], "ticket 7");
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["userData"].as_str()), (Some("4"), Some("ticket 7")));

        // The same over REST.
        let a = command(&app, "1001", "callOut", json!({"userNumber": "13800009991"})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cv = a.body["data"]["conversationSid"].as_str().unwrap().to_string();
        let (names, _) = script(&mut socket, 5, 14).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2-", "initiated/1", "ringing/1"]);
        // Hanging up while the user rings cancels the call.
        let a = command(&app, "1001", "hangup", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let (names, _) = script(&mut socket, 2, 19).await;
        assert_eq!(names, ["failed/1 (canceled)", "completed/2"]);
        assert_eq!(agent_cdr(&app, &db, &cv).await["byeType"], "1");
    }
}

both_backends! {
    async fn numbers_are_masked_on_masking_sockets_only(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        agent(&app, "1001", json!({"wrapupTime": 0})).await;
        let mut socket = AgentSocket::open(&app.address, &app.app_id, "1001").await;
        let r = socket.request("auth", json!({"pwd": "s3cret!", "encryptNumber": "true"})).await;
        ok(&r);
        ok(&socket.request("login", json!({})).await);
        socket.take_events(1).await;
        ok(&socket.request("callOut", json!({"userNumber": "13800009995"})).await);
        let (_, frames) = script(&mut socket, 11, 1).await;
        for f in frames.iter().filter(|f| f["type"] == "callEvent") {
            assert_eq!(f["data"]["userNumber"], "138****9995", "{f}");
        }
        let state = ok(&socket.request("getState", json!({})).await).clone();
        assert_eq!(state["calls"], json!([]));
        // The CDR is never masked.
        let cv = frames[0]["data"]["conversationSid"].as_str().unwrap().to_string();
        assert_eq!(agent_cdr(&app, &db, &cv).await["userNumber"], "13800009995");
    }
}

both_backends! {
    async fn a_call_outlives_its_agents_socket(db: TestDb) {
        let app = db
            .spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10"), ("VOICEPAAS_CTI_GRACE_SECONDS", "1")])
            .await;
        // A PSTN agent: its phone is dialled at its pstnNumber and answers by itself.
        agent(&app, "1001", json!({"phoneType": 2, "pstnNumber": "13900000001"})).await;
        let mut socket = ready(&app, "1001").await;
        let data = ok(&socket.request("callOut", json!({"userNumber": "13800000001"})).await).clone();
        let cv = data["conversationSid"].as_str().unwrap().to_string();
        let (names, frames) = script(&mut socket, 7, 1).await;
        assert_eq!(names[6], "answered/2+");
        assert_eq!(frames[0]["data"]["agentNumber"], "13900000001");
        socket.close().await;
        // The grace runs out during the call: the agent is logged out when it ends (the
        // user hangs up after 30 sandbox seconds), without wrapup.
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!(cdr["byeType"], "3");
        assert_eq!(cdr["cdrs"][0]["to"], "13900000001");
        let a = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(a.body["data"]["agentState"], "offline", "{}", a.body);
        let sql = match db.backend {
            "sqlite" => "SELECT group_concat(frame, char(10)) FROM (SELECT frame FROM agent_events ORDER BY seq)",
            _ => "SELECT string_agg(frame, chr(10) ORDER BY seq) FROM agent_events",
        };
        let frames = db.text(sql).await.unwrap();
        let names: Vec<String> = frames
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .skip(8)
            .map(|f| format!("{} {}", f["data"]["eventName"].as_str().unwrap(), f["data"]["callSubtype"].as_str().or(f["data"]["logoutCause"].as_str()).unwrap()))
            .collect();
        assert_eq!(names, ["completed 1", "completed 2", "logout disconnected"]);
    }
}

/// The agent's socket on one replica, its call driven by another: the events reach the
/// socket in order, and a hangup sent to the first replica reaches the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_driven_by_another_replica() {
    let Some(db) = TestDb::postgres("api::agent_calls::a_call_driven_by_another_replica").await
    else {
        return;
    };
    let speed = [("VOICEPAAS_SANDBOX_SPEED", "5")];
    let one = db.spawn(&speed).await;
    let other = crate::replicas::through(&one, &db.spawn(&speed).await.address);
    agent(&one, "1001", json!({"wrapupTime": 0})).await;
    let mut socket = ready(&one, "1001").await;
    let a = command(
        &other,
        "1001",
        "callOut",
        json!({"userNumber": "13800000001"}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let cv = a.body["data"]["conversationSid"]
        .as_str()
        .unwrap()
        .to_string();
    let (names, _) = script(&mut socket, 7, 1).await;
    assert_eq!(names, CALL_OUT_CONNECTS);
    ok(&socket
        .request("setUserData", json!({"userData": "from one"}))
        .await);
    ok(&socket.request("hangup", json!({})).await);
    let (names, frames) = script(&mut socket, 4, 8).await;
    assert_eq!(
        names,
        ["completed/2", "completed/1", "st completed", "st autoReady"]
    );
    assert_eq!(frames[0]["data"]["userData"], "from one");
    let cdr = agent_cdr(&one, &db, &cv).await;
    assert_eq!(
        (cdr["byeType"].as_str(), cdr["userData"].as_str()),
        (Some("4"), Some("from one"))
    );
}

both_backends! {
    /// SIGKILL of the process driving agents' calls, the media server alive: the next
    /// process takes them over in the shape they are in (talking, the agent's device
    /// ringing, the user ringing), carries them on and ends them; each agent's events
    /// stay one ordered stream that ends every leg once, and every call has one CDR.
    async fn sigkill_under_agent_calls(db: TestDb) {
        use crate::processes::{customer, free_port, sandbox, server};
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let _sandbox = sandbox(media_port, "1", dir.path());
        let (mut first, address) = server(&db, media_port, dir.path(), "10").await;
        let app = customer(&address, 100).await;
        let store = db.store().await;
        let mut calls = Vec::new();
        for (agent_no, sip, user) in [
            ("1001", "80001001", "13900000001"),
            ("1002", "80009996", "13900000002"),
            ("1003", "80001003", "13900009996"),
        ] {
            agent(&app, agent_no, json!({"wrapupTime": 0, "sipNumber": sip})).await;
            assert_eq!(command(&app, agent_no, "login", json!({})).await.status, 200);
            let a = command(&app, agent_no, "callOut", json!({"userNumber": user})).await;
            assert_eq!(a.status, 200, "{}", a.body);
            calls.push(a.body["data"]["conversationSid"].as_str().unwrap().to_string());
        }
        let started = std::time::Instant::now();
        loop {
            let states: Vec<String> = {
                let mut s = Vec::new();
                for cv in &calls {
                    let legs = store.conversation_legs(cv).await.unwrap();
                    s.push(legs.iter().map(|l| l.state.clone()).collect::<Vec<_>>().join(","));
                }
                s
            };
            if states[0] == "answered,answered" && states[1] == "ringing" && states[2] == "answered,ringing" {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{states:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        first.0.kill().unwrap();
        first.0.wait().unwrap();

        let (_second, address) = server(&db, media_port, dir.path(), "10").await;
        let mut app = app;
        app.address = address;
        // Taken over once the lease runs out: the device and the user that rang answer,
        // and both calls talk under the new process; their agents hang up.
        for agent_no in ["1002", "1003"] {
            let started = std::time::Instant::now();
            loop {
                let a = command(&app, agent_no, "getState", json!({})).await;
                if a.body["data"]["agentState"] == "talking" {
                    break;
                }
                assert!(started.elapsed() < std::time::Duration::from_secs(40), "{}", a.body);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let a = command(&app, agent_no, "hangup", json!({})).await;
            assert_eq!(a.status, 200, "{}", a.body);
        }
        let byes: Vec<String> = {
            let mut byes = Vec::new();
            for cv in &calls {
                byes.push(wait_cdr(&store, cv).await["byeType"].as_str().unwrap().to_string());
            }
            byes
        };
        assert_eq!(byes, ["3", "4", "4"]);
        for agent_no in ["1001", "1002", "1003"] {
            let sql = match db.backend {
                "sqlite" => format!("SELECT group_concat(frame, char(10)) FROM (SELECT e.frame FROM agent_events e JOIN agent_sessions s ON s.session_sid = e.session_sid WHERE s.agent_no = '{agent_no}' ORDER BY e.seq)"),
                _ => format!("SELECT string_agg(e.frame, chr(10) ORDER BY e.seq) FROM agent_events e JOIN agent_sessions s ON s.session_sid = e.session_sid WHERE s.agent_no = '{agent_no}'"),
            };
            let frames: Vec<Value> = db.text(&sql).await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            let seqs: Vec<i64> = frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
            assert_eq!(seqs, (1..=frames.len() as i64).collect::<Vec<_>>(), "{agent_no}");
            let mut per_leg: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in frames.iter().filter(|f| f["type"] == "callEvent") {
                per_leg.entry(f["data"]["callSid"].as_str().unwrap().into()).or_default().push(f["data"]["eventName"].as_str().unwrap().into());
            }
            assert_eq!(per_leg.len(), 2, "{agent_no}: {per_leg:?}");
            for (leg, events) in &per_leg {
                let order = ["initiated", "ringing", "answered", "completed"];
                let ranks: Vec<usize> = events.iter().map(|e| order.iter().position(|o| o == e).unwrap()).collect();
                assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{agent_no} {leg}: {events:?}");
                assert_eq!((ranks[0], ranks.last()), (0, Some(&3)), "{agent_no} {leg}: {events:?}");
                assert_eq!(events.iter().filter(|e| *e == "completed").count(), 1, "{agent_no} {leg}: {events:?}");
            }
            let tail: Vec<&str> = frames.iter().rev().take(2).rev().map(|f| f["data"]["eventName"].as_str().unwrap()).collect();
            assert_eq!(tail, ["completed", "autoReady"], "{agent_no}");
        }
        assert_eq!(store.count_cdrs().await.unwrap(), 3);
    }
}

both_backends! {
    /// The agent CDR goes to the application's cdrUrl like every CDR, signed, the same
    /// body as stored; hostile params are refused with 10004, never 10005.
    async fn the_agent_cdr_is_pushed_and_bad_params_refused(db: TestDb) {
        let receiver = crate::receiver::Receiver::start().await;
        let mut app = db
            .spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20"), ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")])
            .await;
        let created = app
            .create_app(&app.sid.clone(), json!({"name": "hooks", "cdrUrl": format!("{}/cdr", receiver.base)}))
            .await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        agent(&app, "1001", json!({"wrapupTime": 0})).await;
        assert_eq!(command(&app, "1001", "login", json!({})).await.status, 200);
        for (params, field) in [
            (json!({"userNumber": "1380013\u{0}8000"}), "userNumber"),
            (json!({"userNumber": "+"}), "userNumber"),
            (json!({"userNumber": ["13800138000"]}), "userNumber"),
            (json!({"userNumber": "13800138000", "userData": "a\u{0}b"}), "userData"),
            (json!({"userNumber": "13800138000", "userData": "x".repeat(1025)}), "userData"),
            (json!({"userNumber": "13800138000", "displayNum": "\u{202e}123"}), "displayNum"),
        ] {
            let a = command(&app, "1001", "callOut", params.clone()).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (400, Some("10004")), "{params}: {}", a.body);
            assert!(a.body["statusMsg"].as_str().unwrap().contains(field), "{}", a.body);
        }
        let a = command(&app, "1001", "callOut", json!({"userNumber": "13800009995"})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cv = a.body["data"]["conversationSid"].as_str().unwrap().to_string();
        let stored = agent_cdr(&app, &db, &cv).await;
        let got = receiver.wait_for(1, std::time::Duration::from_secs(30)).await;
        assert_eq!(got[0].path, "/cdr");
        assert!(got[0].headers.contains_key("webhook-signature"), "{:?}", got[0].headers);
        assert_eq!(got[0].json(), stored);
        let listed = app
            .send(Method::GET, &app.account_path("Cdrs?kind=agent&startTime=20000101000000&endTime=20991231000000"), None)
            .await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert_eq!(listed.body["cdrs"].as_array().map(Vec::len), Some(1), "{}", listed.body);
        assert_eq!(listed.body["cdrs"][0]["conversationSid"], cv.as_str());
    }
}

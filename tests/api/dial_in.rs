//! Users dialling in (agents' contract §9, §3.3 routes, §7.1 "Offer", §8.1, §10 byeTypes
//! 7–8): simulated callers from the sandbox reach numbers routed to queues, agents and
//! hangup prompts; ready agents' devices (which answer by themselves) get the offers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_calls::{agent_cdr, ready, script};
use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;

/// Grants `number` to the test's account and routes it as `routing` says.
pub(crate) async fn route(app: &TestApp, number: &str, routing: Value) {
    let a = app
        .admin(
            Method::PUT,
            &format!("/admin/numbers/{number}"),
            Some(json!({"accountSid": app.sid})),
        )
        .await;
    assert!(a.status < 300, "{}", a.body);
    let a = app
        .cti(Method::PUT, &format!("Numbers/{number}"), Some(routing))
        .await;
    assert!(a.status < 300, "{}", a.body);
}

/// A simulated caller from `from` dials `to`; its callSid.
pub(crate) async fn dial_in(app: &TestApp, from: &str, to: &str) -> String {
    let a = app
        .admin(
            Method::POST,
            "/admin/sandbox/inbound",
            Some(json!({"from": from, "to": to})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["callSid"].as_str().unwrap().to_string()
}

/// The conversation of the user leg `call_sid`, once its CDR is written.
pub(crate) async fn cdr_of_leg(app: &TestApp, db: &TestDb, call_sid: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let cv = db
            .text(&format!(
                "SELECT conversation_id FROM calls WHERE id = '{call_sid}'"
            ))
            .await;
        if let Some(cv) = cv {
            return agent_cdr(app, db, &cv).await;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no conversation for {call_sid}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

both_backends! {
    /// A caller routed to a queue waits with music, the ready member gets the offer, its
    /// device answers and the two are bridged; the caller hangs up (byeType 3).
    async fn a_queued_caller_is_offered_to_a_ready_member(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        let a = agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let user_leg = dial_in(&app, "13800138000", "4008001000").await;
        let (names, frames) = script(&mut socket, 6, 1).await;
        assert_eq!(
            names,
            ["initiated/2", "ringing/2", "answered/2+", "completed/2", "st completed", "st autoReady"]
        );
        let first = &frames[0]["data"];
        let cv = first["conversationSid"].as_str().unwrap().to_string();
        let t = first["timestamp"].as_str().unwrap().to_string();
        assert_eq!(
            first,
            &json!({
                "eventName": "initiated", "appSid": app.app_id, "agentNo": "1001",
                "agentNumber": a["sipNumber"], "conversationSid": cv, "callSid": first["callSid"],
                "failedCause": "", "completedCause": "", "callType": "1", "callSubtype": "2",
                "callState": "idle", "userNumber": "13800138000", "userNumberType": "2",
                "userArea": "", "isBridged": "0", "coAgentNo": "", "userData": "",
                "timestamp": t, "queueSid": queue, "didNumber": "4008001000", "monitorMode": "",
            })
        );
        let cdr = cdr_of_leg(&app, &db, &user_leg).await;
        assert_eq!(
            (cdr["callType"].as_str(), cdr["agentNo"].as_str(), cdr["byeType"].as_str()),
            (Some("1"), Some("1001"), Some("3")),
            "{cdr}"
        );
        assert_eq!((cdr["queueSid"].as_str(), cdr["didNumber"].as_str()), (Some(queue.as_str()), Some("4008001000")));
        assert_eq!(cdr["userNumber"], "13800138000");
        assert_ne!(cdr["answerTime"], "");
        let legs = cdr["cdrs"].as_array().unwrap();
        assert_eq!(legs.len(), 2, "{cdr}");
        assert_eq!((legs[0]["role"].as_str(), legs[0]["callSid"].as_str(), legs[0]["to"].as_str()), (Some("user"), Some(user_leg.as_str()), Some("4008001000")));
        assert_eq!((legs[1]["role"].as_str(), legs[1]["agentNo"].as_str()), (Some("agent"), Some("1001")));
        assert_eq!(legs[1]["callSid"], frames[0]["data"]["callSid"]);
        let state = socket.request("getState", json!({})).await;
        assert_eq!(state["data"]["agentState"], "ready", "{state}");
    }
}

both_backends! {
    /// A hangup route plays its prompt and ends the call (byeType 8); a queue with no
    /// member logged in overflows at once to its hangup.
    async fn hangup_routes_and_unstaffed_queues_end_with_bye_type_8(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        route(&app, "4008001000", json!({"route": {"type": "hangup"}})).await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["queueSid"].as_str()), (Some("8"), Some(""), Some("")), "{cdr}");
        assert_eq!(cdr["cdrs"].as_array().map(Vec::len), Some(1));

        let queue = create_queue(&app, json!({"name": "night"})).await;
        agent(&app, "1001", json!({"sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001001", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let leg = dial_in(&app, "13800138000", "4008001001").await;
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str()), (Some("8"), Some(queue.as_str())), "{cdr}");
    }
}

both_backends! {
    /// A caller who hangs up while waiting is abandoned (byeType 7) and its wait counted.
    async fn a_caller_hanging_up_in_the_queue_is_abandoned(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "1001", json!({"sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        // Logged in but paused: the caller waits.
        let mut socket = ready(&app, "1001").await;
        let paused = socket.request("pause", json!({})).await;
        assert_eq!(paused["statusCode"], "00000", "{paused}");
        // The caller hangs up 60 s (3 s at speed 20) after the platform answers; meanwhile
        // the Live view lists it.
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let live = live_with_waiting(&app, &queue, 1, 3).await;
        let live_path = format!("Queues/{queue}/Live");
        let caller = &live["members"][0];
        assert_eq!(
            (caller["callSid"].as_str(), caller["userNumber"].as_str(), caller["joinType"].as_str(), caller["position"].as_i64()),
            (Some(leg.as_str()), Some("13800138000"), Some("1"), Some(1)),
            "{live}"
        );
        assert!(caller["conversationSid"].as_str().unwrap().starts_with("CV"), "{live}");
        assert_eq!(live["agents"][0]["agentState"], "pause");
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["queueSid"].as_str()), (Some("7"), Some(""), Some(queue.as_str())), "{cdr}");
        assert_eq!(cdr["answerTime"], "");
        let live = app.cti(Method::GET, &live_path, None).await;
        assert_eq!((live.body["queue"]["waitingCount"].as_i64(), live.body["queue"]["members"].as_array().map(Vec::len)), (Some(0), Some(0)), "{}", live.body);
    }
}

both_backends! {
    /// An offer the agent's device never answers rings for the queue's ringTimeout: the
    /// agent gets `failed (no-answer)` and is paused with `no-answer`.
    async fn a_missed_offer_pauses_the_agent(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales", "ringTimeout": 5})).await;
        agent(&app, "1001", json!({"sipNumber": "80009991", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let (names, frames) = script(&mut socket, 4, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "failed/2 (no-answer)", "st pause"], "{frames:?}");
        assert_eq!(frames[3]["data"]["pauseCause"], "no-answer");
        // Back in line, the caller waits for a member who is ready; it hangs up after 60 s
        // (3 s at speed 20) and is abandoned.
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("7"), Some("")), "{cdr}");
        let legs = cdr["cdrs"].as_array().unwrap();
        assert_eq!((legs[1]["role"].as_str(), legs[1]["cause"].as_str(), legs[1]["hangupCause"].as_str()), (Some("agent"), Some("time-out"), Some("NO_ANSWER")), "{cdr}");
    }
}

both_backends! {
    /// A key menu after a welcome: a caller who presses 1 reaches the queue of key 1; one
    /// who presses 2 reaches key 2's hangup; one who presses nothing hears the menu `tries`
    /// times, then takes the default.
    async fn menus_route_by_key_and_fall_back_to_the_default(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        app.upload_prompt("welcome.wav").await;
        app.upload_prompt("menu.wav").await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"welcomePrompt": "welcome.wav", "route": {
            "type": "menu", "prompt": "menu.wav", "timeout": 5, "tries": 2,
            "keys": {"1": {"type": "queue", "queueSid": queue}, "2": {"type": "hangup"}},
            "default": {"type": "hangup"},
        }})).await;
        let mut socket = ready(&app, "1001").await;
        // 9993 presses 1 three seconds after the answer.
        let one = dial_in(&app, "13800009993", "4008001000").await;
        let (names, _) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        // 9994 presses 2 (then 1, too late): the hangup of key 2.
        let two = dial_in(&app, "13800009994", "4008001000").await;
        let cdr = cdr_of_leg(&app, &db, &two).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str(), cdr["waitSeconds"].as_str()), (Some("8"), Some(""), Some("0")), "{cdr}");
        // Nobody presses anything: two tries, then the default hangup.
        let none = dial_in(&app, "13800138000", "4008001000").await;
        let cdr = cdr_of_leg(&app, &db, &none).await;
        assert_eq!(cdr["byeType"], "8", "{cdr}");
        let cdr = cdr_of_leg(&app, &db, &one).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str(), cdr["agentNo"].as_str()), (Some("3"), Some(queue.as_str()), Some("1001")), "{cdr}");
    }
}

both_backends! {
    /// maxWaitSeconds reached: the caller leaves its queue and overflows to the next one,
    /// whose ready member takes it; the CDR names the queue it was connected from.
    async fn a_caller_overflows_after_max_wait(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let second = create_queue(&app, json!({"name": "backup"})).await;
        let first = create_queue(&app, json!({"name": "sales", "maxWaitSeconds": 10, "overflow": {"type": "queue", "queueSid": second}})).await;
        agent(&app, "1001", json!({"sipNumber": "80001001", "queues": [{"queueSid": first}]})).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002", "queues": [{"queueSid": second}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": first}})).await;
        let mut busy = ready(&app, "1001").await;
        let paused = busy.request("pause", json!({})).await;
        assert_eq!(paused["statusCode"], "00000", "{paused}");
        let mut backup = ready(&app, "1002").await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let (names, frames) = script(&mut backup, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        assert_eq!(frames[0]["data"]["queueSid"], second.as_str());
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str(), cdr["agentNo"].as_str()), (Some("3"), Some(second.as_str()), Some("1002")), "{cdr}");
        // On the sandbox's clock (20× real time): a busy machine adds a little.
        let waited: i64 = cdr["waitSeconds"].as_str().unwrap().parse().unwrap();
        assert!((10..=20).contains(&waited), "{cdr}");
    }
}

both_backends! {
    /// ring-all rings every ready member; the first to answer is connected, the others'
    /// offers are withdrawn (`failed (canceled)`, no pause).
    async fn ring_all_connects_the_first_answer(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales", "strategy": "ring-all"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        // 9996 rings 10 s before it answers: it loses.
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80009996", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut fast = ready(&app, "1001").await;
        let mut slow = ready(&app, "1002").await;
        dial_in(&app, "13800138000", "4008001000").await;
        let (names, _) = script(&mut fast, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        let (names, _) = script(&mut slow, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "failed/2 (canceled)"]);
        let state = slow.request("getState", json!({})).await;
        assert_eq!(state["data"]["agentState"], "ready", "{state}");
    }
}

both_backends! {
    /// An autoAnswer agent's device answers by itself (`answered/2-`); the caller keeps its
    /// music until the agent's `bridge` connects them (`answered/2+`).
    async fn auto_answer_agents_connect_with_bridge(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales", "ringTimeout": 120})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "autoAnswer": true, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let (names, _) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2-"]);
        let reply = socket.request("bridge", json!({})).await;
        assert_eq!(reply["statusCode"], "00000", "{reply}");
        let (names, _) = script(&mut socket, 1, 4).await;
        assert_eq!(names, ["answered/2+"]);
        // Hold and retrieve, as on a callOut.
        for (cmd, event) in [("holdCall", "held/2"), ("retrieveCall", "retrieved/2")] {
            let reply = socket.request(cmd, json!({})).await;
            assert_eq!(reply["statusCode"], "00000", "{cmd}: {reply}");
            let seq = if cmd == "holdCall" { 5 } else { 6 };
            let (names, _) = script(&mut socket, 1, seq).await;
            assert_eq!(names, [event]);
        }
        // The agent hangs up: byeType 4.
        let reply = socket.request("hangup", json!({})).await;
        assert_eq!(reply["statusCode"], "00000", "{reply}");
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
    }
}

both_backends! {
    /// An agent route offers the named agent when it is ready, else takes its fallback.
    async fn agent_routes_offer_the_agent_or_fall_back(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001"})).await;
        route(&app, "4008001000", json!({"route": {"type": "agent", "agentNo": "1001", "fallback": {"type": "hangup"}}})).await;
        // Not logged in: the fallback at once.
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("8"), Some("")), "{cdr}");
        let mut socket = ready(&app, "1001").await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let (names, frames) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        assert_eq!(frames[0]["data"]["queueSid"], "");
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("3"), Some("1001")), "{cdr}");
    }
}

both_backends! {
    /// Backend outbound (§3.6): the user is dialled first; answered, it waits for the
    /// queue's agents (the offer is callType 2) or for the named agent, at most
    /// maxWaitSeconds, then hears the failure tone (byeType 8); a user who does not
    /// answer ends the call with byeType 0.
    async fn backend_outbound_calls_dial_the_user_first(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        agent(&app, "1002", json!({"sipNumber": "80001002"})).await;
        for (body, status, code) in [
            (json!({"userNumber": "13800138000"}), 400, "10004"),
            (json!({"userNumber": "13800138000", "queueSid": queue, "agentNo": "1001"}), 400, "10004"),
            (json!({"userNumber": "x", "queueSid": queue}), 400, "10004"),
            (json!({"userNumber": "13800138000", "queueSid": "QU00001202611300000000000000000001"}), 404, "20003"),
            (json!({"userNumber": "13800138000", "agentNo": "9999"}), 404, "20001"),
            (json!({"userNumber": "13800138000", "agentNo": "1001", "displayNum": "01088880000"}), 403, "20008"),
            (json!({"userNumber": "13800138000", "agentNo": "1001", "maxWaitSeconds": 0}), 400, "10004"),
            (json!({"userNumber": "13800138000", "agentNo": "1001", "via": "x"}), 400, "10004"),
        ] {
            let a = app.cti(Method::POST, "OutboundCalls", Some(body.clone())).await;
            assert_eq!((a.status, a.code()), (status, code), "{body}: {}", a.body);
        }
        let mut socket = ready(&app, "1001").await;
        let a = app.cti(Method::POST, "OutboundCalls", Some(json!({"userNumber": "13800138000", "queueSid": queue, "userData": "ticket 7"}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "00000", "success"), "{}", a.body);
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let user_leg = a.body["callSid"].as_str().unwrap().to_string();
        let (names, frames) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        let d = &frames[0]["data"];
        assert_eq!((d["callType"].as_str(), d["conversationSid"].as_str(), d["queueSid"].as_str(), d["didNumber"].as_str(), d["userNumber"].as_str()),
            (Some("2"), Some(cv.as_str()), Some(queue.as_str()), Some(""), Some("13800138000")), "{d}");
        let cdr = cdr_of_leg(&app, &db, &user_leg).await;
        assert_eq!((cdr["callType"].as_str(), cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["queueSid"].as_str()),
            (Some("2"), Some("3"), Some("1001"), Some(queue.as_str())), "{cdr}");
        assert_eq!(cdr["cdrs"][0]["to"], "13800138000");

        // The named agent is not logged in: the user waits 10 s, then the failure tone.
        let a = app.cti(Method::POST, "OutboundCalls", Some(json!({"userNumber": "13800138000", "agentNo": "1002", "maxWaitSeconds": 10}))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cdr = cdr_of_leg(&app, &db, a.body["callSid"].as_str().unwrap()).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("8"), Some("")), "{cdr}");
        // On the sandbox's clock (20× real time): a busy machine adds a little.
        let waited: i64 = cdr["waitSeconds"].as_str().unwrap().parse().unwrap();
        assert!((10..=20).contains(&waited), "{cdr}");

        // A user who never answers: byeType 0.
        let a = app.cti(Method::POST, "OutboundCalls", Some(json!({"userNumber": "13800009991", "queueSid": queue}))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cdr = cdr_of_leg(&app, &db, a.body["callSid"].as_str().unwrap()).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["answerTime"].as_str()), (Some("0"), Some("")), "{cdr}");
    }
}

/// A standalone sandbox (real time) and a `voicepaas serve` process on `db`, with number
/// 4008001000 routed to the queue `spec` describes, whose one member is agent 1001 (a SIP
/// device, no wrapup).
pub(crate) struct QueueOnProcesses {
    pub(crate) _sandbox: crate::processes::Proc,
    pub(crate) server: crate::processes::Proc,
    pub(crate) app: TestApp,
    pub(crate) queue: String,
    pub(crate) media_port: u16,
}

pub(crate) async fn queue_on_processes(
    db: &TestDb,
    dir: &std::path::Path,
    spec: Value,
) -> QueueOnProcesses {
    use crate::processes::{customer, free_port, sandbox, server};
    let media_port = free_port();
    let sandbox = sandbox(media_port, "1", dir);
    let (server, address) = server(db, media_port, dir, "10").await;
    let app = customer(&address, 100).await;
    let queue = create_queue(&app, spec).await;
    let member = json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]});
    agent(&app, "1001", member).await;
    route(
        &app,
        "4008001000",
        json!({"route": {"type": "queue", "queueSid": queue}}),
    )
    .await;
    QueueOnProcesses {
        _sandbox: sandbox,
        server,
        app,
        queue,
        media_port,
    }
}

/// The Live view's `queue` of `queue` once `waiting` callers wait there (within `secs`).
async fn live_with_waiting(app: &TestApp, queue: &str, waiting: i64, secs: u64) -> Value {
    let live_path = format!("Queues/{queue}/Live");
    let started = std::time::Instant::now();
    loop {
        let live = app.cti(Method::GET, &live_path, None).await;
        assert_eq!(live.status, 200, "{}", live.body);
        if live.body["queue"]["waitingCount"] == waiting {
            return live.body["queue"].clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(secs),
            "{}",
            live.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The user leg of the call agent 1001 talks in, once it does (within 40 s).
pub(crate) async fn talking_user_leg(app: &TestApp, db: &TestDb) -> String {
    let started = std::time::Instant::now();
    loop {
        let a = command(app, "1001", "getState", json!({})).await;
        if a.body["data"]["agentState"] == "talking" {
            let cv = a.body["data"]["calls"][0]["conversationSid"]
                .as_str()
                .unwrap()
                .to_string();
            return db
                .text(&format!(
                    "SELECT id FROM calls WHERE conversation_id = '{cv}' AND leg_seq = 0"
                ))
                .await
                .unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "{}",
            a.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

both_backends! {
    /// SIGKILL of the process driving two waiting callers, the media server alive: the
    /// next process takes them over in their places, and the first agent ready gets the
    /// caller who joined first, then the other.
    async fn sigkill_mid_queue_keeps_the_callers_places(db: TestDb) {
        use crate::processes::server;
        let dir = tempfile::tempdir().unwrap();
        let QueueOnProcesses { _sandbox, server: mut first, app, queue, media_port } =
            queue_on_processes(&db, dir.path(), json!({"name": "sales", "maxWaitSeconds": 0})).await;
        // Logged in but paused: the callers wait.
        assert_eq!(command(&app, "1001", "login", json!({"workStatus": "2"})).await.status, 200);
        let early = dial_in(&app, "13800138001", "4008001000").await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let late = dial_in(&app, "13800138002", "4008001000").await;
        let live = live_with_waiting(&app, &queue, 2, 10).await;
        let members = &live["members"];
        assert_eq!((members[0]["callSid"].as_str(), members[1]["callSid"].as_str()), (Some(early.as_str()), Some(late.as_str())), "{live}");
        first.0.kill().unwrap();
        first.0.wait().unwrap();

        let (_second, address) = server(&db, media_port, dir.path(), "10").await;
        let mut app = app;
        app.address = address;
        assert_eq!(command(&app, "1001", "ready", json!({})).await.status, 200);
        // Once the calls are taken over, the agent talks with the caller who came first.
        let mut order = Vec::new();
        for _ in 0..2 {
            let user = talking_user_leg(&app, &db).await;
            order.push(user.clone());
            assert_eq!(command(&app, "1001", "hangup", json!({})).await.status, 200);
            let cdr = cdr_of_leg(&app, &db, &user).await;
            assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["callType"].as_str()), (Some("4"), Some("1001"), Some("1")), "{cdr}");
        }
        assert_eq!(order, [early, late]);
        let store = db.store().await;
        assert_eq!(store.count_cdrs().await.unwrap(), 2);
    }
}

/// Join order across replicas (§9): two callers of one queue, each claimed by another
/// replica (each replica follows its own media server); the agent becomes ready through
/// the replica holding the later caller, which hears it first, yet talks with the caller
/// who came first, then with the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_order_holds_across_replicas() {
    use crate::processes::{free_port, sandbox, server_with};
    use crate::replicas::through;
    let Some(db) = TestDb::postgres("api::dial_in::join_order_holds_across_replicas").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let QueueOnProcesses {
        _sandbox,
        server: _first,
        app,
        queue,
        ..
    } = queue_on_processes(
        &db,
        dir.path(),
        json!({"name": "sales", "maxWaitSeconds": 0}),
    )
    .await;
    let other_media = free_port();
    let _other_sandbox = sandbox(other_media, "1", dir.path());
    let env = [
        ("VOICEPAAS_MEDIA_GRACE_SECS", "10"),
        ("VOICEPAAS_NODE_ID", "2"),
    ];
    let (_second, address) = server_with(&db, other_media, dir.path(), &env).await;
    let other = through(&app, &address);
    assert_eq!(
        command(&app, "1001", "login", json!({"workStatus": "2"}))
            .await
            .status,
        200
    );
    let early = dial_in(&app, "13800138001", "4008001000").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let late = dial_in(&other, "13800138002", "4008001000").await;
    live_with_waiting(&app, &queue, 2, 10).await;
    // The later caller's replica hears of the agent at once, the other through the database.
    assert_eq!(
        command(&other, "1001", "ready", json!({})).await.status,
        200
    );
    let mut order = Vec::new();
    for _ in 0..2 {
        let user = talking_user_leg(&other, &db).await;
        order.push(user.clone());
        assert_eq!(
            command(&other, "1001", "hangup", json!({})).await.status,
            200
        );
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!(
            (cdr["byeType"].as_str(), cdr["agentNo"].as_str()),
            (Some("4"), Some("1001")),
            "{cdr}"
        );
    }
    assert_eq!(order, [early, late]);
    assert_eq!(db.store().await.count_cdrs().await.unwrap(), 2);
}

both_backends! {
    /// A caller who dials in while no platform process is connected to the media server
    /// (its park heard by nobody) is found among the node's channels when a process
    /// connects, claimed and served like any other.
    async fn a_park_nobody_heard_is_found_on_connect(db: TestDb) {
        use crate::engine_faults::Media;
        use crate::processes::server;
        let dir = tempfile::tempdir().unwrap();
        let QueueOnProcesses { _sandbox, server: mut first, app, media_port, .. } =
            queue_on_processes(&db, dir.path(), json!({"name": "sales"})).await;
        first.0.kill().unwrap();
        first.0.wait().unwrap();

        // The carrier's call parks on the node with no platform process listening.
        let media = Media::connect(media_port).await;
        let placed = media.api("voicepaas_inbound 13800138001 4008001000").await;
        assert!(placed.starts_with("+OK"), "{placed}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        let (_second, address) = server(&db, media_port, dir.path(), "10").await;
        let mut app = app;
        app.address = address;
        assert_eq!(command(&app, "1001", "login", json!({})).await.status, 200);
        let user = talking_user_leg(&app, &db).await;
        assert_eq!(command(&app, "1001", "hangup", json!({})).await.status, 200);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["callType"].as_str()), (Some("4"), Some("1001"), Some("1")), "{cdr}");
        assert_eq!((cdr["userNumber"].as_str(), cdr["didNumber"].as_str()), (Some("13800138001"), Some("4008001000")), "{cdr}");
        assert_eq!(db.store().await.count_cdrs().await.unwrap(), 1);
    }
}

both_backends! {
    /// lastAgentRouting: a caller who talked with an agent before gets that agent first
    /// when it is ready, though another has waited longer; another caller gets the
    /// longest idle.
    async fn last_agent_routing_prefers_the_agent_a_caller_talked_with(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales", "lastAgentRouting": true})).await;
        for agent_no in ["1001", "1002"] {
            let sip = format!("8000{agent_no}");
            agent(&app, agent_no, json!({"wrapupTime": 0, "sipNumber": sip, "queues": [{"queueSid": queue}]})).await;
        }
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        // 1001 is ready first: the longest idle.
        let _first = ready(&app, "1001").await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _second = ready(&app, "1002").await;
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["agentNo"], "1001");
        // 1001 is back from its call, so 1002 is the longest idle; the same caller still
        // gets 1001.
        let leg = dial_in(&app, "13800138000", "4008001000").await;
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["agentNo"], "1001");
        let leg = dial_in(&app, "13800138003", "4008001000").await;
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["agentNo"], "1002");
    }
}

both_backends! {
    /// recordAgentCalls holds for a dial-in as for a callOut: the caller's channel is
    /// recorded from its connection with the agent to its hangup (60 s after the platform
    /// answered it).
    async fn a_dial_in_is_recorded(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let patch = app.cti(Method::PATCH, "CtiSettings", Some(json!({"recordAgentCalls": true}))).await;
        assert_eq!(patch.status, 200, "{}", patch.body);
        let (mut socket, user, _) = crate::transfers::talking(&app, &db, 0).await;
        let (names, _) = script(&mut socket, 3, 4).await;
        assert_eq!(names, ["completed/2", "st completed", "st autoReady"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        let cv = cdr["conversationSid"].as_str().unwrap();
        assert_eq!(cdr["byeType"], "3", "{cdr}");
        assert_eq!(cdr["recordingUrl"], format!("/Accounts/{}/Recordings/{cv}.wav", app.sid));
        let secs: i64 = cdr["recordingDuration"].as_str().unwrap().parse().unwrap();
        assert!((50..=60).contains(&secs), "{cdr}");
        let served = app.send(Method::GET, cdr["recordingUrl"].as_str().unwrap(), None).await;
        assert_eq!(served.status, 200);
    }
}

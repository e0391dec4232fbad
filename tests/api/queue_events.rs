//! queueEvents (agents' contract §8.4) to a supervisor monitoring queues (§7.2
//! `monitorQueues`): a caller's `joined`, `answered`, `abandoned` and `left` with the
//! queue's counters at that moment.

use serde_json::{Value, json};

use crate::agent_calls::ready;
use crate::agent_sessions::{agent, command, signed_in};
use crate::both_backends;
use crate::dial_in::{cdr_of_leg, dial_in, route};
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;

/// Counters with `waiting` callers and the one member `paused` or busy.
fn counters(waiting: i64, paused: i64, busy: i64) -> Value {
    json!({"waitingCount": waiting, "agentsReady": 0, "agentsBusy": busy, "agentsPaused": paused,
           "agentsWrapup": 0, "agentsOffline": 0})
}

/// The event's data without its times, with its counters checked against `expected`.
fn checked(event: &Value, expected: &Value) -> Value {
    assert_eq!(event["type"], "queueEvent", "{event}");
    assert!(
        event.get("seq").is_none(),
        "queueEvents carry no seq: {event}"
    );
    let mut data = event["data"].clone();
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&data[k], v, "{k} of {event}");
    }
    let fields = data.as_object_mut().unwrap();
    for k in ["joinTime", "timestamp", "waitSeconds", "longestWaitSeconds"] {
        assert!(fields.remove(k).is_some(), "{k} in {event}");
    }
    for k in expected.as_object().unwrap().keys() {
        fields.remove(k);
    }
    data
}

async fn supervisor(app: &TestApp) -> crate::agent_client::AgentSocket {
    agent(
        app,
        "9001",
        json!({"role": "supervisor", "sipNumber": "80009001"}),
    )
    .await;
    ready(app, "9001").await
}

both_backends! {
    /// A supervisor monitoring a queue sees a caller join and be answered; only
    /// supervisors monitor (20106), only existing queues (20003), only on a socket.
    async fn a_supervisor_sees_callers_join_and_be_answered(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = create_queue(&app, json!({"name": "sales", "maxWaitSeconds": 0})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        assert_eq!(command(&app, "1001", "login", json!({"workStatus": "2"})).await.status, 200);

        let mut plain = signed_in(&app, "1001").await;
        let r = plain.request("monitorQueues", json!({})).await;
        assert_eq!((r["statusCode"].as_str(), r["statusMsg"].as_str()), (Some("20106"), Some("supervisor role required")), "{r}");
        let r = command(&app, "1001", "monitorQueues", json!({})).await;
        assert_eq!((r.status, r.body["statusCode"].as_str()), (400, Some("10004")), "{}", r.body);
        let mut sup = supervisor(&app).await;
        let r = sup.request("monitorQueues", json!({"queueSids": ["QU00000000000000000000000000000000"]})).await;
        assert_eq!(r["statusCode"], "20003", "{r}");
        let r = sup.request("monitorQueues", json!({"queueSids": [queue]})).await;
        assert_eq!(r["statusCode"], "00000", "{r}");
        let view = &r["data"]["queues"][0];
        assert_eq!((view["queueSid"].as_str(), view["waitingCount"].as_i64()), (Some(queue.as_str()), Some(0)), "{r}");

        let user_leg = dial_in(&app, "13800138000", "4008001000").await;
        let joined = &sup.take_queue_moves(1).await[0];
        let cv = joined["data"]["conversationSid"].as_str().unwrap().to_string();
        let rest = checked(joined, &counters(1, 1, 0));
        assert_eq!(rest, json!({
            "eventName": "joined", "appSid": app.app_id, "queueSid": queue, "queueName": "sales",
            "callSid": user_leg, "conversationSid": cv, "userNumber": "13800138000",
            "joinType": "1", "position": 1, "leaveCause": "", "agentNo": "", "agentState": "",
            "pauseCause": "",
        }));
        assert_eq!(command(&app, "1001", "ready", json!({})).await.status, 200);
        let answered = &sup.take_queue_moves(1).await[0];
        let rest = checked(answered, &counters(0, 0, 1));
        assert_eq!((rest["eventName"].as_str(), rest["agentNo"].as_str(), rest["position"].as_i64()), (Some("answered"), Some("1001"), Some(0)), "{answered}");
        assert_eq!(rest["callSid"], user_leg.as_str());
        assert_eq!(cdr_of_leg(&app, &db, &user_leg).await["byeType"], "3");
        // The member's own moves, each with the counters after it: ready, an offer
        // ringing, talking, and ready again (wrapupTime 0) after the caller hung up.
        let states = sup.take_agent_states(4).await;
        let seen: Vec<(&str, &str, i64, i64)> = states.iter().map(|e| {
            let d = &e["data"];
            (d["agentState"].as_str().unwrap(), d["pauseCause"].as_str().unwrap(),
             d["agentsReady"].as_i64().unwrap(), d["agentsBusy"].as_i64().unwrap())
        }).collect();
        assert_eq!(seen, [("ready", "", 1, 0), ("ringing", "", 0, 1), ("talking", "", 0, 1), ("ready", "", 1, 0)], "{states:?}");
        let rest = checked(&states[0], &json!({"agentState": "ready", "waitingCount": 1}));
        assert_eq!(rest, json!({
            "eventName": "agentState", "appSid": app.app_id, "queueSid": queue, "queueName": "sales",
            "callSid": "", "conversationSid": "", "userNumber": "", "joinType": "", "position": 0,
            "leaveCause": "", "agentNo": "1001", "pauseCause": "", "agentsReady": 1, "agentsBusy": 0,
            "agentsPaused": 0, "agentsWrapup": 0, "agentsOffline": 0,
        }));
        assert_eq!(command(&app, "1001", "pause", json!({"pauseCause": "lunch"})).await.status, 200);
        let paused = &sup.take_agent_states(1).await[0]["data"];
        assert_eq!((paused["agentState"].as_str(), paused["pauseCause"].as_str(), paused["agentsPaused"].as_i64()), (Some("pause"), Some("lunch"), Some(1)), "{paused}");
        assert_eq!(command(&app, "1001", "ready", json!({})).await.status, 200);
        assert_eq!(sup.take_agent_states(1).await[0]["data"]["agentState"], "ready");
        // Unmonitored: the next caller, and the member's moves, are not seen.
        assert_eq!(sup.request("unmonitorQueues", json!({})).await["statusCode"], "00000");
        sup.events.clear();
        sup.queue_events.clear();
        let second = dial_in(&app, "13800138001", "4008001000").await;
        assert_eq!(cdr_of_leg(&app, &db, &second).await["byeType"], "3");
        let seen = sup.request("getState", json!({})).await;
        assert_eq!(seen["statusCode"], "00000");
        sup.events.retain(|f| f["type"] == "queueEvent" && f["data"]["eventName"] != "snapshot");
        assert!(sup.events.is_empty() && sup.queue_events.iter().all(|f| f["data"]["eventName"] == "snapshot"), "{:?}", sup.events);
    }
}

both_backends! {
    /// `abandoned` (the caller hangs up waiting), `left` with `timeout` (maxWaitSeconds)
    /// and `no-agents` (no member logged in), to a supervisor monitoring every queue,
    /// who keeps monitoring after its socket comes back.
    async fn a_supervisor_sees_callers_abandon_and_leave(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let waiting = create_queue(&app, json!({"name": "sales", "maxWaitSeconds": 10})).await;
        let empty = create_queue(&app, json!({"name": "nobody"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": waiting}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": waiting}})).await;
        route(&app, "4008002000", json!({"route": {"type": "queue", "queueSid": empty}})).await;
        assert_eq!(command(&app, "1001", "login", json!({"workStatus": "2"})).await.status, 200);
        let sup = supervisor(&app).await;
        let mut sup = sup;
        let r = sup.request("monitorQueues", json!({})).await;
        assert_eq!(r["data"]["queues"].as_array().map(Vec::len), Some(2), "{r}");
        // The socket comes back: the session still monitors every queue.
        sup.close().await;
        let mut sup = signed_in(&app, "9001").await;

        // 9995: hangs up 2 s after its answer, waiting.
        let leg = dial_in(&app, "13800139995", "4008001000").await;
        let events = sup.take_queue_moves(2).await;
        let names: Vec<&str> = events.iter().map(|e| e["data"]["eventName"].as_str().unwrap()).collect();
        assert_eq!(names, ["joined", "abandoned"]);
        let rest = checked(&events[1], &counters(0, 1, 0));
        assert_eq!((rest["callSid"].as_str(), rest["leaveCause"].as_str(), rest["position"].as_i64()), (Some(leg.as_str()), Some(""), Some(0)));
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["byeType"], "7");

        let leg = dial_in(&app, "13800138000", "4008001000").await;
        let events = sup.take_queue_moves(2).await;
        assert_eq!(events[1]["data"]["eventName"], "left", "{events:?}");
        assert_eq!(events[1]["data"]["leaveCause"], "timeout");
        assert!(events[1]["data"]["waitSeconds"].as_i64().unwrap() >= 10, "{events:?}");
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["byeType"], "8");

        let leg = dial_in(&app, "13800138000", "4008002000").await;
        let events = sup.take_queue_moves(2).await;
        let rest = checked(&events[1], &json!({"waitingCount": 0, "agentsOffline": 0}));
        assert_eq!((rest["eventName"].as_str(), rest["leaveCause"].as_str(), rest["queueName"].as_str()), (Some("left"), Some("no-agents"), Some("nobody")), "{events:?}");
        assert_eq!(cdr_of_leg(&app, &db, &leg).await["byeType"], "8");
    }
}

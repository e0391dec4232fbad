//! `transfer` (agents' contract §7.1): an agent talking with a caller who dialled in hands
//! it to another agent, a queue or an outside number; the events on both agents' sockets
//! (§8.1 callSubtype 3, coAgentNo, completedCause `transferred`), the failure paths (back
//! to the head of the last queue, else byeType 9) and the CDR's leg roles (§10).

use serde_json::{Value, json};

use crate::agent_calls::{ready, script};
use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::dial_in::{cdr_of_leg, dial_in, route, talking_user_leg};
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;

/// A queue "sales" (`queue` its other fields) whose only member is 1001 (`member` its
/// wrapupTime and sipNumber), number 4008001000 routed to it; 1001 logged in ready, then a
/// caller from 13800138000 whose offer the socket has seen `initiated` and `ringing`.
pub(crate) async fn offered_to_1001(
    app: &TestApp,
    queue: Value,
    member: Value,
) -> (crate::agent_client::AgentSocket, String, String) {
    let mut spec = json!({"name": "sales"});
    spec.as_object_mut()
        .unwrap()
        .extend(queue.as_object().cloned().unwrap_or_default());
    let queue = create_queue(app, spec).await;
    let mut member = member;
    member["queues"] = json!([{"queueSid": queue}]);
    agent(app, "1001", member).await;
    route(
        app,
        "4008001000",
        json!({"route": {"type": "queue", "queueSid": queue}}),
    )
    .await;
    let mut socket = ready(app, "1001").await;
    let user = dial_in(app, "13800138000", "4008001000").await;
    let (names, _) = script(&mut socket, 2, 1).await;
    assert_eq!(names, ["initiated/2", "ringing/2"]);
    (socket, user, queue)
}

/// As [`offered_to_1001`] with sipNumber 80001001 and `wrapup`, the caller then talking
/// with 1001. The socket has read the offer's three events (seq 2–4).
pub(crate) async fn talking(
    app: &TestApp,
    db: &TestDb,
    wrapup: i64,
) -> (crate::agent_client::AgentSocket, String, String) {
    let member = json!({"wrapupTime": wrapup, "sipNumber": "80001001"});
    let (mut socket, user, queue) = offered_to_1001(app, json!({}), member).await;
    let (names, _) = script(&mut socket, 1, 3).await;
    assert_eq!(names, ["answered/2+"]);
    assert_eq!(talking_user_leg(app, db).await, user);
    (socket, user, queue)
}

fn transfer(target_type: &str, target: &str) -> Value {
    json!({"targetType": target_type, "target": target})
}

/// The CDR's legs as `role agentNo cause`.
pub(crate) fn legs(cdr: &Value) -> Vec<String> {
    cdr["cdrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {} {}",
                l["role"].as_str().unwrap(),
                l["agentNo"].as_str().unwrap(),
                l["cause"].as_str().unwrap()
            )
        })
        .collect()
}

both_backends! {
    /// To an agent: the transferring agent's leg ends `transferred` and its wrapup
    /// follows; the target gets the caller as callSubtype 3 with coAgentNo; the CDR keeps
    /// the first agent and names the target's leg `transfer`.
    async fn transfer_to_an_agent(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, _) = talking(&app, &db, 0).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002"})).await;
        let mut second = ready(&app, "1002").await;
        let a = command(&app, "1001", "transfer", transfer("agent", "1002")).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let (names, _) = script(&mut first, 3, 4).await;
        assert_eq!(names, ["completed/2 (transferred)", "st completed", "st autoReady"]);
        let (names, frames) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/3", "ringing/3", "answered/3+"]);
        for f in &frames {
            assert_eq!((f["data"]["coAgentNo"].as_str(), f["data"]["agentNo"].as_str(), f["data"]["callType"].as_str()), (Some("1001"), Some("1002"), Some("1")), "{f}");
        }
        let state = command(&app, "1002", "getState", json!({})).await;
        let call = &state.body["data"]["calls"][0];
        assert_eq!((call["callSubtype"].as_str(), call["coAgentNo"].as_str(), call["isBridged"].as_str()), (Some("3"), Some("1001"), Some("1")), "{call}");
        let a = command(&app, "1002", "hangup", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer 1002 completed"], "{cdr}");
        let (names, _) = script(&mut second, 3, 4).await;
        assert_eq!(names, ["completed/3", "st completed", "st autoReady"]);
    }
}

both_backends! {
    /// To a queue: the caller joins it (joinType 2) and its member gets a transfer offer.
    async fn transfer_to_a_queue(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, _) = talking(&app, &db, 0).await;
        let support = create_queue(&app, json!({"name": "support"})).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002", "queues": [{"queueSid": support}]})).await;
        let mut second = ready(&app, "1002").await;
        let a = command(&app, "1001", "transfer", transfer("queue", &support)).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let (names, _) = script(&mut first, 3, 4).await;
        assert_eq!(names, ["completed/2 (transferred)", "st completed", "st autoReady"]);
        let (names, frames) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/3", "ringing/3", "answered/3+"]);
        assert_eq!((frames[0]["data"]["coAgentNo"].as_str(), frames[0]["data"]["queueSid"].as_str()), (Some("1001"), Some(support.as_str())));
        command(&app, "1002", "hangup", json!({})).await;
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer 1002 completed"], "{cdr}");
    }
}

both_backends! {
    /// To a number that answers and hangs up 2 s later, from hold: the caller talks with
    /// it (byeType 4); the number's leg has no agent.
    async fn transfer_to_a_number(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, _) = talking(&app, &db, 0).await;
        // On hold: the hold is released as the agent leaves (no `retrieved`).
        let a = command(&app, "1001", "holdCall", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let a = command(&app, "1001", "transfer", transfer("number", "13800139995")).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let (names, _) = script(&mut first, 4, 4).await;
        assert_eq!(names, ["held/2", "completed/2 (transferred)", "st completed", "st autoReady"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer  completed"], "{cdr}");
        assert_eq!(cdr["cdrs"][2]["to"], "13800139995");
    }
}

both_backends! {
    /// A number that fails sends the caller back to the head of its last queue, where
    /// another member takes it (still a transfer from the first agent).
    async fn a_failed_transfer_goes_back_to_the_queue(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, queue) = talking(&app, &db, 60).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002", "queues": [{"queueSid": queue}]})).await;
        let mut second = ready(&app, "1002").await;
        let a = command(&app, "1001", "transfer", transfer("number", "13800139992")).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let (names, _) = script(&mut first, 2, 4).await;
        assert_eq!(names, ["completed/2 (transferred)", "st completed"]);
        let (names, frames) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/3", "ringing/3", "answered/3+"]);
        assert_eq!(frames[0]["data"]["coAgentNo"], "1001");
        command(&app, "1002", "hangup", json!({})).await;
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str()), (Some("4"), Some(queue.as_str())), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer  failed", "transfer 1002 completed"], "{cdr}");
    }
}

both_backends! {
    /// A caller routed straight to an agent has no queue to go back to: a failed transfer
    /// plays the failure tone and ends the call with byeType 9.
    async fn a_failed_transfer_without_a_queue_ends_with_bye_type_9(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001"})).await;
        route(&app, "4008001000", json!({"route": {"type": "agent", "agentNo": "1001", "fallback": {"type": "hangup"}}})).await;
        let _socket = ready(&app, "1001").await;
        let user = dial_in(&app, "13800138000", "4008001000").await;
        assert_eq!(talking_user_leg(&app, &db).await, user);
        let a = command(&app, "1001", "transfer", transfer("number", "13800139992")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("9"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer  failed"], "{cdr}");
    }
}

both_backends! {
    /// Refusals: not talking (20104), targetType or target missing or wrong (10004),
    /// oneself (20113), an agent unknown or logged out (20107) or not ready (20108), an
    /// unknown queue (20003), an invalid number (10004). Nothing changes for the caller.
    async fn transfers_are_refused_as_written(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "1003", json!({"sipNumber": "80001003"})).await;
        let _idle = ready(&app, "1003").await;
        let a = command(&app, "1003", "transfer", transfer("agent", "1001")).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (409, Some("20104")), "{}", a.body);
        let a = command(&app, "1003", "pause", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let (mut first, user, _) = talking(&app, &db, 0).await;
        agent(&app, "1002", json!({"sipNumber": "80001002"})).await;
        let cases = [
            (json!({"target": "1003"}), 400, "10004"),
            (transfer("phone", "1003"), 400, "10004"),
            (json!({"targetType": "agent"}), 400, "10004"),
            (transfer("agent", "1001"), 400, "20113"),
            (transfer("agent", "9999"), 404, "20107"),
            (transfer("agent", "1002"), 404, "20107"),
            (transfer("agent", "1003"), 409, "20108"),
            (transfer("queue", "QU00000000000000000000000000000000"), 404, "20003"),
            (transfer("number", "not a number"), 400, "10004"),
        ];
        for (params, status, code) in cases {
            let a = command(&app, "1001", "transfer", params.clone()).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (status, Some(code)), "{params}: {}", a.body);
        }
        let a = command(&app, "1001", "hangup", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let (names, _) = script(&mut first, 1, 4).await;
        assert_eq!(names, ["completed/2"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!(cdr["byeType"], "4", "{cdr}");
    }
}

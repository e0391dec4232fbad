//! `consult`, `consultTransfer`, `consultConference`, `cancelConsult` (agents' contract
//! §7.1) of an agent talking with a caller who dialled in: the exact events on the
//! consulting agent's socket (callSubtype 2 and 5) and the consulted one's (4, then 3
//! after a transfer), the caller parked until `retrieveCall` when a consult fails, the
//! refusals, and the CDR's leg roles (§10).

use serde_json::{Value, json};

use crate::agent_calls::{ready, script};
use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::dial_in::cdr_of_leg;
use crate::helpers::{TestApp, TestDb};
use crate::transfers::{legs, talking};

fn consult(target_type: &str, target: &str) -> Value {
    json!({"targetType": target_type, "target": target})
}

/// `cmd` by `agent_no` succeeds.
pub(crate) async fn ok(app: &TestApp, agent_no: &str, cmd: &str, params: Value) {
    let a = command(app, agent_no, cmd, params).await;
    assert_eq!(
        (a.status, a.body["statusCode"].as_str()),
        (200, Some("00000")),
        "{cmd}: {}",
        a.body
    );
}

/// 1001 talking with a caller, 1002 ready (no queue), 1001 consulting 1002 who answered.
async fn consulting(
    app: &TestApp,
    db: &TestDb,
) -> (
    crate::agent_client::AgentSocket,
    crate::agent_client::AgentSocket,
    String,
) {
    let (mut first, user, queue) = talking(app, db, 0).await;
    agent(
        app,
        "1002",
        json!({"wrapupTime": 0, "sipNumber": "80001002"}),
    )
    .await;
    let mut second = ready(app, "1002").await;
    ok(app, "1001", "consult", consult("agent", "1002")).await;
    let (names, frames) = script(&mut first, 4, 4).await;
    assert_eq!(names, ["held/2", "initiated/5", "ringing/5", "answered/5+"]);
    assert_eq!(frames[1]["data"]["coAgentNo"], "1002", "{}", frames[1]);
    let (names, frames) = script(&mut second, 3, 1).await;
    assert_eq!(names, ["initiated/4", "ringing/4", "answered/4+"]);
    assert_eq!(
        (
            frames[0]["data"]["coAgentNo"].as_str(),
            frames[0]["data"]["callSid"].as_str()
        ),
        (Some("1001"), frames[1]["data"]["callSid"].as_str())
    );
    // getState says the same: the consulted leg is /4, the caller held.
    let call = |body: &Value| body["data"]["calls"][0].clone();
    let b = call(&command(app, "1002", "getState", json!({})).await.body);
    assert_eq!(
        (
            b["callSubtype"].as_str(),
            b["coAgentNo"].as_str(),
            b["callState"].as_str()
        ),
        (Some("4"), Some("1001"), Some("connected")),
        "{b}"
    );
    let a = call(&command(app, "1001", "getState", json!({})).await.body);
    assert_eq!(
        (
            a["callSubtype"].as_str(),
            a["callState"].as_str(),
            a["queueSid"].as_str()
        ),
        (Some("2"), Some("held"), Some(queue.as_str())),
        "{a}"
    );
    (first, second, user)
}

both_backends! {
    /// consult, then consultTransfer: the consulted agent's leg carries callSubtype 3 from
    /// then on; the consulting agent's two legs end `transferred`.
    async fn consult_then_transfer(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, mut second, user) = consulting(&app, &db).await;
        ok(&app, "1001", "consultTransfer", json!({})).await;
        let (names, _) = script(&mut first, 4, 8).await;
        assert_eq!(names, ["completed/5 (transferred)", "completed/2 (transferred)", "st completed", "st autoReady"]);
        let (names, _) = script(&mut second, 1, 4).await;
        assert_eq!(names, ["answered/3+"]);
        ok(&app, "1002", "hangup", json!({})).await;
        let (names, _) = script(&mut second, 3, 5).await;
        assert_eq!(names, ["completed/3", "st completed", "st autoReady"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "transfer 1002 completed"], "{cdr}");
    }
}

both_backends! {
    /// consult, then cancelConsult: the consulted leg ends, then the caller is retrieved.
    async fn consult_then_cancel(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, mut second, user) = consulting(&app, &db).await;
        ok(&app, "1001", "cancelConsult", json!({})).await;
        let (names, _) = script(&mut first, 2, 8).await;
        assert_eq!(names, ["completed/5", "retrieved/2"]);
        let (names, _) = script(&mut second, 3, 4).await;
        assert_eq!(names, ["completed/4", "st completed", "st autoReady"]);
        ok(&app, "1001", "hangup", json!({})).await;
        let (names, _) = script(&mut first, 1, 10).await;
        assert_eq!(names, ["completed/2"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!(cdr["byeType"], "4", "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "consult 1002 completed"], "{cdr}");
    }
}

both_backends! {
    /// consult, then consultConference: all three talk; the consulting agent leaves and
    /// the other two go on.
    async fn consult_then_conference(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, mut second, user) = consulting(&app, &db).await;
        ok(&app, "1001", "consultConference", json!({})).await;
        let (names, _) = script(&mut first, 1, 8).await;
        assert_eq!(names, ["conferenced/2"]);
        let (names, _) = script(&mut second, 1, 4).await;
        assert_eq!(names, ["conferenced/4"]);
        ok(&app, "1001", "hangup", json!({})).await;
        let (names, _) = script(&mut first, 4, 9).await;
        assert_eq!(names, ["completed/5 (transferred)", "completed/2", "st completed", "st autoReady"]);
        ok(&app, "1002", "hangup", json!({})).await;
        let (names, _) = script(&mut second, 1, 5).await;
        assert_eq!(names, ["completed/4"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "consult 1002 completed"], "{cdr}");
    }
}

both_backends! {
    /// A consulted number that fails leaves the caller parked until retrieveCall.
    async fn a_failed_consult_keeps_the_caller_until_retrieved(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, _) = talking(&app, &db, 0).await;
        ok(&app, "1001", "consult", consult("number", "13800139992")).await;
        let (names, _) = script(&mut first, 3, 4).await;
        assert_eq!(names, ["held/2", "initiated/5", "failed/5 (failed)"]);
        ok(&app, "1001", "retrieveCall", json!({})).await;
        let (names, _) = script(&mut first, 1, 7).await;
        assert_eq!(names, ["retrieved/2"]);
        ok(&app, "1001", "hangup", json!({})).await;
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!(cdr["byeType"], "4", "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "consult  failed"], "{cdr}");
    }
}

both_backends! {
    /// Refusals: a queue target (10004), oneself (20113), an agent not ready (20108, and
    /// it is not left ringing), consult commands without a consult or a second consult
    /// (20105), a transfer during a consult (20105).
    async fn consults_are_refused_as_written(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, queue) = talking(&app, &db, 0).await;
        agent(&app, "1002", json!({"sipNumber": "80001002"})).await;
        let mut paused = ready(&app, "1002").await;
        ok(&app, "1002", "pause", json!({})).await;
        paused.take_events(1).await;
        let cases = [
            ("consult", consult("queue", &queue), 400, "10004"),
            ("consult", consult("agent", "1001"), 400, "20113"),
            ("consult", consult("agent", "1002"), 409, "20108"),
            ("consult", consult("agent", "9999"), 404, "20107"),
            ("consultTransfer", json!({}), 409, "20105"),
            ("consultConference", json!({}), 409, "20105"),
            ("cancelConsult", json!({}), 409, "20105"),
        ];
        for (cmd, params, status, code) in cases {
            let a = command(&app, "1001", cmd, params.clone()).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (status, Some(code)), "{cmd} {params}: {}", a.body);
        }
        let state = command(&app, "1002", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "pause", "{}", state.body);
        // A consult to a number that rings: a second consult and a transfer are refused.
        ok(&app, "1001", "consult", consult("number", "13800139996")).await;
        for (cmd, params) in [("consult", consult("number", "13800139000")), ("transfer", json!({"targetType": "queue", "target": queue}))] {
            let a = command(&app, "1001", cmd, params).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (409, Some("20105")), "{cmd}: {}", a.body);
        }
        // The consulting agent hangs up while the consult rings: it is canceled, then all end.
        ok(&app, "1001", "hangup", json!({})).await;
        let (names, _) = script(&mut first, 5, 4).await;
        assert_eq!(names, ["held/2", "initiated/5", "ringing/5", "failed/5 (canceled)", "completed/2"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!(cdr["byeType"], "4", "{cdr}");
        assert!(["consult  canceled", "consult  failed"].contains(&legs(&cdr)[2].as_str()), "{cdr}");
    }
}

/// `cmd` by `agent_no` succeeds within 20 s (a conversation being taken over answers
/// 20105 until its new driver has it).
async fn eventually(app: &TestApp, agent_no: &str, cmd: &str) {
    let started = std::time::Instant::now();
    loop {
        let a = command(app, agent_no, cmd, json!({})).await;
        if a.body["statusCode"] == "00000" {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{cmd}: {}",
            a.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `agent_no`'s agentState once it is `state` (within 20 s).
async fn until_state(app: &TestApp, agent_no: &str, state: &str) {
    let started = std::time::Instant::now();
    loop {
        let a = command(app, agent_no, "getState", json!({})).await;
        if a.body["data"]["agentState"] == state {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{}",
            a.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

both_backends! {
    /// SIGKILL of the process driving a consult, then of the one driving the conference
    /// it became, the media server alive: each time the next process re-attaches the
    /// conversation; it ends with one CDR whose legs carry their roles.
    async fn sigkill_mid_consult_and_mid_conference(db: TestDb) {
        use crate::dial_in::{QueueOnProcesses, dial_in, queue_on_processes, talking_user_leg};
        use crate::processes::server;
        let dir = tempfile::tempdir().unwrap();
        let QueueOnProcesses { _sandbox, server: mut first, mut app, media_port, .. } =
            queue_on_processes(&db, dir.path(), json!({"name": "sales", "maxWaitSeconds": 0})).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002"})).await;
        for agent_no in ["1001", "1002"] {
            ok(&app, agent_no, "login", json!({})).await;
        }
        let user = dial_in(&app, "13800138001", "4008001000").await;
        assert_eq!(talking_user_leg(&app, &db).await, user);
        ok(&app, "1001", "consult", consult("agent", "1002")).await;
        until_state(&app, "1002", "talking").await;
        first.0.kill().unwrap();
        first.0.wait().unwrap();

        let (mut second, address) = server(&db, media_port, dir.path(), "10").await;
        app.address = address;
        eventually(&app, "1001", "consultConference").await;
        second.0.kill().unwrap();
        second.0.wait().unwrap();

        let (_third, address) = server(&db, media_port, dir.path(), "10").await;
        app.address = address;
        // The consulting agent leaves the conference; the other two talk on.
        eventually(&app, "1001", "hangup").await;
        until_state(&app, "1001", "ready").await;
        ok(&app, "1002", "hangup", json!({})).await;
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        assert_eq!(legs(&cdr), ["user  completed", "agent 1001 completed", "consult 1002 completed"], "{cdr}");
        let store = db.store().await;
        assert_eq!(store.count_cdrs().await.unwrap(), 1);
    }
}

both_backends! {
    /// After a consult that failed, the parked caller can be transferred; the agent who
    /// takes it can hold it as any caller.
    async fn a_parked_caller_can_be_transferred(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, user, _) = talking(&app, &db, 0).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002"})).await;
        let mut second = ready(&app, "1002").await;
        ok(&app, "1001", "consult", consult("number", "13800139992")).await;
        let (names, _) = script(&mut first, 3, 4).await;
        assert_eq!(names, ["held/2", "initiated/5", "failed/5 (failed)"]);
        ok(&app, "1001", "transfer", json!({"targetType": "agent", "target": "1002"})).await;
        let (names, _) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/3", "ringing/3", "answered/3+"]);
        ok(&app, "1002", "holdCall", json!({})).await;
        ok(&app, "1002", "retrieveCall", json!({})).await;
        let (names, _) = script(&mut second, 2, 4).await;
        assert_eq!(names, ["held/3", "retrieved/3"]);
        ok(&app, "1002", "hangup", json!({})).await;
        let cdr = cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
    }
}

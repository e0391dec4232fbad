//! An agent's callOut takes the same call control as a caller who dialled in (agents'
//! contract §7.1, §7.2, §8.2: callType 4 with callSubtypes 3, 4 and 5): consult and
//! consultTransfer, transfer to an agent, monitor by a supervisor; the events on every
//! socket, the callOut's agent seeing its user's leg only while it is in the call, and the
//! CDR's leg roles.

use serde_json::{Value, json};

use crate::agent_calls::{CALL_OUT_CONNECTS, agent_cdr, ready, script};
use crate::agent_sessions::{agent, command};
use crate::both_backends;
use crate::consults::ok;
use crate::helpers::{TestApp, TestDb};
use crate::transfers::legs;

/// 1001 (wrapupTime 0) has called 13800000001 out, who answered: its socket has read the
/// seven events of the connection (seq 2–8). Returns the socket and the conversation.
async fn called_out(app: &TestApp) -> (crate::agent_client::AgentSocket, String) {
    agent(
        app,
        "1001",
        json!({"wrapupTime": 0, "sipNumber": "80001001"}),
    )
    .await;
    let mut socket = ready(app, "1001").await;
    let r = socket
        .request(
            "callOut",
            json!({"userNumber": "13800000001", "userData": "o-7"}),
        )
        .await;
    assert_eq!(r["statusCode"], "00000", "{r}");
    let cv = r["data"]["conversationSid"].as_str().unwrap().to_string();
    let (names, _) = script(&mut socket, 7, 1).await;
    assert_eq!(names, CALL_OUT_CONNECTS);
    (socket, cv)
}

both_backends! {
    /// consult of an agent, then consultTransfer: the consulted agent sees callType 4,
    /// callSubtype 4 then 3; the callOut's agent leaves with the consult's leg, the
    /// user's and its own `transferred`, then hears nothing more of the user; the CDR
    /// keeps the callOut's agent.
    async fn a_call_out_is_consulted_and_transferred(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, cv) = called_out(&app).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002"})).await;
        let mut second = ready(&app, "1002").await;
        ok(&app, "1001", "consult", json!({"targetType": "agent", "target": "1002"})).await;
        let (names, _) = script(&mut first, 4, 8).await;
        assert_eq!(names, ["held/2", "initiated/5", "ringing/5", "answered/5+"]);
        let (names, frames) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/4", "ringing/4", "answered/4+"]);
        let d = &frames[2]["data"];
        assert_eq!(
            (d["callType"].as_str(), d["coAgentNo"].as_str(), d["conversationSid"].as_str(), d["userData"].as_str()),
            (Some("4"), Some("1001"), Some(cv.as_str()), Some("o-7")),
            "{d}"
        );
        ok(&app, "1001", "consultTransfer", json!({})).await;
        let (names, _) = script(&mut first, 5, 12).await;
        assert_eq!(names, ["completed/5 (transferred)", "completed/1 (transferred)", "completed/2 (transferred)", "st completed", "st autoReady"]);
        let (names, _) = script(&mut second, 1, 4).await;
        assert_eq!(names, ["answered/3+"]);
        ok(&app, "1002", "hangup", json!({})).await;
        let (names, _) = script(&mut second, 3, 5).await;
        assert_eq!(names, ["completed/3", "st completed", "st autoReady"]);
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!(
            (cdr["callType"].as_str(), cdr["byeType"].as_str(), cdr["agentNo"].as_str(), cdr["userData"].as_str()),
            (Some("4"), Some("4"), Some("1001"), Some("o-7")),
            "{cdr}"
        );
        assert_eq!(legs(&cdr), ["agent 1001 completed", "user  completed", "transfer 1002 completed"], "{cdr}");
        // 1001 saw nothing after it left: its next event is the one it asks for now.
        ok(&app, "1001", "pause", json!({})).await;
        let (names, _) = script(&mut first, 1, 17).await;
        assert_eq!(names, ["st pause"]);
    }
}

both_backends! {
    /// A supervisor listens in on a callOut, then the agent transfers the user to another
    /// agent: the supervisor's leg ends with the agent's, the target gets the user as
    /// callSubtype 3 of callType 4; the user hangs up at the end (byeType 3).
    async fn a_monitored_call_out_is_transferred(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (mut first, cv) = called_out(&app).await;
        agent(&app, "2001", json!({"role": "supervisor", "sipNumber": "80002001"})).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002"})).await;
        let mut boss = ready(&app, "2001").await;
        let mut second = ready(&app, "1002").await;
        ok(&app, "2001", "monitor", json!({"agentNo": "1001"})).await;
        let (names, frames) = script(&mut boss, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        let d = &frames[2]["data"];
        assert_eq!(
            (d["callType"].as_str(), d["monitorMode"].as_str(), d["coAgentNo"].as_str(), d["conversationSid"].as_str()),
            (Some("4"), Some("monitor"), Some("1001"), Some(cv.as_str())),
            "{d}"
        );
        ok(&app, "1001", "transfer", json!({"targetType": "agent", "target": "1002"})).await;
        let (names, _) = script(&mut first, 4, 8).await;
        assert_eq!(names, ["completed/1 (transferred)", "completed/2 (transferred)", "st completed", "st autoReady"]);
        let (names, _) = script(&mut boss, 1, 4).await;
        assert_eq!(names, ["completed/2"]);
        let (names, frames) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/3", "ringing/3", "answered/3+"]);
        assert_eq!((frames[2]["data"]["callType"].as_str(), frames[2]["data"]["coAgentNo"].as_str()), (Some("4"), Some("1001")));
        let r = command(&app, "1002", "holdCall", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (names, _) = script(&mut second, 1, 4).await;
        assert_eq!(names, ["held/3"]);
        // getState: 1001 left the call; 1002 has its own leg, held (not the user's).
        let calls = |body: Value| body["data"]["calls"].clone();
        assert_eq!(calls(command(&app, "1001", "getState", json!({})).await.body), json!([]));
        let mine = calls(command(&app, "1002", "getState", json!({})).await.body);
        assert_eq!(
            (mine.as_array().map(Vec::len), mine[0]["callSubtype"].as_str(), mine[0]["callState"].as_str(), mine[0]["callType"].as_str()),
            (Some(1), Some("3"), Some("held"), Some("4")),
            "{mine}"
        );
        ok(&app, "1002", "hangup", json!({})).await;
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!((cdr["callType"].as_str(), cdr["byeType"].as_str()), (Some("4"), Some("4")), "{cdr}");
        assert_eq!(
            legs(&cdr),
            ["agent 1001 completed", "user  completed", "monitor 2001 completed", "transfer 1002 completed"],
            "{cdr}"
        );
    }
}

both_backends! {
    /// What a callOut still dialling refuses (20105), and what a connected one refuses as
    /// a dial-in does: a transfer to oneself (20113), cancelConsult without a consult.
    async fn call_out_control_is_refused_as_written(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (_socket, _cv) = called_out(&app).await;
        let refusals = [
            ("transfer", json!({"targetType": "agent", "target": "1001"}), "20113"),
            ("cancelConsult", json!({}), "20105"),
            ("consultTransfer", json!({}), "20105"),
            ("bridge", json!({}), "20104"),
        ];
        for (cmd, params, code) in refusals {
            let a = command(&app, "1001", cmd, params).await;
            assert_eq!(a.body["statusCode"].as_str(), Some(code), "{cmd}: {}", a.body);
        }
        ok(&app, "1001", "hangup", json!({})).await;
    }
}

//! Supervisor commands (agents' contract §7.2): forceReady, forcePause and forceLogout over
//! REST and the socket, with their refusals and the target's statusEvents (§8.3 forcedBy,
//! readyCause / pauseCause / logoutCause `forced`); forceHangup of a callOut and of a
//! dial-in (byeType 6, completedCause `forced`).

use serde_json::{Value, json};

use crate::agent_calls::{agent_cdr, ready, script};
use crate::agent_sessions::{agent, command, signed_in};
use crate::both_backends;
use crate::helpers::{TestApp, TestDb};

/// A supervisor 2001 and agents 1001 and 1002 (1001 signed in, logged in paused).
async fn team(app: &TestApp) -> crate::agent_client::AgentSocket {
    agent(app, "2001", json!({"role": "supervisor"})).await;
    agent(app, "1001", json!({"wrapupTime": 0})).await;
    agent(app, "1002", json!({})).await;
    let mut socket = signed_in(app, "1001").await;
    let login = socket
        .request("login", json!({"workStatus": "2", "pauseCause": "lunch"}))
        .await;
    assert_eq!(login["statusCode"], "00000", "{login}");
    socket.take_events(1).await;
    socket
}

/// The statusEvent's fields that a forced change sets.
fn forced(frame: &Value) -> (String, String, String, String, String, String) {
    assert_eq!(frame["type"], "statusEvent", "{frame}");
    let d = &frame["data"];
    let field = |name: &str| d[name].as_str().unwrap_or("?").to_string();
    (
        field("eventName"),
        field("workStatus"),
        field("pauseCause"),
        field("readyCause"),
        field("logoutCause"),
        field("forcedBy"),
    )
}

fn strings(fields: [&str; 6]) -> (String, String, String, String, String, String) {
    let [a, b, c, d, e, f] = fields.map(str::to_string);
    (a, b, c, d, e, f)
}

both_backends! {
    /// Refusals: not a supervisor (20106), oneself (20113), an agent unknown or logged out
    /// (20107), no agentNo or a reserved pauseCause (10004).
    async fn forced_states_are_refused_as_written(db: TestDb) {
        let app = db.spawn(&[]).await;
        let _socket = team(&app).await;
        let cases = [
            ("1002", "forceReady", json!({"agentNo": "1001"}), 403, "20106"),
            ("2001", "forceReady", json!({"agentNo": "2001"}), 400, "20113"),
            ("2001", "forcePause", json!({"agentNo": "1002"}), 404, "20107"),
            ("2001", "forceLogout", json!({"agentNo": "9999"}), 404, "20107"),
            ("2001", "forceReady", json!({}), 400, "10004"),
            ("2001", "forcePause", json!({"agentNo": "1001", "pauseCause": "wrapup"}), 400, "10004"),
        ];
        for (by, cmd, params, status, code) in cases {
            let a = command(&app, by, cmd, params.clone()).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (status, Some(code)), "{cmd} {params}: {}", a.body);
        }
        assert_eq!(command(&app, "2001", "forceReady", json!({"agentNo": "1002"})).await.body["statusMsg"], "target agent not found or not logged in");
        assert_eq!(command(&app, "2001", "forceReady", json!({"agentNo": "2001"})).await.body["statusMsg"], "target is the agent itself");
    }
}

both_backends! {
    /// A supervisor readies, pauses and logs out an agent; the agent's socket gets each
    /// statusEvent with forcedBy. The supervisor need not be logged in, and may command
    /// over its own socket.
    async fn a_supervisor_forces_an_agents_state(db: TestDb) {
        let app = db.spawn(&[]).await;
        let mut agent_socket = team(&app).await;

        let a = command(&app, "2001", "forceReady", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str(), &a.body["data"]), (200, Some("00000"), &json!({})), "{}", a.body);
        let e = agent_socket.take_events(1).await;
        assert_eq!(forced(&e[0]), strings(["ready", "ready", "", "forced", "", "2001"]));

        let a = command(&app, "2001", "forcePause", json!({"agentNo": "1001"})).await;
        assert_eq!(a.body["statusCode"], "00000", "{}", a.body);
        let e = agent_socket.take_events(1).await;
        assert_eq!(forced(&e[0]), strings(["pause", "pause", "forced", "", "", "2001"]));

        let mut supervisor = signed_in(&app, "2001").await;
        let r = supervisor.request("forcePause", json!({"agentNo": "1001", "pauseCause": "training"})).await;
        assert_eq!((r["statusCode"].as_str(), &r["data"]), (Some("00000"), &json!({})), "{r}");
        let e = agent_socket.take_events(1).await;
        assert_eq!(forced(&e[0]), strings(["pause", "pause", "training", "", "", "2001"]));

        let r = supervisor.request("forceLogout", json!({"agentNo": "1001"})).await;
        assert_eq!((r["statusCode"].as_str(), &r["data"]), (Some("00000"), &json!({})), "{r}");
        let e = agent_socket.take_events(1).await;
        assert_eq!(forced(&e[0]), strings(["logout", "offline", "", "", "forced", "2001"]));
        let state = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "offline");
        // The supervisor's own session saw nothing of it.
        let own = command(&app, "2001", "getState", json!({})).await;
        assert_eq!((own.body["data"]["agentState"].as_str(), own.body["data"]["lastSeq"].as_str()), (Some("offline"), Some("0")));
    }
}

both_backends! {
    /// forceLogout of an agent in a call waits for the call's end ("deferred":"1"); the
    /// logout then carries forcedBy.
    async fn a_forced_logout_waits_for_the_call(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "2001", json!({"role": "supervisor"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0})).await;
        let mut socket = ready(&app, "1001").await;
        let r = socket.request("callOut", json!({"userNumber": "13800000001"})).await;
        assert_eq!(r["statusCode"], "00000", "{r}");
        let (names, _) = script(&mut socket, 7, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2-", "initiated/1", "ringing/1", "answered/1+", "answered/2+"]);
        let a = command(&app, "2001", "forceLogout", json!({"agentNo": "1001"})).await;
        assert_eq!((a.body["statusCode"].as_str(), &a.body["data"]), (Some("00000"), &json!({"deferred": "1"})), "{}", a.body);
        let state = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "talking");
        assert_eq!(socket.request("hangup", json!({})).await["statusCode"], "00000");
        // The call's end, then the logout instead of wrapup (as a lost socket's logout).
        let (names, frames) = script(&mut socket, 3, 8).await;
        assert_eq!(names, ["completed/2", "completed/1", "st logout"]);
        assert_eq!(forced(&frames[2]), strings(["logout", "offline", "", "", "forced", "2001"]));
        let state = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "offline");
    }
}

both_backends! {
    /// forceHangup of an agent talking in a callOut: every leg ends, the agent's own leg
    /// `completed (forced)`, then its wrapup; the CDR's byeType is 6. An agent not talking
    /// is 20108, one logged out 20107.
    async fn force_hangup_ends_a_call_out(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "2001", json!({"role": "supervisor"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0})).await;
        agent(&app, "1002", json!({})).await;
        let mut socket = ready(&app, "1001").await;
        let _other = ready(&app, "1002").await;
        let refused = command(&app, "2001", "forceHangup", json!({"agentNo": "1002"})).await;
        assert_eq!((refused.status, refused.body["statusCode"].as_str(), refused.body["statusMsg"].as_str()), (409, Some("20108"), Some("target agent not available")), "{}", refused.body);
        let r = socket.request("callOut", json!({"userNumber": "13800000001"})).await;
        let cv = r["data"]["conversationSid"].as_str().unwrap().to_string();
        let (names, _) = script(&mut socket, 7, 1).await;
        assert_eq!(names[6], "answered/2+", "{names:?}");
        let a = command(&app, "2001", "forceHangup", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str(), &a.body["data"]), (200, Some("00000"), &json!({})), "{}", a.body);
        let (names, _) = script(&mut socket, 4, 8).await;
        assert_eq!(names, ["completed/2 (forced)", "completed/1", "st completed", "st autoReady"]);
        let cdr = agent_cdr(&app, &db, &cv).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("6"), Some("1001")), "{cdr}");
        assert_eq!(command(&app, "1001", "logout", json!({})).await.status, 200);
        let gone = command(&app, "2001", "forceHangup", json!({"agentNo": "1001"})).await;
        assert_eq!((gone.status, gone.body["statusCode"].as_str()), (404, Some("20107")), "{}", gone.body);
    }
}

both_backends! {
    /// forceHangup of an agent talking with a caller who dialled in: the caller's
    /// conversation ends with byeType 6, the agent's leg `completed (forced)`.
    async fn force_hangup_ends_a_dial_in(db: TestDb) {
        use crate::dial_in::{cdr_of_leg, dial_in, route, talking_user_leg};
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let queue = crate::queues::create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "2001", json!({"role": "supervisor"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let leg = dial_in(&app, "13800138001", "4008001000").await;
        assert_eq!(talking_user_leg(&app, &db).await, leg);
        let a = command(&app, "2001", "forceHangup", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("6"), Some("1001")), "{cdr}");
        // The agent's own leg ends forced; its wrapup (0 s) follows.
        let mut seen = Vec::new();
        while !seen.iter().any(|n: &String| n == "st autoReady") {
            let frame = socket.take_events(1).await.remove(0);
            let d = &frame["data"];
            seen.push(match frame["type"].as_str() {
                Some("callEvent") => format!("{}/{} {}", d["eventName"].as_str().unwrap(), d["callSubtype"].as_str().unwrap(), d["completedCause"].as_str().unwrap_or("")),
                _ => format!("st {}", d["eventName"].as_str().unwrap()),
            });
            assert!(seen.len() < 12, "{seen:?}");
        }
        assert!(seen.contains(&"completed/2 forced".to_string()), "{seen:?}");
    }
}

both_backends! {
    /// monitor, then whisper, then barge on an agent talking with a caller: the
    /// supervisor's leg (callSubtype 2, coAgentNo the agent, the agent's conversation)
    /// answers with each monitorMode in turn; the agent's socket sees none of it; the
    /// supervisor hangs up and is back, with no wrapup; the CDR has a `monitor` leg.
    async fn monitor_whisper_and_barge(db: TestDb) {
        use crate::dial_in::{cdr_of_leg, dial_in, route, talking_user_leg};
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let queue = crate::queues::create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "2001", json!({"role": "supervisor", "sipNumber": "80002001"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let mut boss = ready(&app, "2001").await;
        let user = dial_in(&app, "13800138001", "4008001000").await;
        assert_eq!(talking_user_leg(&app, &db).await, user);
        let (names, frames) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        let cv = frames[0]["data"]["conversationSid"].clone();
        let refusals = [
            ("1001", json!({"agentNo": "2001"}), 403, "20106"),
            ("2001", json!({"agentNo": "2001"}), 400, "20113"),
            ("2001", json!({"agentNo": "9999"}), 404, "20107"),
        ];
        for (by, params, status, code) in refusals {
            let a = command(&app, by, "monitor", params.clone()).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (status, Some(code)), "{params}: {}", a.body);
        }
        let expected = [
            ("monitor", vec!["initiated/2", "ringing/2", "answered/2+"]),
            ("whisper", vec!["answered/2+"]),
            ("barge", vec!["answered/2+"]),
        ];
        let mut seq = 1;
        for (cmd, names) in expected {
            let a = command(&app, "2001", cmd, json!({"agentNo": "1001"})).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{cmd}: {}", a.body);
            let (seen, frames) = script(&mut boss, names.len(), seq).await;
            seq += names.len() as i64;
            assert_eq!(seen, names, "{cmd}");
            let last = &frames[names.len() - 1]["data"];
            assert_eq!((last["monitorMode"].as_str(), last["coAgentNo"].as_str(), &last["conversationSid"]), (Some(cmd), Some("1001"), &cv), "{last}");
        }
        let state = command(&app, "2001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "talking", "{}", state.body);
        let a = command(&app, "2001", "hangup", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let (names, _) = script(&mut boss, 1, seq).await;
        assert_eq!(names, ["completed/2"]);
        // The agent hangs up: its socket saw nothing of the supervisor.
        assert_eq!(command(&app, "1001", "hangup", json!({})).await.status, 200);
        let (names, _) = script(&mut socket, 3, 4).await;
        assert_eq!(names, ["completed/2", "st completed", "st autoReady"]);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        let roles: Vec<(&str, &str)> = cdr["cdrs"].as_array().unwrap().iter().map(|l| (l["role"].as_str().unwrap(), l["agentNo"].as_str().unwrap())).collect();
        assert_eq!(roles, [("user", ""), ("agent", "1001"), ("monitor", "2001")], "{cdr}");
        let state = command(&app, "2001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "ready", "{}", state.body);
        // No one talking: 20108.
        let a = command(&app, "2001", "monitor", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (409, Some("20108")), "{}", a.body);
    }
}

both_backends! {
    /// intercept: a supervisor's device is dialled and takes the call over (the agent's
    /// leg `completed (forced)`, then its wrapup); the next time the supervisor listens
    /// first and takes the call over at once. The supervisor is then the call's agent.
    async fn intercept_takes_the_call_over(db: TestDb) {
        use crate::dial_in::{cdr_of_leg, dial_in, route, talking_user_leg};
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let queue = crate::queues::create_queue(&app, json!({"name": "sales"})).await;
        agent(&app, "2001", json!({"role": "supervisor", "sipNumber": "80002001", "wrapupTime": 0})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        let mut boss = ready(&app, "2001").await;
        let (mut seq, mut boss_seq) = (1, 1);
        for listen_first in [false, true] {
            let user = dial_in(&app, "13800138001", "4008001000").await;
            assert_eq!(talking_user_leg(&app, &db).await, user);
            let (names, _) = script(&mut socket, 3, seq).await;
            seq += 3;
            assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
            if listen_first {
                let a = command(&app, "2001", "monitor", json!({"agentNo": "1001"})).await;
                assert_eq!(a.status, 200, "{}", a.body);
                script(&mut boss, 3, boss_seq).await;
                boss_seq += 3;
            }
            let a = command(&app, "2001", "intercept", json!({"agentNo": "1001"})).await;
            assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
            let (names, frames) = match listen_first {
                true => script(&mut boss, 1, boss_seq).await,
                false => script(&mut boss, 3, boss_seq).await,
            };
            boss_seq += names.len() as i64;
            assert_eq!(names.last().map(String::as_str), Some("answered/2+"), "{names:?}");
            let last = &frames[names.len() - 1]["data"];
            assert_eq!((last["monitorMode"].as_str(), last["agentNo"].as_str()), (Some(""), Some("2001")), "{last}");
            let (names, _) = script(&mut socket, 3, seq).await;
            seq += 3;
            assert_eq!(names, ["completed/2 (forced)", "st completed", "st autoReady"]);
            let a = command(&app, "2001", "hangup", json!({})).await;
            assert_eq!(a.status, 200, "{}", a.body);
            let (names, _) = script(&mut boss, 3, boss_seq).await;
            boss_seq += 3;
            assert_eq!(names, ["completed/2", "st completed", "st autoReady"]);
            let cdr = cdr_of_leg(&app, &db, &user).await;
            let roles: Vec<(&str, &str)> = cdr["cdrs"].as_array().unwrap().iter().map(|l| (l["role"].as_str().unwrap(), l["agentNo"].as_str().unwrap())).collect();
            assert_eq!(roles, [("user", ""), ("agent", "1001"), ("agent", "2001")], "{cdr}");
            assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1001")), "{cdr}");
        }
    }
}

/// A queue whose member 1001's phone never answers (its offers ring until ringTimeout),
/// 1001 ready, and a caller whose offer rings at 1001 (its socket read up to `ringing/2`).
async fn ringing_at_1001(app: &TestApp) -> (crate::agent_client::AgentSocket, String, String) {
    let member = json!({"wrapupTime": 0, "sipNumber": "80009991"});
    crate::transfers::offered_to_1001(app, json!({"ringTimeout": 60}), member).await
}

both_backends! {
    /// intercept of an offer still ringing (抢接): the agent's offer is withdrawn
    /// (`failed (canceled)`, no pause) and the supervisor gets the caller.
    async fn intercept_takes_a_ringing_offer(db: TestDb) {
        use crate::dial_in::cdr_of_leg;
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        agent(&app, "2001", json!({"role": "supervisor", "sipNumber": "80002001", "wrapupTime": 0})).await;
        let mut boss = ready(&app, "2001").await;
        let (mut socket, user, queue) = ringing_at_1001(&app).await;
        let a = command(&app, "2001", "intercept", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        let (names, _) = script(&mut socket, 1, 3).await;
        assert_eq!(names, ["failed/2 (canceled)"]);
        let (names, frames) = script(&mut boss, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        assert_eq!(frames[2]["data"]["queueSid"].as_str(), Some(queue.as_str()));
        let state = command(&app, "1001", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "ready", "{}", state.body);
        assert_eq!(command(&app, "2001", "hangup", json!({})).await.status, 200);
        let cdr = cdr_of_leg(&app, &db, &user).await;
        let roles: Vec<(&str, &str)> = cdr["cdrs"].as_array().unwrap().iter().map(|l| (l["role"].as_str().unwrap(), l["agentNo"].as_str().unwrap())).collect();
        assert_eq!(roles, [("user", ""), ("agent", "1001"), ("agent", "2001")], "{cdr}");
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("2001")), "{cdr}");
    }
}

both_backends! {
    /// A supervisor whose phone does not answer an intercept: no pause for it, and the
    /// caller, who kept its music, goes to the next member who is ready.
    async fn a_missed_intercept_gives_the_caller_back(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10")]).await;
        agent(&app, "2002", json!({"role": "supervisor", "sipNumber": "80029991", "wrapupTime": 0})).await;
        let mut boss = ready(&app, "2002").await;
        let (_socket, user, queue) = ringing_at_1001(&app).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002", "queues": [{"queueSid": queue}]})).await;
        assert_eq!(command(&app, "1002", "login", json!({"workStatus": "2"})).await.status, 200);
        let a = command(&app, "2002", "intercept", json!({"agentNo": "1001"})).await;
        assert_eq!((a.status, a.body["statusCode"].as_str()), (200, Some("00000")), "{}", a.body);
        assert_eq!(command(&app, "1002", "ready", json!({})).await.status, 200);
        let (names, _) = script(&mut boss, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "failed/2 (no-answer)"]);
        let state = command(&app, "2002", "getState", json!({})).await;
        assert_eq!(state.body["data"]["agentState"], "ready", "{}", state.body);
        // 1002 talks with the caller now.
        let started = std::time::Instant::now();
        loop {
            let a = command(&app, "1002", "getState", json!({})).await;
            if a.body["data"]["agentState"] == "talking" {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{}", a.body);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(command(&app, "1002", "hangup", json!({})).await.status, 200);
        let cdr = crate::dial_in::cdr_of_leg(&app, &db, &user).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1002")), "{cdr}");
    }
}

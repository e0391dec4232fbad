//! Who gets a queued caller (agents' contract §9), end to end with several agents: each
//! strategy over agents of different idle times and skill levels, last-agent routing
//! outside its window, overflow across queues up to its cap, rejected offers and callers
//! who hang up while an agent rings.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::agent_calls::{ready, script};
use crate::agent_sessions::{agent, command, signed_in};
use crate::both_backends;
use crate::dial_in::{cdr_of_leg, dial_in, route};
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;

const DID: &str = "4008001000";

/// A queue with `strategy` and agents `(agentNo, skillLevel)` as its members, routed from
/// [`DID`]; the agents log in (ready) in the order given, a moment apart.
async fn team(app: &TestApp, queue: Value, agents: &[(&str, u8)]) -> String {
    let queue = create_queue(app, queue).await;
    for (agent_no, skill) in agents {
        let sip = format!("8000{agent_no}");
        let member = json!([{"queueSid": queue, "skillLevel": skill}]);
        agent(
            app,
            agent_no,
            json!({"wrapupTime": 0, "sipNumber": sip, "queues": member}),
        )
        .await;
    }
    route(
        app,
        DID,
        json!({"route": {"type": "queue", "queueSid": queue}}),
    )
    .await;
    for (agent_no, _) in agents {
        assert_eq!(command(app, agent_no, "login", json!({})).await.status, 200);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    queue
}

/// A caller from `from` dials in; the agent it was connected with hangs up (byeType 4),
/// and is back, ready; that agent.
async fn served_by(app: &TestApp, db: &TestDb, from: &str, agents: &[&str]) -> String {
    let leg = dial_in(app, from, DID).await;
    let started = Instant::now();
    let talking = 'found: loop {
        for agent_no in agents {
            let state = command(app, agent_no, "getState", json!({})).await;
            if state.body["data"]["agentState"] == "talking" {
                break 'found agent_no.to_string();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nobody took {leg}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(
        command(app, &talking, "hangup", json!({})).await.status,
        200
    );
    let cdr = cdr_of_leg(app, db, &leg).await;
    assert_eq!(
        (cdr["byeType"].as_str(), cdr["agentNo"].as_str()),
        (Some("4"), Some(talking.as_str())),
        "{cdr}"
    );
    // Its session is ready again (wrapupTime 0), and the matchmaker has heard of it.
    tokio::time::sleep(Duration::from_millis(80)).await;
    talking
}

/// Who served each of `n` callers (each from its own number).
async fn order(app: &TestApp, db: &TestDb, n: usize, agents: &[&str]) -> Vec<String> {
    let mut served = Vec::new();
    for i in 0..n {
        served.push(served_by(app, db, &format!("1380013800{i}"), agents).await);
    }
    served
}

both_backends! {
    /// longest-idle: the agent ready longest first; an agent back from a call is the
    /// most recently idle.
    async fn longest_idle_serves_the_longest_idle_agent(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        team(&app, json!({"name": "q"}), &[("1002", 5), ("1003", 5), ("1001", 5)]).await;
        let served = order(&app, &db, 4, &["1001", "1002", "1003"]).await;
        assert_eq!(served, ["1002", "1003", "1001", "1002"]);
    }
}

both_backends! {
    /// round-robin: agentNo order from the one after the last offered, whoever idled
    /// longest.
    async fn round_robin_serves_in_agent_number_order(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = json!({"name": "q", "strategy": "round-robin"});
        team(&app, queue, &[("1003", 5), ("1001", 5), ("1002", 5)]).await;
        let served = order(&app, &db, 4, &["1001", "1002", "1003"]).await;
        assert_eq!(served, ["1001", "1002", "1003", "1001"]);
    }
}

both_backends! {
    /// skill-then-longest-idle: the highest skillLevel first, ties by idle time; a lower
    /// skill waits while a higher one is ready, though it idled longest.
    async fn skill_then_longest_idle_prefers_skill(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = json!({"name": "q", "strategy": "skill-then-longest-idle"});
        team(&app, queue, &[("1001", 5), ("1003", 9), ("1002", 9)]).await;
        let served = order(&app, &db, 4, &["1001", "1002", "1003"]).await;
        assert_eq!(served, ["1003", "1002", "1003", "1002"]);
    }
}

both_backends! {
    /// lastAgentRouting looks back lastAgentWindowHours only: a caller whose last talk
    /// with an agent is older gets the queue's strategy.
    async fn last_agent_outside_the_window_is_not_preferred(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let queue = json!({"name": "q", "lastAgentRouting": true, "lastAgentWindowHours": 1});
        team(&app, queue, &[("1001", 5), ("1002", 5)]).await;
        let agents = ["1001", "1002"];
        assert_eq!(served_by(&app, &db, "13800138000", &agents).await, "1001");
        // Inside the window the caller gets 1001 again, though 1002 idled longer.
        assert_eq!(served_by(&app, &db, "13800138000", &agents).await, "1001");
        // Both talks two hours ago: outside the window, 1002 (the longest idle) it is.
        db.exec("UPDATE calls SET answer_at = answer_at - 7200000 WHERE answer_at IS NOT NULL").await;
        assert_eq!(served_by(&app, &db, "13800138000", &agents).await, "1002");
    }
}

both_backends! {
    /// Overflow across queues with nobody logged in: each queue is joined and left
    /// (`no-agents`) in turn, joinType 3 after the first, for five overflows; the sixth
    /// is refused and the caller hears the failure tone (byeType 8, queueSid the last
    /// queue it waited in).
    async fn overflow_chains_stop_after_five_hops(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let mut next = create_queue(&app, json!({"name": "q7"})).await;
        let mut chain = vec![next.clone()];
        for i in (1..=6).rev() {
            let overflow = json!({"type": "queue", "queueSid": next});
            next = create_queue(&app, json!({"name": format!("q{i}"), "overflow": overflow})).await;
            chain.insert(0, next.clone());
        }
        route(&app, DID, json!({"route": {"type": "queue", "queueSid": chain[0]}})).await;
        agent(&app, "9001", json!({"role": "supervisor", "sipNumber": "80009001"})).await;
        let mut sup = signed_in(&app, "9001").await;
        assert_eq!(sup.request("login", json!({})).await["statusCode"], "00000");
        assert_eq!(sup.request("monitorQueues", json!({})).await["statusCode"], "00000");

        let leg = dial_in(&app, "13800138000", DID).await;
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["queueSid"].as_str()), (Some("8"), Some(chain[5].as_str())), "{cdr}");
        let moves = sup.take_queue_moves(12).await;
        for (i, pair) in moves.chunks(2).enumerate() {
            let (joined, left) = (&pair[0]["data"], &pair[1]["data"]);
            let join_type = if i == 0 { "1" } else { "3" };
            assert_eq!((joined["eventName"].as_str(), joined["queueSid"].as_str(), joined["joinType"].as_str()), (Some("joined"), Some(chain[i].as_str()), Some(join_type)), "{moves:?}");
            assert_eq!((left["eventName"].as_str(), left["leaveCause"].as_str(), left["queueName"].as_str()), (Some("left"), Some("no-agents"), Some(format!("q{}", i + 1).as_str())), "{moves:?}");
        }
        // Nothing about the seventh queue.
        assert_eq!(sup.request("getState", json!({})).await["statusCode"], "00000");
        let later: Vec<&Value> = sup.events.iter().chain(&sup.queue_events).filter(|f| f["data"]["queueSid"] == chain[6].as_str() && f["data"]["eventName"] != "snapshot").collect();
        assert!(later.is_empty(), "{later:?}");
    }
}

both_backends! {
    /// An agent who hangs up while its offer rings rejects it: `failed/2 (failed)`,
    /// `st pause` (rejected); the caller keeps its place and the next agent gets it.
    async fn a_rejected_offer_goes_to_the_next_agent(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10")]).await;
        let queue = create_queue(&app, json!({"name": "q"})).await;
        // 1001's phone rings 10 s (its number's suffix 9996).
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80019996", "queues": [{"queueSid": queue}]})).await;
        agent(&app, "1002", json!({"wrapupTime": 0, "sipNumber": "80001002", "queues": [{"queueSid": queue}]})).await;
        route(&app, DID, json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut first = ready(&app, "1001").await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut second = ready(&app, "1002").await;
        let leg = dial_in(&app, "13800138000", DID).await;
        let (names, _) = script(&mut first, 2, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2"]);
        assert_eq!(first.request("hangup", json!({})).await["statusCode"], "00000");
        let (names, frames) = script(&mut first, 2, 3).await;
        assert_eq!(names, ["failed/2 (failed)", "st pause"], "{frames:?}");
        assert_eq!(frames[1]["data"]["pauseCause"], "rejected");
        let (names, _) = script(&mut second, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "answered/2+"]);
        assert_eq!(second.request("hangup", json!({})).await["statusCode"], "00000");
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("4"), Some("1002")), "{cdr}");
        let legs = cdr["cdrs"].as_array().unwrap();
        let agents: Vec<&str> = legs.iter().map(|l| l["agentNo"].as_str().unwrap_or_default()).collect();
        assert_eq!(agents, ["", "1001", "1002"], "{cdr}");
        assert_eq!(legs[1]["hangupCause"], "CALL_REJECTED", "{cdr}");
    }
}

both_backends! {
    /// A caller who hangs up while an agent's phone rings is abandoned (byeType 7): the
    /// offer is withdrawn (`failed/2 (canceled)`, no statusEvent) and the agent is ready.
    async fn a_caller_leaving_while_the_agent_rings_is_abandoned(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "10")]).await;
        let queue = create_queue(&app, json!({"name": "q"})).await;
        agent(&app, "1001", json!({"wrapupTime": 0, "sipNumber": "80019996", "queues": [{"queueSid": queue}]})).await;
        route(&app, DID, json!({"route": {"type": "queue", "queueSid": queue}})).await;
        let mut socket = ready(&app, "1001").await;
        // 9995: hangs up 2 s after its answer; the agent's phone rings 10 s.
        let leg = dial_in(&app, "13800139995", DID).await;
        let (names, frames) = script(&mut socket, 3, 1).await;
        assert_eq!(names, ["initiated/2", "ringing/2", "failed/2 (canceled)"], "{frames:?}");
        let cdr = cdr_of_leg(&app, &db, &leg).await;
        assert_eq!((cdr["byeType"].as_str(), cdr["agentNo"].as_str()), (Some("7"), Some("")), "{cdr}");
        let state = socket.request("getState", json!({})).await;
        assert_eq!(state["data"]["agentState"], "ready", "{state}");
        assert!(socket.events.iter().all(|f| f["type"] != "statusEvent"), "{:?}", socket.events);
    }
}

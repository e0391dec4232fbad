//! Queues (agents' contract §3.2): create with defaults, change, list, delete, and the
//! references a queue takes part in (overflows, memberships, routes).

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestDb, assert_id};

/// Creates a queue from `body`; its queueSid.
pub async fn create_queue(app: &TestApp, body: Value) -> String {
    let a = app.cti(Method::POST, "Queues", Some(body)).await;
    assert_eq!((a.status, a.code()), (201, "00000"), "{}", a.body);
    a.body["queue"]["queueSid"].as_str().unwrap().to_string()
}

both_backends! {
    /// A queue's defaults, a change of some fields, the list and the deletion.
    async fn queue_lifecycle(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.cti(Method::POST, "Queues", Some(json!({"name": "sales"}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (201, "00000", "success"));
        let queue = a.body["queue"].clone();
        assert_id(&queue["queueSid"], "QU");
        let sid = queue["queueSid"].as_str().unwrap().to_string();
        for (field, value) in [
            ("name", json!("sales")), ("strategy", json!("longest-idle")), ("ringTimeout", json!(20)),
            ("lastAgentRouting", json!(false)), ("lastAgentWindowHours", json!(24)),
            ("maxWaitSeconds", json!(300)), ("overflow", json!({"type": "hangup", "prompt": ""})),
            ("musicOnHold", json!("")), ("announce", Value::Null),
        ] {
            assert_eq!(queue[field], value, "{field}");
        }
        assert_eq!(queue["createdAt"].as_str().unwrap().len(), 14);
        let a = app.cti(Method::GET, &format!("Queues/{sid}"), None).await;
        assert_eq!((a.status, &a.body["queue"]), (200, &queue));

        app.upload_prompt("moh.wav").await;
        app.upload_prompt("position.wav").await;
        let second = crate::queues::create_queue(&app, json!({"name": "overflow"})).await;
        let a = app.cti(Method::PATCH, &format!("Queues/{sid}"), Some(json!({
            "strategy": "skill-then-longest-idle", "ringTimeout": 5, "lastAgentRouting": true,
            "lastAgentWindowHours": 720, "maxWaitSeconds": 0, "overflow": {"type": "queue", "queueSid": second},
            "musicOnHold": "moh.wav", "announce": {"everySeconds": 30, "prompt": "position.wav"}}))).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "{}", a.body);
        let changed = &a.body["queue"];
        assert_eq!(changed["name"], "sales", "fields not given stay");
        assert_eq!(changed["strategy"], "skill-then-longest-idle");
        assert_eq!(changed["overflow"], json!({"type": "queue", "queueSid": second}));
        assert_eq!(changed["announce"], json!({"everySeconds": 30, "prompt": "position.wav"}));
        let a = app.cti(Method::PATCH, &format!("Queues/{sid}"), Some(json!({"announce": null}))).await;
        assert_eq!(a.body["queue"]["announce"], Value::Null, "null clears the announcement");
        assert_eq!(a.body["queue"]["musicOnHold"], "moh.wav");

        let a = app.cti(Method::GET, "Queues?pageSize=1", None).await;
        assert_eq!(a.body["queues"].as_array().unwrap().len(), 1);
        let cursor = a.body["nextCursor"].as_str().unwrap().to_string();
        let a = app.cti(Method::GET, &format!("Queues?pageSize=1&cursor={cursor}"), None).await;
        assert_eq!(a.body["queues"].as_array().unwrap().len(), 1);
        assert!(a.body.get("nextCursor").is_none(), "the last page has no cursor");

        // Named by another queue's overflow: 20004 until the overflow changes.
        let a = app.cti(Method::DELETE, &format!("Queues/{second}"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (409, "20004", format!("queue in use by the overflow of queue {sid}").as_str()));
        app.cti(Method::PATCH, &format!("Queues/{sid}"), Some(json!({"overflow": {"type": "hangup", "prompt": ""}}))).await;
        let a = app.cti(Method::DELETE, &format!("Queues/{second}"), None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        let a = app.cti(Method::GET, &format!("Queues/{second}"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "20003", "queue not found"));
    }
}

both_backends! {
    /// Bad fields name themselves; sids never cross applications; a membership goes
    /// with its queue.
    async fn queue_refusals(db: TestDb) {
        let app = db.spawn(&[]).await;
        let sid = create_queue(&app, json!({"name": "q"})).await;
        for (body, msg) in [
            (json!({}), "missing name"),
            (json!({"name": "q", "strategy": "random"}), "strategy must be longest-idle, round-robin, ring-all or skill-then-longest-idle"),
            (json!({"name": "q", "ringTimeout": 121}), "ringTimeout must be 5-120"),
            (json!({"name": "q", "maxWaitSeconds": 5}), "maxWaitSeconds must be 0 or 10-86400"),
            (json!({"name": "q", "announce": {"everySeconds": 601, "prompt": "p.wav"}}), "announce.everySeconds must be 30-600"),
            (json!({"name": "q", "musicOnHold": "none.wav"}), "unknown prompt none.wav"),
            (json!({"name": "q", "overflow": {"type": "hangup", "prompt": "closed.wav"}}), "unknown prompt closed.wav"),
            (json!({"name": "q", "colour": "red"}), "unknown field \"colour\" (known: name, strategy, ringTimeout, lastAgentRouting, lastAgentWindowHours, maxWaitSeconds, overflow, musicOnHold, announce)"),
        ] {
            let a = app.cti(Method::POST, "Queues", Some(body.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (400, "10004", msg), "{body}");
        }
        let a = app.cti(Method::PATCH, &format!("Queues/{sid}"), Some(json!({"overflow": {"type": "queue", "queueSid": sid}}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "overflow must not name the queue itself"));

        // Another application's queue does not exist here.
        let other = app.create_app(&app.sid, json!({"name": "other"})).await["appId"].as_str().unwrap().to_string();
        let a = app.cti_in(&other, Method::POST, "Queues", Some(json!({"name": "theirs"}))).await;
        let theirs = a.body["queue"]["queueSid"].as_str().unwrap().to_string();
        for (method, rest, body) in [
            (Method::GET, format!("Queues/{theirs}"), None),
            (Method::PATCH, format!("Queues/{theirs}"), Some(json!({"name": "x"}))),
            (Method::DELETE, format!("Queues/{theirs}"), None),
            (Method::POST, "Queues".to_string(), Some(json!({"name": "x", "overflow": {"type": "queue", "queueSid": theirs}}))),
            (Method::GET, "Queues/QU-not-a-sid".to_string(), None),
        ] {
            let a = app.cti(method, &rest, body).await;
            assert_eq!((a.status, a.code(), a.msg()), (404, "20003", "queue not found"), "{rest}");
        }

        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!", "queues": [{"queueSid": sid}]}))).await;
        assert_eq!(a.status, 201);
        let a = app.cti(Method::DELETE, &format!("Queues/{sid}"), None).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "memberships do not hold a queue");
        let a = app.cti(Method::GET, "Agents/1001", None).await;
        assert_eq!(a.body["agent"]["queues"], json!([]), "memberships go with the queue");
    }
}

both_backends! {
    /// The Live view counts the members by state and shows each one's state and since when.
    async fn live_view_shows_the_members(db: TestDb) {
        let app = db.spawn(&[]).await;
        let sid = create_queue(&app, json!({"name": "support"})).await;
        for (agent_no, member) in [("1001", true), ("1002", true), ("1003", true), ("1004", false)] {
            let queues = if member { json!([{"queueSid": sid}]) } else { json!([]) };
            let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": agent_no, "pwd": "s3cret!", "queues": queues}))).await;
            assert_eq!(a.status, 201);
        }
        let run = |agent_no: &str, cmd: &str, params: Value| {
            let (app, path) = (&app, format!("Agents/{agent_no}/Commands"));
            let body = json!({"cmd": cmd, "params": params});
            async move {
                let a = app.cti(Method::POST, &path, Some(body)).await;
                assert_eq!(a.code(), "00000", "{}", a.body);
            }
        };
        run("1001", "login", json!({})).await;
        run("1002", "login", json!({"workStatus": "2", "pauseCause": "lunch"})).await;
        run("1004", "login", json!({})).await;
        let a = app.cti(Method::GET, &format!("Queues/{sid}/Live"), None).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "{}", a.body);
        let live = &a.body["queue"];
        assert_eq!((&live["appSid"], &live["queueSid"], &live["queueName"]), (&json!(app.app_id), &json!(sid), &json!("support")));
        for (field, value) in [("waitingCount", 0), ("longestWaitSeconds", 0), ("agentsReady", 1), ("agentsBusy", 0),
                               ("agentsPaused", 1), ("agentsWrapup", 0), ("agentsOffline", 1)] {
            assert_eq!(live[field], value, "{field}");
        }
        assert_eq!(live["members"], json!([]));
        assert_eq!(live["timestamp"].as_str().unwrap().len(), 14);
        let agents = live["agents"].as_array().unwrap();
        let shown: Vec<(&str, &str, &str, &str)> = agents.iter().map(|m| (
            m["agentNo"].as_str().unwrap(), m["agentState"].as_str().unwrap(),
            m["workStatus"].as_str().unwrap(), m["pauseCause"].as_str().unwrap())).collect();
        assert_eq!(shown, [("1001", "ready", "ready", ""), ("1002", "pause", "pause", "lunch"), ("1003", "offline", "offline", "")]);
        assert_eq!(agents[0]["since"].as_str().unwrap().len(), 14);
        assert_eq!(agents[2]["since"], "");

        // `since` moves with the agentState only: a new pause cause keeps it.
        let since = agents[1]["since"].clone();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        run("1002", "pause", json!({"pauseCause": "meeting"})).await;
        run("1001", "pause", json!({})).await;
        let a = app.cti(Method::GET, &format!("Queues/{sid}/Live"), None).await;
        let agents = &a.body["queue"]["agents"];
        assert_eq!((&agents[1]["pauseCause"], &agents[1]["since"]), (&json!("meeting"), &since));
        assert_ne!(agents[0]["since"], json!(""));
        assert_eq!(a.body["queue"]["agentsPaused"], 2);
        let a = app.cti(Method::GET, "Queues/QU00001202611300000000000000000009/Live", None).await;
        assert_eq!((a.status, a.code()), (404, "20003"));
    }
}

/// The next queueEvent on `s` (other events are kept), or `None` within `within`.
async fn queue_event(
    s: &mut crate::agent_client::AgentSocket,
    within: std::time::Duration,
) -> Option<Value> {
    use crate::agent_client::Got;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Err(_) => return None,
            Ok(Got::Frame(f)) if f["type"] == "queueEvent" => return Some(f),
            Ok(Got::Frame(f)) => s.events.push(f),
            Ok(Got::Closed(code)) => panic!("closed with {code}"),
        }
    }
}

both_backends! {
    /// A logged-in member's socket gets a counters-only snapshot of its queue, then one
    /// again only when the counters change (agents' contract §8.4).
    async fn members_get_snapshots_when_counters_change(db: TestDb) {
        let app = db.spawn(&[]).await;
        let sid = create_queue(&app, json!({"name": "support"})).await;
        for agent_no in ["1001", "1002"] {
            let body = json!({"agentNo": agent_no, "pwd": "s3cret!", "queues": [{"queueSid": sid}]});
            assert_eq!(app.cti(Method::POST, "Agents", Some(body)).await.status, 201);
        }
        let mut s = crate::agent_sessions::signed_in(&app, "1001").await;
        // Not logged in yet: nothing.
        assert_eq!(queue_event(&mut s, std::time::Duration::from_secs(6)).await, None);
        let r = s.request("login", json!({})).await;
        assert_eq!(r["statusCode"], "00000");
        let within = std::time::Duration::from_secs(7);
        let first = queue_event(&mut s, within).await.expect("a snapshot within 5 s");
        let data = &first["data"];
        assert_eq!((&data["eventName"], &data["appSid"], &data["queueSid"], &data["queueName"]),
                   (&json!("snapshot"), &json!(app.app_id), &json!(sid), &json!("support")), "{first}");
        for (field, value) in [("waitingCount", 0), ("longestWaitSeconds", 0), ("agentsReady", 1), ("agentsBusy", 0),
                               ("agentsPaused", 0), ("agentsWrapup", 0), ("agentsOffline", 1)] {
            assert_eq!(data[field], value, "{field}");
        }
        assert_eq!(data["timestamp"].as_str().unwrap().len(), 14);
        assert!(first.get("seq").is_none(), "queueEvents carry no seq");
        // Unchanged: no snapshot.
        assert_eq!(queue_event(&mut s, within).await, None);
        let a = app.cti(Method::POST, "Agents/1002/Commands", Some(json!({"cmd": "login", "params": {"workStatus": 2}}))).await;
        assert_eq!(a.code(), "00000");
        let next = queue_event(&mut s, within).await.expect("a snapshot after the change");
        assert_eq!((&next["data"]["agentsPaused"], &next["data"]["agentsOffline"]), (&json!(1), &json!(0)));
    }
}

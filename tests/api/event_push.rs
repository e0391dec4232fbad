//! Agent events pushed to the application's `eventUrl` (agents' contract §5): through the
//! webhook dispatcher (signed), numbered per ordering key (the agent, or the conversation
//! for events of no agent), as `json` frames or as seed 004's astercc messages.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_calls::{agent_cdr, ready, script};
use crate::agent_sessions::agent;
use crate::both_backends;
use crate::dial_in::{dial_in, route};
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;
use crate::receiver::{Received, Receiver};

/// A server (`env` over the defaults, private callback addresses allowed) whose test
/// application pushes its agent events to `receiver` as `format`.
async fn pushing_to(
    db: &TestDb,
    receiver: &Receiver,
    format: &str,
    env: &[(&str, &str)],
) -> TestApp {
    let mut env = env.to_vec();
    env.push(("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"));
    let app = db.spawn(&env).await;
    let settings = json!({"eventUrl": format!("{}/events", receiver.base), "eventFormat": format});
    let patch = app.cti(Method::PATCH, "CtiSettings", Some(settings)).await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    app
}

/// An app whose events go to `receiver` as `format`, a ready agent 1001 in a queue a DID
/// routes to; a caller (hanging up 60 s after the platform answers it: 3 s at the test's
/// speed, time enough for the offer however loaded the machine) dials in. The agent's socket
/// frames and the conversation's CDR.
async fn one_dial_in(
    db: &TestDb,
    receiver: &Receiver,
    format: &str,
) -> (TestApp, Vec<Value>, Value) {
    let app = pushing_to(db, receiver, format, &[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
    let queue = create_queue(&app, json!({"name": "sales"})).await;
    agent(
        &app,
        "1001",
        json!({"wrapupTime": 0, "sipNumber": "80001001", "queues": [{"queueSid": queue}]}),
    )
    .await;
    route(
        &app,
        "4008001000",
        json!({"route": {"type": "queue", "queueSid": queue}}),
    )
    .await;
    let mut socket = ready(&app, "1001").await;
    dial_in(&app, "13800138000", "4008001000").await;
    let (names, frames) = script(&mut socket, 6, 1).await;
    assert_eq!(
        names,
        [
            "initiated/2",
            "ringing/2",
            "answered/2+",
            "completed/2",
            "st completed",
            "st autoReady"
        ]
    );
    let cv = frames[0]["data"]["conversationSid"]
        .as_str()
        .unwrap()
        .to_string();
    let cdr = agent_cdr(&app, db, &cv).await;
    (app, frames, cdr)
}

/// Waits until `done` holds of what `receiver` got (at most 20 s).
async fn received_until(receiver: &Receiver, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let started = std::time::Instant::now();
    loop {
        let got = receiver.received();
        if done(&got) {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pushed so far: {:#?}",
            got.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `name=value&…&` as (name, value) pairs in order.
fn pairs(body: &str) -> Vec<(String, String)> {
    assert!(body.ends_with('&'), "{body}");
    body.trim_end_matches('&')
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("{p} in {body}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

both_backends! {
    /// json: every event of the agent's session (status and call events, as its socket
    /// got them, unmasked) in order with seq 1, 2, 3 … under its key; the caller's leg and
    /// queue moves under the conversation's, seq from 1; each signed.
    async fn json_events_reach_the_event_url_in_order(db: TestDb) {
        let receiver = Receiver::start().await;
        let (app, frames, cdr) = one_dial_in(&db, &receiver, "json").await;
        let got = received_until(&receiver, |got| {
            got.iter().filter(|r| r.json()["data"]["eventName"] == "autoReady").count() == 1
                && got.iter().filter(|r| r.json()["data"]["callSubtype"] == "1" && r.json()["data"]["eventName"] == "completed").count() == 1
        })
        .await;
        for r in &got {
            assert_eq!(r.path, "/events");
            assert_eq!(r.headers["content-type"], "application/json", "{:?}", r.headers);
            assert!(r.headers.contains_key("webhook-signature"), "{:?}", r.headers);
        }
        let bodies: Vec<Value> = got.iter().map(Received::json).collect();
        let mut own: Vec<&Value> = bodies.iter().filter(|b| b["data"]["agentNo"] == "1001" && b["type"] != "queueEvent").collect();
        own.sort_by_key(|b| b["seq"].as_i64().unwrap());
        let seqs: Vec<i64> = own.iter().map(|b| b["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless per agent");
        let names: Vec<String> = own
            .iter()
            .map(|b| format!("{} {}", b["type"].as_str().unwrap(), b["data"]["eventName"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            ["statusEvent login", "callEvent initiated", "callEvent ringing", "callEvent answered", "callEvent completed", "statusEvent completed", "statusEvent autoReady"]
        );
        // The same data as the socket's frames.
        for (pushed, frame) in own[1..].iter().zip(&frames) {
            assert_eq!(pushed["data"], frame["data"]);
            assert_eq!(pushed["type"], frame["type"]);
        }
        // The conversation's own: the caller's leg and the queue moves.
        let mut theirs: Vec<&Value> = bodies.iter().filter(|b| b["data"]["agentNo"] == "" || b["type"] == "queueEvent").collect();
        theirs.sort_by_key(|b| b["seq"].as_i64().unwrap());
        let names: Vec<String> = theirs
            .iter()
            .map(|b| format!("{} {}", b["type"].as_str().unwrap(), b["data"]["eventName"].as_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            ["callEvent initiated", "callEvent answered", "queueEvent joined", "queueEvent answered", "callEvent completed"],
            "{theirs:#?}"
        );
        assert_eq!(theirs.iter().map(|b| b["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let caller = &theirs[0]["data"];
        assert_eq!(caller["callSubtype"], "1");
        assert_eq!(caller["callType"], "1");
        assert_eq!(caller["userNumber"], "13800138000");
        assert_eq!(caller["didNumber"], "4008001000");
        assert_eq!(caller["callSid"], cdr["cdrs"][0]["callSid"], "{cdr}");
        assert_eq!(theirs[4]["data"]["callSid"], caller["callSid"]);
        assert_eq!(theirs[1]["data"]["isBridged"], "0");
        assert_eq!(theirs[3]["data"]["agentNo"], "1001");
        drop(app);
    }
}

both_backends! {
    /// astercc: call events only, as seed 004's messages (field order, `&` at the end),
    /// form-encoded; the first `answered` only; the conversation's end after its agent's
    /// hangup, under the agent's eventid sequence.
    async fn astercc_messages_follow_the_seed(db: TestDb) {
        let receiver = Receiver::start().await;
        let (app, frames, cdr) = one_dial_in(&db, &receiver, "astercc").await;
        received_until(&receiver, |got| {
            got.iter().filter(|r| r.body.contains("source=CONVERSATION")).count() == 1
                && got.iter().filter(|r| r.body.contains("source=CALLER&event=hangup")).count() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = receiver.received();
        let names = ["calleridnum", "didnumber", "activenum", "source", "event", "uniqueid", "sessionid", "eventTime",
                     "AgentTeamId", "AgentGroupId", "calltype", "from", "modeltype", "model_id", "channel", "eventid", "agentno"];
        let mut messages: Vec<Vec<(String, String)>> = Vec::new();
        for r in &got {
            assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded; charset=utf-8");
            assert!(r.headers.contains_key("webhook-signature"));
            let p = pairs(&r.body);
            assert_eq!(p.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), names, "{}", r.body);
            messages.push(p);
        }
        let field = |m: &[(String, String)], k: &str| m.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let mut agent: Vec<&Vec<(String, String)>> = messages.iter().filter(|m| field(m, "agentno") == "1001").collect();
        agent.sort_by_key(|m| field(m, "eventid").parse::<i64>().unwrap());
        let said: Vec<String> = agent.iter().map(|m| format!("{} {}", field(m, "source"), field(m, "event"))).collect();
        assert_eq!(said, ["AGENT ringing", "AGENT answer", "AGENT hangup", "CONVERSATION hangup"]);
        let cv = frames[0]["data"]["conversationSid"].as_str().unwrap();
        let agent_leg = frames[0]["data"]["callSid"].as_str().unwrap();
        let ring = agent[0];
        assert_eq!(field(ring, "calleridnum"), "13800138000");
        assert_eq!(field(ring, "didnumber"), "4008001000");
        assert_eq!(field(ring, "activenum"), "80001001");
        assert_eq!(field(ring, "uniqueid"), agent_leg);
        assert_eq!(field(ring, "sessionid"), cv);
        assert_eq!(field(ring, "AgentTeamId"), app.app_id);
        assert_eq!(field(ring, "AgentGroupId"), cdr["queueSid"].as_str().unwrap());
        assert_eq!(field(ring, "model_id"), cdr["queueSid"].as_str().unwrap());
        assert_eq!(field(ring, "calltype"), "dialin");
        assert_eq!(field(ring, "from"), "dialin");
        assert_eq!(field(ring, "modeltype"), "Campaign");
        assert_eq!(field(ring, "channel"), "sofia/sandbox/80001001", "the leg's FreeSWITCH channel name");
        let t = field(ring, "eventTime");
        assert!(chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S").is_ok(), "{t}");
        let end = agent[3];
        assert_eq!(field(end, "uniqueid"), "0");
        assert_eq!(field(end, "activenum"), "80001001");
        assert_eq!(field(end, "sessionid"), cv);
        let ids: Vec<i64> = agent.iter().map(|m| field(m, "eventid").parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // The caller's own messages.
        let mut caller: Vec<&Vec<(String, String)>> = messages.iter().filter(|m| field(m, "source") == "CALLER").collect();
        caller.sort_by_key(|m| field(m, "eventid").parse::<i64>().unwrap());
        let said: Vec<String> = caller.iter().map(|m| field(m, "event")).collect();
        assert_eq!(said, ["incoming", "answer", "hangup"]);
        assert_eq!(field(caller[0], "activenum"), "13800138000");
        assert_eq!(field(caller[0], "agentno"), "");
        for m in &caller {
            assert_eq!(field(m, "channel"), "sofia/sandbox/13800138000", "{m:?}");
        }
        assert_eq!(field(agent[3], "channel"), "", "the conversation has no channel");
        assert_eq!(messages.len(), 7, "no status or queue events, one answer per leg");
    }
}

both_backends! {
    /// A caller transferred to an outside number: the number's leg has no agent, so its
    /// events go to the eventUrl alone, under the conversation's key (callSubtype 3,
    /// agentNo "", agentNumber the number), after the caller's own.
    async fn a_transfer_to_a_number_is_pushed(db: TestDb) {
        let receiver = Receiver::start().await;
        let app = pushing_to(&db, &receiver, "json", &[("VOICEPAAS_SANDBOX_SPEED", "5")]).await;
        let (_socket, user, _) = crate::transfers::talking(&app, &db, 0).await;
        let a = crate::agent_sessions::command(&app, "1001", "transfer", json!({"targetType": "number", "target": "13800139995"})).await;
        assert_eq!(a.body["statusCode"], "00000", "{}", a.body);
        let got = received_until(&receiver, |got| {
            got.iter().filter(|r| r.json()["data"]["callSubtype"] == "1" && r.json()["data"]["eventName"] == "completed").count() == 1
        })
        .await;
        let mut theirs: Vec<Value> = got
            .iter()
            .map(Received::json)
            .filter(|b| b["type"] == "callEvent" && b["data"]["agentNo"] == "")
            .collect();
        theirs.sort_by_key(|b| b["seq"].as_i64().unwrap());
        let names: Vec<String> = theirs
            .iter()
            .map(|b| format!("{}/{}", b["data"]["eventName"].as_str().unwrap(), b["data"]["callSubtype"].as_str().unwrap()))
            .collect();
        assert_eq!(names[..2], ["initiated/1", "answered/1"], "{names:?}");
        let number: Vec<&Value> = theirs.iter().filter(|b| b["data"]["callSubtype"] == "3").collect();
        let said: Vec<&str> = number.iter().map(|b| b["data"]["eventName"].as_str().unwrap()).collect();
        assert_eq!(said.first(), Some(&"initiated"), "{said:?}");
        assert!(said.contains(&"answered") && said.last() == Some(&"completed"), "{said:?}");
        for b in &number {
            assert_eq!(b["data"]["agentNumber"], "13800139995", "{b}");
            assert_eq!(b["data"]["callType"], "1", "{b}");
        }
        assert_eq!(theirs.last().unwrap()["data"]["callSid"], user, "the caller's end comes last");
    }
}

both_backends! {
    /// An event whose predecessor under the same key is being retried waits behind it, but
    /// at most 60 s from its creation; then it goes anyway (the receiver orders by seq).
    async fn a_failing_event_holds_its_successors_back_at_most_60_s(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with(&[500]);
        let app = pushing_to(&db, &receiver, "json", &[("VOICEPAAS_WEBHOOK_RETRY_SCALE", "100")]).await;
        agent(&app, "1001", json!({"sipNumber": "80001001"})).await;
        let login = crate::agent_sessions::command(&app, "1001", "login", json!({})).await;
        assert_eq!(login.body["statusCode"], "00000", "{}", login.body);
        receiver.wait_for(1, Duration::from_secs(10)).await;
        let pause = crate::agent_sessions::command(&app, "1001", "pause", json!({"pauseCause": "lunch"})).await;
        assert_eq!(pause.body["statusCode"], "00000", "{}", pause.body);
        // The login is refused (and will be retried in minutes): the pause waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(receiver.received().len(), 1, "held back behind the failing login");
        // A minute on (its creation moved back), it goes without the login.
        db.exec("UPDATE outbox SET created_at = created_at - 61000 WHERE kind = 'event' AND body LIKE '%\"pause\"%'").await;
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(got[0].json()["data"]["eventName"], "login");
        assert_eq!(got[1].json()["data"]["eventName"], "pause");
        assert_eq!((got[0].json()["seq"].as_i64(), got[1].json()["seq"].as_i64()), (Some(1), Some(2)));
        let pending = db.text("SELECT state FROM outbox WHERE kind = 'event' AND body LIKE '%\"login\"%'").await;
        assert_eq!(pending.as_deref(), Some("pending"), "the login is still being retried");
    }
}

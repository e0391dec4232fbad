//! A scripted day of a small contact center in the sandbox (agents' contract §7–§10): three
//! agents, a supervisor, two queues, and 200 calls — users dialling in, backend outbound
//! calls and agents' callOuts — with holds, transfers, consults, conferences, listening in,
//! take-overs and forced states issued at random moments (a fixed seed), every command
//! answered without a server error. At the end every conversation has one CDR, and the
//! CDRs agree with what each agent's socket saw: every agent leg was told to its agent from
//! `initiated` to exactly one `completed` or `failed`, no socket heard of a leg the CDRs do
//! not have, a `completed` leg answered, and every socket's seq runs without a gap.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::agent_calls::{agent_cdr, ready};
use crate::agent_sessions::{agent, command};
use crate::dial_in::{cdr_of_leg, dial_in, route};
use crate::helpers::{TestApp, TestDb};
use crate::queues::create_queue;

/// The agents of the team; 2001 supervises.
const AGENTS: [&str; 3] = ["1001", "1002", "1003"];
const SUPERVISOR: &str = "2001";
/// Calls the day places.
const CALLS: usize = 200;

/// A small xorshift: the day's script, the same on every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.roll(from.len())]
    }
}

/// What was placed: a dial-in's user leg, or a conversation.
enum Placed {
    Leg(String),
    Conversation(String),
}

/// Sends `cmd`; a refusal is part of the day, a server error is not.
async fn try_command(app: &TestApp, agent_no: &str, cmd: &str, params: Value) -> Value {
    let a = command(app, agent_no, cmd, params.clone()).await;
    assert!(
        a.status < 500,
        "{agent_no} {cmd} {params}: {} {}",
        a.status,
        a.body
    );
    a.body
}

/// What the day remembers between steps: the calls placed, and the agents consulting.
#[derive(Default)]
struct Day {
    placed: Vec<Placed>,
    consulting: BTreeSet<&'static str>,
}

/// An agent talking with a user does something: once it consults, it then transfers,
/// joins all three, cancels or hangs up; otherwise it holds, retrieves, transfers,
/// consults, sends keys or hangs up.
async fn talk(
    app: &TestApp,
    dice: &mut Dice,
    queues: &[String; 2],
    day: &mut Day,
    agent_no: &'static str,
) {
    let other = dice.pick(&AGENTS);
    let (cmd, params) = if day.consulting.contains(agent_no) {
        match dice.roll(10) {
            0..=3 => ("consultTransfer", json!({})),
            4..=6 => ("consultConference", json!({})),
            7 | 8 => ("cancelConsult", json!({})),
            _ => ("hangup", json!({})),
        }
    } else {
        match dice.roll(20) {
            0 | 1 => ("holdCall", json!({})),
            2 => ("retrieveCall", json!({})),
            3 | 4 => ("transfer", json!({"targetType": "agent", "target": other})),
            5 => (
                "transfer",
                json!({"targetType": "queue", "target": queues[dice.roll(2)]}),
            ),
            6 => (
                "transfer",
                json!({"targetType": "number", "target": "13600136000"}),
            ),
            7..=10 => ("consult", json!({"targetType": "agent", "target": other})),
            11 => (
                "consult",
                json!({"targetType": "number", "target": "13600136001"}),
            ),
            12 => ("sendDtmf", json!({"digits": "1#"})),
            _ => ("hangup", json!({})),
        }
    };
    let r = try_command(app, agent_no, cmd, params).await;
    if r["statusCode"] == "00000" || cmd == "hangup" {
        match cmd {
            "consult" => day.consulting.insert(agent_no),
            _ => day.consulting.remove(agent_no),
        };
    }
}

/// One step of the day: a new call, or something an agent or the supervisor does now.
async fn step(app: &TestApp, dice: &mut Dice, queues: &[String; 2], day: &mut Day) {
    let agent_no = dice.pick(&AGENTS);
    let state = command(app, agent_no, "getState", json!({})).await.body["data"]["agentState"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match dice.roll(20) {
        0..=3 => {
            let to = ["4008001000", "4008002000"][dice.roll(2)];
            // Most callers stay a minute; some hang up 2 s after the answer.
            let from = format!(
                "1380013{:04}",
                [1000 + dice.roll(8000), 9995][dice.roll(5) / 4]
            );
            day.placed.push(Placed::Leg(dial_in(app, &from, to).await));
        }
        4 => {
            let body = json!({"userNumber": format!("1390013{:04}", 1000 + dice.roll(8000)), "queueSid": queues[dice.roll(2)], "userData": "day"});
            let a = app.cti(Method::POST, "OutboundCalls", Some(body)).await;
            assert_eq!(a.status, 200, "{}", a.body);
            day.placed.push(Placed::Conversation(
                a.body["conversationSid"].as_str().unwrap().to_string(),
            ));
        }
        5 | 6 if state != "talking" => {
            let user = format!("1370013{:04}", 1000 + dice.roll(8000));
            let r = try_command(app, agent_no, "callOut", json!({"userNumber": user})).await;
            if r["statusCode"] == "00000" {
                day.placed.push(Placed::Conversation(
                    r["data"]["conversationSid"].as_str().unwrap().to_string(),
                ));
            }
        }
        7..=14 if state == "talking" => talk(app, dice, queues, day, agent_no).await,
        7..=14 if state == "ringing" && dice.roll(4) == 0 => {
            try_command(app, agent_no, "hangup", json!({})).await;
        }
        15 | 16 if state == "talking" => {
            let cmd = ["monitor", "whisper", "barge", "intercept", "forceHangup"][dice.roll(5)];
            try_command(app, SUPERVISOR, cmd, json!({"agentNo": agent_no})).await;
        }
        15 | 16 => {
            try_command(app, SUPERVISOR, "hangup", json!({})).await;
        }
        17 if state != "pause" => {
            try_command(app, SUPERVISOR, "forcePause", json!({"agentNo": agent_no})).await;
        }
        _ if state == "pause" => {
            let (by, cmd, params) = match dice.roll(2) {
                0 => (SUPERVISOR, "forceReady", json!({"agentNo": agent_no})),
                _ => (agent_no, "ready", json!({})),
            };
            try_command(app, by, cmd, params).await;
        }
        _ => {}
    }
}

/// Waits until no agent has a call and every agent is ready again (the supervisor's
/// forced pauses undone), then lets the sockets read the last events.
async fn quiet(app: &TestApp) {
    let started = std::time::Instant::now();
    loop {
        let mut busy = false;
        for agent_no in AGENTS.iter().chain([&SUPERVISOR]) {
            let s = command(app, agent_no, "getState", json!({})).await.body;
            let state = &s["data"];
            if state["agentState"] == "pause" && *agent_no != SUPERVISOR {
                try_command(app, SUPERVISOR, "forceReady", json!({"agentNo": agent_no})).await;
            }
            busy |= state["calls"].as_array().is_some_and(|c| !c.is_empty())
                || matches!(
                    state["agentState"].as_str(),
                    Some("ringing" | "talking" | "wrapup")
                );
        }
        if !busy {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the day never ends"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A callEvent as `name/subtype`, with its leg.
fn call_events(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "callEvent")
        .map(|f| &f["data"])
        .collect()
}

crate::both_backends! {
    async fn a_full_day_of_a_small_team(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        let sales = create_queue(&app, json!({"name": "sales", "maxWaitSeconds": 0})).await;
        let support = create_queue(&app, json!({"name": "support", "maxWaitSeconds": 40, "strategy": "ring-all"})).await;
        route(&app, "4008001000", json!({"route": {"type": "queue", "queueSid": sales}})).await;
        route(&app, "4008002000", json!({"route": {"type": "queue", "queueSid": support}})).await;
        let memberships = [vec![&sales], vec![&sales, &support], vec![&support]];
        for (i, agent_no) in AGENTS.iter().enumerate() {
            let queues: Vec<Value> = memberships[i].iter().map(|q| json!({"queueSid": q})).collect();
            agent(&app, agent_no, json!({"wrapupTime": 0, "sipNumber": format!("8000{agent_no}"), "queues": queues})).await;
        }
        agent(&app, SUPERVISOR, json!({"role": "supervisor", "sipNumber": "80002001"})).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut readers = Vec::new();
        for agent_no in AGENTS.iter().chain([&SUPERVISOR]) {
            let mut socket = ready(&app, agent_no).await;
            let stopped = stopped.clone();
            let agent_no = agent_no.to_string();
            readers.push(tokio::spawn(async move { (agent_no, socket.record_until(stopped).await) }));
        }

        let mut dice = Dice(0x5eed_2026_1201);
        let queues = [sales.clone(), support.clone()];
        let mut day = Day::default();
        while day.placed.len() < CALLS {
            step(&app, &mut dice, &queues, &mut day).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let placed = day.placed;
        quiet(&app).await;
        // The events of the last ends reach the sockets.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        stop.send(true).unwrap();
        let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for reader in readers {
            let (agent_no, frames) = reader.await.unwrap();
            seen.insert(agent_no, frames);
        }

        // One CDR per conversation placed.
        let mut cdrs: BTreeMap<String, Value> = BTreeMap::new();
        for p in &placed {
            let cdr = match p {
                Placed::Leg(leg) => cdr_of_leg(&app, &db, leg).await,
                Placed::Conversation(cv) => agent_cdr(&app, &db, cv).await,
            };
            let cv = cdr["conversationSid"].as_str().unwrap().to_string();
            assert!(cdrs.insert(cv, cdr).is_none(), "a conversation placed twice");
        }
        let legs: BTreeMap<&str, (&str, &Value)> = cdrs
            .iter()
            .flat_map(|(cv, cdr)| cdr["cdrs"].as_array().unwrap().iter().map(move |l| (l["callSid"].as_str().unwrap(), (cv.as_str(), l))))
            .collect();

        for (agent_no, frames) in &seen {
            // Every frame with a seq follows the one before it.
            let seqs: Vec<i64> = frames.iter().filter_map(|f| f["seq"].as_i64()).collect();
            assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{agent_no}: seq gaps {seqs:?}");
            // Per leg and view (its own or the consulting agent's), in order.
            let mut views: BTreeMap<(String, bool), Vec<&Value>> = BTreeMap::new();
            for e in call_events(frames) {
                let call_sid = e["callSid"].as_str().unwrap();
                let cv = e["conversationSid"].as_str().unwrap();
                let (leg_cv, leg) = legs.get(call_sid).unwrap_or_else(|| panic!("{agent_no} heard of {call_sid}, which no CDR has: {e}"));
                assert_eq!(*leg_cv, cv, "{e}");
                match e["callSubtype"].as_str().unwrap() {
                    "1" => assert_eq!(leg["role"], "user", "{e}"),
                    "5" => {}
                    _ => assert_eq!(leg["agentNo"].as_str(), Some(agent_no.as_str()), "{e} {leg}"),
                }
                views.entry((call_sid.to_string(), e["callSubtype"] == "5")).or_default().push(e);
            }
            for ((call_sid, _), events) in &views {
                let names: Vec<&str> = events.iter().map(|e| e["eventName"].as_str().unwrap()).collect();
                let ends = names.iter().filter(|n| matches!(**n, "completed" | "failed")).count();
                let told: Vec<String> = events.iter().map(|e| format!("{}/{}{} {}{}", e["eventName"].as_str().unwrap(), e["callSubtype"].as_str().unwrap(), e["isBridged"].as_str().unwrap(), e["failedCause"].as_str().unwrap(), e["completedCause"].as_str().unwrap())).collect();
                let cdr = &cdrs[legs[call_sid.as_str()].0];
                assert_eq!(ends, 1, "{agent_no} {call_sid}: {told:?}\n{cdr:#}");
                assert!(matches!(names.last(), Some(&("completed" | "failed"))), "{agent_no} {call_sid}: {names:?}");
                let own = events[0]["callSubtype"] != "5" && events[0]["callSubtype"] != "1";
                if own && names.last() == Some(&"completed") {
                    assert_ne!(legs[call_sid.as_str()].1["answerTime"], "", "{agent_no} {call_sid}: completed but never answered");
                }
                // A leg told from its start (a consulted agent's view and a takeover of
                // a supervisor aside, every view opens with `initiated`).
                assert!(names[0] == "initiated" || !own, "{agent_no} {call_sid}: {names:?}");
            }
            // Every agent leg of every CDR reached its agent's socket.
            for (call_sid, (_, leg)) in &legs {
                if leg["agentNo"].as_str() == Some(agent_no.as_str()) {
                    assert!(views.contains_key(&(call_sid.to_string(), false)), "{agent_no} never heard of its leg {leg}");
                }
            }
        }

        // The day did what it says: every kind of leg, end and event happened.
        let mut tally: BTreeSet<String> = BTreeSet::new();
        for (_, l) in legs.values() {
            tally.insert(format!("role {}", l["role"].as_str().unwrap()));
        }
        for c in cdrs.values() {
            tally.insert(format!("bye {}", c["byeType"].as_str().unwrap()));
            tally.insert(format!("callType {}", c["callType"].as_str().unwrap()));
        }
        for f in seen.values().flatten() {
            let d = &f["data"];
            let cause = d["completedCause"].as_str().or(d["pauseCause"].as_str()).unwrap_or("");
            tally.insert(format!("{} {} {cause}", f["type"].as_str().unwrap_or(""), d["eventName"].as_str().unwrap_or("")));
        }
        let expected = [
            "role transfer", "role consult", "role monitor", "bye 3", "bye 4", "bye 6", "bye 7",
            "callType 1", "callType 2", "callType 4", "callEvent held ", "callEvent conferenced ",
            "callEvent completed transferred", "callEvent completed forced", "statusEvent pause forced",
        ];
        for what in expected {
            assert!(tally.contains(what), "{what} never happened: {tally:?}");
        }
        assert_eq!(cdrs.len(), placed.len());
    }
}

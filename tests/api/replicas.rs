//! Three `voicepaas serve` replicas on one PostgreSQL and one media server, as a
//! deployment behind a load balancer runs them: calls spread over the replicas; addCall
//! and cancelCall sent to a replica that does not drive the conversation reach the one
//! that does; a replica killed under load leaves no call unfinished; an account's cps and
//! maxConcurrentCalls hold across the replicas together.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::engine_faults::assert_clean_end;
use crate::helpers::*;
use crate::processes::*;

/// A replica with node id `node` on `db`, using the sandbox at `media_port`.
async fn replica(db: &TestDb, media_port: u16, dir: &std::path::Path, node: u32) -> (Proc, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
    command
        .env(
            "VOICEPAAS_MEDIA",
            format!("esl://:ClueCon@127.0.0.1:{media_port}"),
        )
        .env("VOICEPAAS_NODE_ID", node.to_string())
        .env("VOICEPAAS_LOG", "warn")
        .stdout(Stdio::null());
    serve(db, dir, command).await
}

/// The same customer, talking to another replica.
pub fn through(app: &TestApp, address: &str) -> TestApp {
    TestApp {
        address: address.to_string(),
        client: app.client.clone(),
        sid: app.sid.clone(),
        token: app.token.clone(),
        app_id: app.app_id.clone(),
        _files: tempfile::tempdir().unwrap(),
    }
}

async fn click2call(app: &TestApp, n: usize) -> String {
    let body = json!({"action": "click2call", "caller": format!("1390001{n:04}"), "callee": format!("1390002{n:04}")});
    let a = app.post(&app.ctc_path(), &body).await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    a.body["conversationSid"].as_str().unwrap().to_string()
}

async fn wait_state(store: &voicepaas::store::Store, cv: &str, seq: usize, state: &str) {
    let started = Instant::now();
    while store
        .conversation_legs(cv)
        .await
        .unwrap()
        .get(seq)
        .is_none_or(|l| l.state != state)
    {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "leg {seq} of {cv} never {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_calls_and_commands() {
    let Some(db) = TestDb::postgres("api::replicas::three_replicas_share_calls_and_commands").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let media_port = free_port();
    let _sandbox = sandbox(media_port, "1", dir.path());
    let mut replicas = Vec::new();
    for node in [101, 102, 103] {
        replicas.push(replica(&db, media_port, dir.path(), node).await);
    }
    let app = customer(&replicas[0].1, 1000).await;
    let apps: Vec<TestApp> = replicas.iter().map(|(_, a)| through(&app, a)).collect();
    let store = db.store().await;

    // Spread: conversations accepted by every replica are driven by more than one.
    let mut cvs = Vec::new();
    for n in 0..24 {
        cvs.push(click2call(&apps[n % 3], n).await);
    }
    let mut drivers = std::collections::BTreeSet::new();
    for cv in &cvs {
        wait_state(&store, cv, 1, "answered").await;
        let caller = store.conversation_legs(cv).await.unwrap()[0].id.clone();
        drivers.extend(store.driving_node(&caller).await.unwrap());
    }
    assert!(
        drivers.len() >= 2,
        "one replica drove everything: {drivers:?}"
    );

    // addCall and cancelCall through a replica that does not drive the conversation.
    let other = |cv: &str| {
        let store = store.clone();
        let cv = cv.to_string();
        async move {
            let caller = store.conversation_legs(&cv).await.unwrap()[0].id.clone();
            let node = store.driving_node(&caller).await.unwrap().expect("driven");
            (node as usize - 101 + 1) % 3
        }
    };
    let added = cvs[0].clone();
    let a = apps[other(&added).await]
        .post(
            &format!("{}/{added}", app.ctc_path()),
            &json!({"action": "addCall", "callee": "13900030000"}),
        )
        .await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    wait_state(&store, &added, 2, "answered").await;
    let canceled = cvs[1].clone();
    let a = apps[other(&canceled).await]
        .post(
            &format!("{}/{canceled}", app.ctc_path()),
            &json!({"action": "cancelCall"}),
        )
        .await;
    assert_eq!(a.code(), "00000", "{}", a.body);
    let cdr = assert_clean_end(&store, &canceled).await;
    assert_eq!(cdr["byeType"], "6");

    // A replica killed under load: its conversations are taken over by the others.
    let victim = replicas.remove(2);
    let mut victim = victim.0;
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let apps: Vec<TestApp> = replicas.iter().map(|(_, a)| through(&app, a)).collect();
    tokio::time::sleep(Duration::from_secs(12)).await;
    for (n, cv) in cvs.iter().enumerate().filter(|(_, cv)| **cv != canceled) {
        let a = apps[n % 2]
            .post(
                &format!("{}/{cv}", app.ctc_path()),
                &json!({"action": "cancelCall"}),
            )
            .await;
        assert!(["00000", "10007"].contains(&a.code()), "{cv}: {}", a.body);
    }
    for cv in &cvs {
        assert_clean_end(&store, cv).await;
    }
    assert_eq!(
        wait_cdr(&store, &added).await["cdrs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// Live legs of the account sampled until every call has its CDR; the largest count seen.
async fn watch(store: &voicepaas::store::Store, sid: &str, ids: &[String]) -> i64 {
    let started = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(store.live_legs(sid).await.unwrap());
        let mut done = 0;
        for id in ids {
            done += usize::from(store.cdr_body(id).await.unwrap().is_some());
        }
        if done == ids.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{done} of {} calls done",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_limits_hold_across_replicas() {
    let Some(db) = TestDb::postgres("api::replicas::account_limits_hold_across_replicas").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let media_port = free_port();
    let _sandbox = sandbox(media_port, "10", dir.path());
    let mut replicas = Vec::new();
    for node in [201, 202, 203] {
        replicas.push(replica(&db, media_port, dir.path(), node).await);
    }
    let app = customer(&replicas[0].1, 1000).await;
    let apps: Vec<TestApp> = replicas.iter().map(|(_, a)| through(&app, a)).collect();
    let store = db.store().await;
    let notice = |n: usize| json!({"appid": app.app_id, "to": format!("1370000{n:04}"), "contents": [{"type": "digits", "content": "1"}], "times": 1});
    let post_all = |count: usize| {
        let apps = &apps;
        async move {
            let mut ids = Vec::new();
            for n in 0..count {
                let a = apps[n % 3]
                    .post(&apps[0].account_path("VoiceNotices"), &notice(n))
                    .await;
                assert_eq!(a.code(), "0", "{}", a.body);
                ids.push(a.body["callid"].as_str().unwrap().to_string());
            }
            ids
        }
    };
    // maxConcurrentCalls 3: never more than three live legs, whichever replica places them.
    app.set_limits(json!({"cps": 1000, "maxConcurrentCalls": 3}))
        .await;
    let ids = post_all(12).await;
    let peak = watch(&store, &app.sid, &ids).await;
    assert!(peak <= 3, "{peak} live legs");
    // cps 4: 16 calls take about four seconds together (each replica with a bucket of its
    // own would have placed them three times as fast).
    app.set_limits(json!({"cps": 4, "maxConcurrentCalls": 1000}))
        .await;
    let started = Instant::now();
    let ids = post_all(16).await;
    watch(&store, &app.sid, &ids).await;
    assert!(
        started.elapsed() >= Duration::from_millis(3_000),
        "16 calls at cps 4 done in {:?}",
        started.elapsed()
    );
}

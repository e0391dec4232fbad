//! Webhook delivery (API.md §7) to a local receiver: signed, retried on the (scaled)
//! schedule with the same webhook-id, 410 stops at once, per-conversation order under
//! retries, private targets refused.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::both_backends;
use crate::helpers::*;
use crate::receiver::{Received, Receiver};

/// Checks a request's Standard Webhooks signature with `secret`, written apart from the
/// server's signer.
fn assert_signed(r: &Received, secret: &str) {
    let id = &r.headers["webhook-id"];
    let ts = &r.headers["webhook-timestamp"];
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(r.headers["webhook-signature"], expected);
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {ts}");
    assert_eq!(r.headers["content-type"], "application/json");
}

/// A server that may call loopback receivers, with retries 100 times faster.
async fn webhook_app(
    db: &TestDb,
    receiver: &Receiver,
    app: serde_json::Value,
) -> (TestApp, String) {
    let mut server = db
        .spawn(&[
            ("VOICEPAAS_SANDBOX_SPEED", "20"),
            ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"),
            ("VOICEPAAS_WEBHOOK_RETRY_SCALE", "0.01"),
        ])
        .await;
    let mut body = json!({"name": "hooks"});
    for (k, v) in app.as_object().unwrap() {
        body[k] = json!(format!("{}{}", receiver.base, v.as_str().unwrap()));
    }
    let created = server.create_app(&server.sid, body).await;
    server.app_id = created["appId"].as_str().unwrap().to_string();
    (
        server,
        created["signingSecret"].as_str().unwrap().to_string(),
    )
}

both_backends! {
    /// Failing twice (500, then 503 without Retry-After), then accepting: delivered on the
    /// third attempt with the same webhook-id, each attempt recorded.
    async fn retried_until_delivered(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with(&[500, 503]);
        let (app, secret) = webhook_app(&db, &receiver, json!({"notifyUrl": "/notify"})).await;
        let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009995"), json!({"appid": app.app_id}))).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        let got = receiver.wait_for(3, Duration::from_secs(30)).await;
        let store = db.store().await;
        let cdr = wait_cdr(&store, &callid).await;
        assert_eq!(got.len(), 3);
        for r in &got {
            assert_eq!(r.path, "/notify");
            assert_signed(r, &secret);
            assert_eq!(r.json(), cdr);
            assert_eq!(r.headers["webhook-id"], got[0].headers["webhook-id"]);
        }
        // The 5 s and 5 min delays, scaled by 0.01 (±20 %): the third came ≥ 3 s after the first.
        let row = &store.outbox_of(&callid).await.unwrap()[0];
        settle_delivery(&store, &callid, "delivered").await;
        assert_eq!(store.outbox_of(&callid).await.unwrap()[0].state, "delivered");
        let attempts = store.attempt_log(&row.webhook_id).await.unwrap();
        let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status_code).collect();
        assert_eq!(statuses, vec![Some(500), Some(503), Some(200)]);
        assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
        assert_eq!(attempts[2].error, None);
    }
}

both_backends! {
    /// 410 Gone stops retrying at once: one attempt, failed.
    async fn gone_stops_at_once(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with(&[410]);
        let (app, _) = webhook_app(&db, &receiver, json!({"notifyUrl": "/gone"})).await;
        let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009990"), json!({"appid": app.app_id}))).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        receiver.wait_for(1, Duration::from_secs(20)).await;
        let store = db.store().await;
        settle_delivery(&store, &callid, "failed").await;
        assert_eq!(store.outbox_of(&callid).await.unwrap()[0].state, "failed");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(receiver.received().len(), 1);
    }
}

both_backends! {
    /// A conversation's callbacks arrive in outbox order even when one is retried: each
    /// leg's statuses in order, the CDR last.
    async fn conversation_order_holds_under_retries(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with(&[500, 502]);
        let (app, secret) = webhook_app(&db, &receiver, json!({"statusUrl": "/status", "cdrUrl": "/cdr"})).await;
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13800000001", "callee": "13800009995"})).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let store = db.store().await;
        wait_cdr(&store, &cv).await;
        let rows = store.outbox_of(&cv).await.unwrap();
        let got = receiver.wait_for(rows.len() + 2, Duration::from_secs(30)).await;
        // Each callback once delivered, in outbox order (the first one three times).
        let mut delivered: Vec<String> = Vec::new();
        for r in &got {
            assert_signed(r, &secret);
            let id = r.headers["webhook-id"].clone();
            if delivered.last() != Some(&id) {
                delivered.push(id);
            }
        }
        let expected: Vec<String> = rows.iter().map(|r| r.webhook_id.clone()).collect();
        assert_eq!(delivered, expected);
        assert_eq!(got.last().unwrap().path, "/cdr");
    }
}

both_backends! {
    /// Without VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS private targets are refused when they are
    /// given (-4 / 10004 / HTTP 400), including a name that resolves to loopback; and one
    /// that got into the database anyway is never called: an address literal fails at
    /// once, a name resolving to loopback is retried, in vain.
    async fn private_targets_refused(db: TestDb) {
        let receiver = Receiver::start().await;
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20"), ("VOICEPAAS_WEBHOOK_RETRY_SCALE", "0.01")]).await;
        let port = receiver.base.rsplit(':').next().unwrap().to_string();
        let literal = format!("http://127.0.0.1:{port}/n");
        let name = format!("http://localhost:{port}/n");
        for url in [&literal, &name, &"http://169.254.169.254/latest".to_string()] {
            let a = app.admin(reqwest::Method::POST, &format!("/admin/accounts/{}/applications", app.sid), Some(json!({"name": "x", "notifyUrl": url}))).await;
            assert_eq!((a.status, a.body["error"].as_str()), (400, Some("notifyUrl must not point to a private or reserved address (set VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS=true to allow it, e.g. for a trial on one machine)")), "{url}");
            let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002", "statusUrl": url})).await;
            assert_eq!((a.code(), a.msg()), ("10004", "statusUrl must not point to a private or reserved address (set VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS=true to allow it, e.g. for a trial on one machine)"), "{url}");
        }
        let store = db.store().await;
        for (url, state, error) in [
            (literal, "failed", "target address 127.0.0.1 is private or reserved (VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS is false)"),
            (name, "pending", "resolves only to private or reserved addresses (VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS is false)"),
        ] {
            let fields = json!({"name": "inserted behind the API", "notifyUrl": url});
            let settings = voicepaas::domain::application::AppSettings::parse(voicepaas::domain::Fields(fields.as_object().unwrap()), true).unwrap();
            app.app_id = store.create_app(&app.sid, &settings).await.unwrap().app_id;
            let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009990"), json!({"appid": app.app_id}))).await;
            let callid = a.body["callid"].as_str().unwrap().to_string();
            wait_cdr(&store, &callid).await;
            let mut attempts = Vec::new();
            for _ in 0..200 {
                let row = &store.outbox_of(&callid).await.unwrap()[0];
                attempts = store.attempt_log(&row.webhook_id).await.unwrap();
                if !attempts.is_empty() { break; }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(attempts[0].error.as_deref().unwrap().contains(error), "{url}: {attempts:?}");
            assert_eq!(store.outbox_of(&callid).await.unwrap()[0].state, state, "{url}");
        }
        assert!(receiver.received().is_empty());
    }
}

both_backends! {
    /// 429 with Retry-After: the next attempt waits what the receiver asked (1 s), not the
    /// scaled schedule (50 ms).
    async fn retry_after_is_honoured(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with_header(429, "Retry-After", "1");
        let (app, _) = webhook_app(&db, &receiver, json!({"notifyUrl": "/busy"})).await;
        app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009990"), json!({"appid": app.app_id}))).await;
        let got = receiver.wait_for(2, Duration::from_secs(20)).await;
        let waited = got[1].at - got[0].at;
        assert!(waited >= Duration::from_millis(950), "{waited:?}");
        assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    }
}

both_backends! {
    /// A receiver slower than 15 s: the attempt fails as a timeout and the next one is
    /// delivered.
    async fn slow_receiver_times_out(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_after(200, Duration::from_secs(17));
        let (app, _) = webhook_app(&db, &receiver, json!({"notifyUrl": "/slow"})).await;
        let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009990"), json!({"appid": app.app_id}))).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        receiver.wait_for(2, Duration::from_secs(40)).await;
        let store = db.store().await;
        let row = &store.outbox_of(&callid).await.unwrap()[0];
        let mut attempts = Vec::new();
        for _ in 0..200 {
            attempts = store.attempt_log(&row.webhook_id).await.unwrap();
            if attempts.len() == 2 { break; }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!((attempts[0].status_code, attempts[0].error.as_deref()), (None, Some("no answer within 15 s")), "{attempts:?}");
        assert_eq!(attempts[1].status_code, Some(200));
    }
}

both_backends! {
    /// A receiver that always fails: ten attempts on the (here 50,000 times faster)
    /// schedule, then the delivery is failed.
    async fn failed_after_the_whole_schedule(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_with(&[500; 10]);
        let mut app = db
            .spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20"), ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"), ("VOICEPAAS_WEBHOOK_RETRY_SCALE", "0.00002")])
            .await;
        let created = app.create_app(&app.sid, json!({"name": "down", "notifyUrl": format!("{}/down", receiver.base)})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice("13800009990"), json!({"appid": app.app_id}))).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        receiver.wait_for(10, Duration::from_secs(30)).await;
        let store = db.store().await;
        settle_delivery(&store, &callid, "failed").await;
        let row = &store.outbox_of(&callid).await.unwrap()[0];
        assert_eq!(row.state, "failed");
        assert_eq!(store.attempt_log(&row.webhook_id).await.unwrap().len(), 10);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.received().len(), 10);
    }
}

both_backends! {
    /// The batched CDR feed: batches of cdrBatchSize, the rest after cdrBatchWindowMs, as
    /// `{"count","cdrs"}` with `kind` on each element, signed like any delivery.
    async fn batched_feed(db: TestDb) {
        let receiver = Receiver::start().await;
        let (app, secret) = webhook_app(&db, &receiver, json!({"cdrFeedUrl": "/feed"})).await;
        let patch = json!({"cdrBatchSize": 3, "cdrBatchWindowMs": 300});
        let a = app.admin(reqwest::Method::PATCH, &format!("/admin/accounts/{}/applications/{}", app.sid, app.app_id), Some(patch)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        app.set_limits(json!({"cps": 1000})).await;
        let mut callids = Vec::new();
        for to in ["13800019990", "13800029990", "13800039990", "13800049990"] {
            let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice(to), json!({"appid": app.app_id}))).await;
            callids.push(a.body["callid"].as_str().unwrap().to_string());
        }
        let got = receiver.wait_for(2, Duration::from_secs(20)).await;
        let mut seen = Vec::new();
        for r in &got {
            assert_eq!(r.path, "/feed");
            assert_signed(r, &secret);
            let batch = r.json();
            let cdrs = batch["cdrs"].as_array().unwrap();
            assert_eq!(batch["count"], cdrs.len());
            assert!(cdrs.len() <= 3);
            for cdr in cdrs {
                assert_eq!(cdr["kind"], "notice");
                seen.push(cdr["callid"].as_str().unwrap().to_string());
            }
        }
        seen.sort();
        callids.sort();
        assert_eq!(seen, callids);
    }
}

//! Crashes and lost media servers, with real processes: `voicepaas serve` killed with
//! SIGKILL under load and started again, and a standalone sandbox that goes away in the
//! middle of calls. Every acknowledged call ends with exactly one CDR.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::helpers::*;
use crate::processes::*;

both_backends! {
    /// SIGKILL with calls queued, being placed and live; after a restart every
    /// acknowledged call reaches exactly one CDR (and one result or CDR callback); the
    /// conversations still bridged on the media server are re-attached and end normally.
    async fn sigkill_loses_no_call(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        // Slow enough that bridged conversations outlive the dead process's lease (10 s).
        let _sandbox = sandbox(media_port, "2", dir.path());
        let (mut first, address) = server(&db, media_port, dir.path(), "10").await;
        let app = customer(&address, 20).await;
        let mut ids = Vec::new();
        for i in 0..40 {
            let body = json!({"appid": app.app_id, "to": format!("1380001{i:04}"), "contents": [{"type": "number", "content": "7"}], "times": 3});
            let a = app.post(&app.account_path("VoiceNotices"), &body).await;
            assert_eq!(a.code(), "0", "{}", a.body);
            ids.push(a.body["callid"].as_str().unwrap().to_string());
        }
        let mut conversations = Vec::new();
        for i in 0..4 {
            let body = json!({"action": "click2call", "caller": format!("1390001{i:04}"), "callee": format!("1390002{i:04}")});
            let a = app.post(&app.ctc_path(), &body).await;
            assert_eq!(a.code(), "00000", "{}", a.body);
            conversations.push(a.body["conversationSid"].as_str().unwrap().to_string());
        }
        let store = db.store().await;
        // Let the first conversations bridge, then kill the server mid-flight.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        first.0.kill().expect("SIGKILL");
        first.0.wait().unwrap();
        let before = store.count_cdrs().await.unwrap();
        assert!(before < 44, "the kill came too late to test anything ({before} CDRs)");

        let (_second, _) = server(&db, media_port, dir.path(), "10").await;
        ids.extend(conversations.iter().cloned());
        let cdrs = all_cdrs(&store, &ids, Duration::from_secs(90)).await;
        assert_eq!(store.count_cdrs().await.unwrap(), ids.len() as i64);
        for id in &ids {
            let pushed: Vec<_> = callbacks(&store, id).await.into_iter().filter(|(k, _)| k == "result" || k == "cdr").collect();
            assert_eq!(pushed.len(), 1, "{id}: {pushed:?}");
        }
        // Conversations that were bridged when the process died went on and ended by a
        // hangup, not as failures.
        let bridged_through = cdrs[40..].iter().filter(|c| c["byeType"] == "3" && c["cdrs"][1]["cause"] == "completed").count();
        assert!(bridged_through >= 1, "{:?}", &cdrs[40..]);
    }
}

both_backends! {
    /// The media server goes away mid-call and does not come back: live calls end as
    /// failed within the grace period (1 s here); a notice answers result 1, reason 2.
    async fn media_server_lost(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        let sandbox = sandbox(media_port, "1", dir.path());
        let (_server, address) = server(&db, media_port, dir.path(), "1").await;
        let app = customer(&address, 100).await;
        let body = json!({"appid": app.app_id, "to": "13800000001", "contents": [{"type": "number", "content": "7"}], "times": 3});
        let a = app.post(&app.account_path("VoiceNotices"), &body).await;
        let notice = a.body["callid"].as_str().unwrap().to_string();
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13900000001", "callee": "13900000002"})).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let store = db.store().await;
        // Both answered (the sandbox answers after 1 s), then the media server dies.
        tokio::time::sleep(Duration::from_millis(2300)).await;
        drop(sandbox);
        let lost = Instant::now();
        let cdrs = all_cdrs(&store, &[notice, cv], Duration::from_secs(10)).await;
        assert!(lost.elapsed() < Duration::from_secs(5), "{:?}", lost.elapsed());
        assert_eq!((cdrs[0]["result"].as_str(), cdrs[0]["reason"].as_str()), (Some("1"), Some("2")), "{}", cdrs[0]);
        assert!(!cdrs[0]["answertime"].as_str().unwrap().is_empty());
        let causes: Vec<&str> = cdrs[1]["cdrs"].as_array().unwrap().iter().map(|l| l["cause"].as_str().unwrap()).collect();
        assert_eq!(causes, vec!["failed", "failed"], "{}", cdrs[1]);
        // New calls are refused while no media server is up.
        let a = app.post(&app.account_path("VoiceNotices"), &body).await;
        assert_eq!((a.code(), a.msg()), ("-5", "no media server available"));
    }
}

both_backends! {
    /// SIGKILL between two attempts of a delivery: after the restart the delivery goes on
    /// (same webhook-id) and is delivered.
    async fn restart_between_retries_loses_nothing(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let receiver = crate::receiver::Receiver::start().await;
        receiver.answer_with(&[500, 500]);
        let command = || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
            command
                .env("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")
                .env("VOICEPAAS_WEBHOOK_RETRY_SCALE", "0.01")
                .env("VOICEPAAS_SANDBOX_SPEED", "20")
                .env("VOICEPAAS_LOG", "warn");
            command
        };
        let (mut first, address) = serve(&db, dir.path(), command()).await;
        let mut app = customer(&address, 100).await;
        let created = app.create_app(&app.sid, json!({"name": "r", "notifyUrl": format!("{}/n", receiver.base)})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let a = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id, "to": "13800009990", "contents": [{"type": "digits", "content": "1"}]})).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        let store = db.store().await;
        // Two failed attempts recorded; the third is due ~3 s later.
        let started = Instant::now();
        let webhook_id = loop {
            if let Some(row) = store.outbox_of(&callid).await.unwrap().first()
                && store.attempt_log(&row.webhook_id).await.unwrap().len() == 2
            {
                break row.webhook_id.clone();
            }
            assert!(started.elapsed() < Duration::from_secs(20), "two attempts never happened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        first.0.kill().unwrap();
        first.0.wait().unwrap();
        let (_second, _) = serve(&db, dir.path(), command()).await;
        let got = receiver.wait_for(3, Duration::from_secs(30)).await;
        assert!(got.iter().all(|r| r.headers["webhook-id"] == webhook_id));
        settle_delivery(&store, &callid, "delivered").await;
        assert_eq!(store.outbox_of(&callid).await.unwrap()[0].state, "delivered");
    }
}

both_backends! {
    /// SIGTERM while a delivery is in flight: the process stops taking requests, lets the
    /// delivery finish (the receiver answers after 2 s), records it, and exits.
    async fn sigterm_finishes_deliveries_in_flight(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let receiver = crate::receiver::Receiver::start().await;
        receiver.answer_after(200, Duration::from_secs(2));
        let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command
            .env("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")
            .env("VOICEPAAS_SANDBOX_SPEED", "20")
            .env("VOICEPAAS_LOG", "warn");
        let (mut server, address) = serve(&db, dir.path(), command).await;
        let mut app = customer(&address, 100).await;
        let created = app.create_app(&app.sid, json!({"name": "t", "notifyUrl": format!("{}/n", receiver.base)})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let a = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id, "to": "13800009990", "contents": [{"type": "digits", "content": "1"}]})).await;
        let callid = a.body["callid"].as_str().unwrap().to_string();
        receiver.wait_for(1, Duration::from_secs(20)).await;
        server.terminate();
        let (status, _) = server.exited().await;
        assert!(status.success(), "{status:?}");
        let store = db.store().await;
        assert_eq!(store.outbox_of(&callid).await.unwrap()[0].state, "delivered");
        assert_eq!(receiver.received().len(), 1);
    }
}

//! Retention on both backends: a captcha's code is not kept once its call is over; the
//! purge deletes idempotency keys after 24 hours and finished callbacks (with their
//! attempts) after the retention period, and nothing younger.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestDb, wait_cdr};
use crate::receiver::Receiver;

const DAY_MS: i64 = 86_400_000;

both_backends! {
    /// The stored script of a finished captcha no longer holds its code.
    async fn a_finished_captchas_code_is_forgotten(db: TestDb) {
        let app = db.spawn(&[]).await;
        let store = db.store().await;
        let captcha = json!({"appid": app.app_id, "code": "987654", "to": "13800009990"});
        let a = app.post(&app.account_path("VoiceCaptchas"), &captcha).await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let callid = a.body["callid"].as_str().unwrap().to_string();
        wait_cdr(&store, &callid).await;
        let params = db.text(&format!("SELECT params FROM calls WHERE id = '{callid}'")).await;
        assert_eq!(params.as_deref(), Some("{}"));
    }
}

both_backends! {
    /// Aged rows go, young ones stay.
    async fn purge_deletes_only_what_expired(db: TestDb) {
        let receiver = Receiver::start().await;
        let mut app = db.spawn(&[("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")]).await;
        let created = app.create_app(&app.sid, json!({"name": "r", "notifyUrl": format!("{}/n", receiver.base)})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let path = app.account_path("VoiceNotices");
        for (to, key) in [("13800019990", "old-key"), ("13800029990", "young-key")] {
            let a = app.post_as(&path, &app.notice(to), &app.sid, &app.token, &[("Idempotency-Key", key)]).await;
            assert_eq!(a.code(), "0", "{}", a.body);
        }
        receiver.wait_for(2, Duration::from_secs(20)).await;
        let store = db.store().await;
        let count = |sql: &'static str| {
            let db = &db;
            async move { db.text(sql).await.unwrap().parse::<i64>().unwrap() }
        };
        for _ in 0..100 {
            if count("SELECT CAST(COUNT(*) AS TEXT) FROM outbox WHERE state = 'delivered'").await == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One delivery finished 31 days ago, one key made 25 hours ago.
        db.exec(&format!(
            "UPDATE outbox SET finished_at = finished_at - {} WHERE seq = (SELECT MIN(seq) FROM outbox)",
            31 * DAY_MS
        ))
        .await;
        db.exec(&format!(
            "UPDATE idempotency_keys SET created_at = created_at - {} WHERE idem_key = 'old-key'",
            25 * 3_600_000
        ))
        .await;
        let now = voicepaas::domain::time::now_ms();
        let purged = store.purge_expired(now, 30 * DAY_MS).await.expect("purge");
        assert_eq!((purged.idempotency_keys, purged.deliveries, purged.attempts), (1, 1, 1));
        assert_eq!(count("SELECT CAST(COUNT(*) AS TEXT) FROM outbox").await, 1);
        assert_eq!(count("SELECT CAST(COUNT(*) AS TEXT) FROM delivery_attempts").await, 1);
        assert_eq!(
            db.text("SELECT idem_key FROM idempotency_keys").await.as_deref(),
            Some("young-key")
        );
        // A second purge finds nothing more.
        let again = store.purge_expired(now, 30 * DAY_MS).await.expect("purge");
        assert_eq!((again.idempotency_keys, again.deliveries, again.attempts), (0, 0, 0));
    }
}

both_backends! {
    /// Recording files older than `VOICEPAAS_RECORDING_RETENTION_DAYS` (default 90) are
    /// deleted by the purge the process runs at start; younger ones and files the
    /// platform did not name stay.
    async fn old_recordings_are_deleted(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let recordings = dir.path().join("recordings");
        std::fs::create_dir_all(&recordings).unwrap();
        let aged = std::time::SystemTime::now() - Duration::from_secs(91 * 86_400);
        let write = |name: &str, modified: Option<std::time::SystemTime>| {
            let path = recordings.join(name);
            std::fs::write(&path, b"RIFF").unwrap();
            if let Some(at) = modified {
                std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
            }
            path
        };
        let old = write("CV00424202611300845525515197158997.wav", Some(aged));
        let young = write("CV00424202611300845525515197158998.wav", None);
        let foreign = write("greeting.wav", Some(aged));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command.env("VOICEPAAS_LOG", "warn").stdout(std::process::Stdio::null());
        let (_server, _) = crate::processes::serve(&db, dir.path(), command).await;
        let started = std::time::Instant::now();
        while old.exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "the aged recording is still there");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(young.exists() && foreign.exists());
    }
}

both_backends! {
    /// Agent sessions go a day after they ended, with their events; live sessions stay;
    /// failed password attempts go once they no longer count.
    async fn ended_agent_sessions_are_purged(db: TestDb) {
        let app = db.spawn(&[]).await;
        let store = db.store().await;
        crate::agent_sessions::agent(&app, "1001", json!({})).await;
        crate::agent_sessions::agent(&app, "1002", json!({})).await;
        for (agent, cmds) in [("1001", &["login", "logout"][..]), ("1002", &["login"][..])] {
            for cmd in cmds {
                let a = app.cti(reqwest::Method::POST, &format!("Agents/{agent}/Commands"), Some(json!({"cmd": cmd}))).await;
                assert_eq!(a.code(), "00000");
            }
        }
        let mut socket = crate::agent_client::AgentSocket::open(&app.address, &app.app_id, "1002").await;
        assert_eq!(socket.auth("wrong!").await["statusCode"], "20101");
        let count = |sql: &'static str| {
            let db = &db;
            async move { db.text(sql).await.unwrap_or_default() }
        };
        let later = voicepaas::domain::time::now_ms() + 2 * DAY_MS;
        let purged = store.purge_expired(later, 30 * DAY_MS).await.expect("purge");
        assert_eq!(purged.agent_rows, 2, "the ended session and the failed attempts");
        assert_eq!(count("SELECT CAST(COUNT(*) AS TEXT) FROM agent_sessions").await, "1");
        assert_eq!(count("SELECT CAST(COUNT(*) AS TEXT) FROM agent_events").await, "1", "the live session's login");
        assert_eq!(count("SELECT CAST(COUNT(*) AS TEXT) FROM agent_auth_failures").await, "0");
    }
}

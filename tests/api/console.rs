//! The ops console (API.md §8) in headless Chromium, driven by `tests/console/console.mjs`
//! (playwright-core from npm, Debian's chromium): sign in, search a time range page by page,
//! open a conversation's legs and deliveries, re-push. Needs `node` with
//! `tests/console/node_modules` and `/usr/bin/chromium` (`.ci/run` installs them); without
//! them it prints SKIPPED, unless CI is set.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

fn browser_ready() -> bool {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let ready = here.join("node_modules/playwright-core").exists()
        && Path::new("/usr/bin/chromium").exists()
        && Command::new("node").arg("--version").output().is_ok();
    tool_ready(ready, "node, playwright-core or chromium", "api::console")
}

both_backends! {
    async fn console_search_shows_the_rows(db: TestDb) {
        if !browser_ready() {
            return;
        }
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        app.set_limits(json!({"cps": 1000})).await;
        let created = app.create_app(&app.sid, json!({"name": "console", "notifyUrl": "https://hooks.invalid/n", "cdrUrl": "https://hooks.invalid/c", "statusUrl": "https://hooks.invalid/s"})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let store = db.store().await;
        let mut ids = Vec::new();
        for to in ["13800019990", "13800029990", "13800039992"] {
            let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice(to), json!({"appid": app.app_id}))).await;
            ids.push(a.body["callid"].as_str().unwrap().to_string());
        }
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13800000001", "callee": "13800009990"})).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        ids.push(cv.clone());
        for id in &ids {
            wait_cdr(&store, id).await;
        }
        let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
        let fmt = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console.mjs");
        let out = Command::new("node")
            .arg(script)
            .args([&app.address, &app.sid, &app.token, &fmt(now - chrono::Duration::days(1)), &fmt(now + chrono::Duration::days(30)), &ids.join(","), &cv])
            .output()
            .expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert!(shown["refused"].as_str().unwrap().starts_with("Sign-in failed"), "{shown}");
        let mut listed: Vec<String> = shown["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids, "two pages of two rows");
        assert_eq!(shown["legs"], 2);
        let deliveries = shown["deliveries"].as_u64().unwrap();
        assert!(deliveries >= 3, "statuses and the CDR callback: {shown}");
        assert_eq!((shown["repushed"].as_str(), shown["after"].as_u64()), (Some("queued 1"), Some(deliveries + 1)));
    }
}

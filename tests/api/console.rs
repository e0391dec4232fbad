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

both_backends! {
    async fn console_search_shows_the_rows(db: TestDb) {
        if !browser_ready("api::console") {
            return;
        }
        let receiver = crate::receiver::Receiver::start().await;
        // The first callback is refused for good (410): the failed-deliveries view has a row.
        receiver.answer_with(&[410]);
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20"), ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")]).await;
        app.set_limits(json!({"cps": 1000})).await;
        let hooks = &receiver.base;
        let created = app.create_app(&app.sid, json!({"name": "console", "notifyUrl": format!("{hooks}/n"), "cdrUrl": format!("{hooks}/c"), "statusUrl": format!("{hooks}/s")})).await;
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
        receiver.wait_for(8, std::time::Duration::from_secs(20)).await;
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
        assert_eq!(shown["zone"], "times in Asia/Shanghai", "{shown}");
        assert!(shown["refused"].as_str().unwrap().starts_with("Sign-in failed"), "{shown}");
        // The default range is the last hour (and a minute ahead), in the platform's zone.
        // Chromium shows a value with zero seconds as HH:mm (the page pads it back).
        let parse = |v: &Value| {
            let v = v.as_str().unwrap();
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M"))
                .unwrap()
        };
        let (from, to) = (parse(&shown["defaults"][0]), parse(&shown["defaults"][1]));
        assert_eq!((to - from).num_minutes(), 61, "{shown}");
        assert!((to - now.naive_local()).num_seconds().abs() < 120, "{shown}");
        let mut listed: Vec<String> = shown["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids, "two pages of two rows");
        // Readable times and outcomes, nothing raw.
        for row in shown["cells"].as_array().unwrap() {
            let started = row[3].as_str().unwrap();
            assert!(chrono::NaiveDateTime::parse_from_str(started, "%Y-%m-%d %H:%M:%S").is_ok(), "{row}");
            let outcome = row[4].as_str().unwrap();
            assert!(!outcome.contains("byeType") && !outcome.contains("reason"), "{row}");
        }
        let outcomes: Vec<&str> = shown["cells"].as_array().unwrap().iter().map(|r| r[4].as_str().unwrap()).collect();
        assert!(outcomes.contains(&"failed") && outcomes.contains(&"the callee did not answer or could not be reached"), "{outcomes:?}");
        assert!(shown["bars"].as_u64().unwrap() >= 1, "{shown}");
        let legs = shown["legs"].as_array().unwrap();
        assert_eq!(legs.len(), 2);
        assert_eq!((legs[1][8].as_str(), legs[1][9].as_str()), (Some("failed"), Some("USER_BUSY / 486 / sip:486")), "{shown}");
        // Each status callback shows its leg and the state it reported.
        let rows = shown["deliveryRows"].as_array().unwrap();
        let statuses: Vec<&Value> = rows.iter().filter(|r| r[0] == "status").collect();
        assert!(!statuses.is_empty() && statuses.iter().all(|r| r[1].as_str().unwrap().starts_with("CA") && !r[2].as_str().unwrap().is_empty()), "{shown}");
        let deliveries = shown["deliveries"].as_u64().unwrap();
        assert!(deliveries >= 3, "statuses and the CDR callback: {shown}");
        assert_eq!((shown["repushed"].as_str(), shown["after"].as_u64()), (Some("queued 1"), Some(deliveries + 1)));
        // A failed lookup clears the previous CDR.
        assert_eq!(shown["lookup"]["detailHidden"], true, "{shown}");
        assert_eq!(shown["lookup"]["error"], "CV00000000000000000000000000000000: no CDR with this id", "{shown}");
        assert_eq!(shown["failed"].as_array().unwrap().len(), 1, "{shown}");
        assert_eq!(shown["failedRepush"], "queued 1", "{shown}");
        assert_eq!(shown["signedOut"], json!({"tabsHidden": true, "stored": null}));
    }
}

//! CDR query and re-push (API.md §8): by id (call, conversation, leg), by time range with
//! keyset paging, redelivery, and the deliveries list.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

both_backends! {
    async fn query_and_repush(db: TestDb) {
        let mut app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "20")]).await;
        app.set_limits(json!({"cps": 1000})).await;
        let created = app.create_app(&app.sid, json!({"name": "q", "notifyUrl": "https://hooks.invalid/n", "cdrUrl": "https://hooks.invalid/c"})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let store = db.store().await;
        let mut calls = Vec::new();
        for to in ["13800019990", "13800029990", "13800039992"] {
            let a = app.post(&app.account_path("VoiceNotices"), &patched(app.notice(to), json!({"appid": app.app_id}))).await;
            calls.push(a.body["callid"].as_str().unwrap().to_string());
        }
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13800000001", "callee": "13800009990"})).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        for id in calls.iter().chain([&cv]) {
            wait_cdr(&store, id).await;
        }
        let get = |path: String| {
            let app = &app;
            async move { app.send(reqwest::Method::GET, &path, None).await }
        };

        // By id.
        let a = get(app.account_path(&format!("Cdrs/{}", calls[0]))).await;
        assert_eq!((a.status, a.code()), (200, "0"));
        let mut expected = wait_cdr(&store, &calls[0]).await;
        expected["kind"] = json!("notice");
        assert_eq!(a.body["cdr"], expected);
        let by_cv = get(app.account_path(&format!("Cdrs/{cv}"))).await;
        assert_eq!(by_cv.body["cdr"]["kind"], "click2call");
        let leg = by_cv.body["cdr"]["cdrs"][1]["callSid"].as_str().unwrap().to_string();
        assert_eq!(get(app.account_path(&format!("Cdrs/{leg}"))).await.body, by_cv.body);
        let a = get(app.account_path("Cdrs/CA424")).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "-4", "id must be a callid, conversationSid or callSid"));
        let a = get(app.account_path("Cdrs/CA00424202611210000000000000000001")).await;
        assert_eq!((a.status, a.code()), (404, "-7"));
        let (other, other_token) = app.create_account("other").await;
        let foreign = app.client.get(app.url(&format!("/Accounts/{other}/Cdrs/{}", calls[0]))).basic_auth(&other, Some(&other_token)).send().await.unwrap();
        assert_eq!(foreign.status(), 404);

        // By time range (the sandbox clock runs ahead: a wide range), two per page.
        let now = chrono::Utc::now();
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono_tz::Asia::Shanghai).format("%Y%m%d%H%M%S").to_string();
        let range = format!("startTime={}&endTime={}", fmt(now - chrono::Duration::days(1)), fmt(now + chrono::Duration::days(30)));
        let first = get(app.account_path(&format!("Cdrs?{range}&pageSize=2"))).await;
        assert_eq!(first.body["cdrs"].as_array().unwrap().len(), 2, "{}", first.body);
        let cursor = first.body["nextCursor"].as_str().unwrap().to_string();
        let second = get(app.account_path(&format!("Cdrs?{range}&pageSize=2&cursor={cursor}"))).await;
        assert_eq!(second.body["cdrs"].as_array().unwrap().len(), 2);
        assert!(second.body.get("nextCursor").is_none());
        let all: Vec<&Value> = first.body["cdrs"].as_array().unwrap().iter().chain(second.body["cdrs"].as_array().unwrap()).collect();
        let starts: Vec<&str> = all.iter().map(|c| c["starttime"].as_str().or(c["cdrs"][0]["startTime"].as_str()).unwrap()).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
        let notices = get(app.account_path(&format!("Cdrs?{range}&kind=notice"))).await;
        assert_eq!(notices.body["cdrs"].as_array().unwrap().len(), 3);
        let to = get(app.account_path(&format!("Cdrs?{range}&to=13800029990"))).await;
        assert_eq!(to.body["cdrs"][0]["callid"], calls[1].as_str());
        // `to` matches any leg: the conversation by its callee, and by its caller too.
        for number in ["13800009990", "13800000001"] {
            let by_leg = get(app.account_path(&format!("Cdrs?{range}&to={number}&kind=click2call&pageSize=1"))).await;
            let ids: Vec<&str> = by_leg.body["cdrs"].as_array().unwrap().iter().map(|c| c["conversationSid"].as_str().unwrap()).collect();
            assert_eq!(ids, [cv.as_str()], "{number}: {}", by_leg.body);
            assert!(by_leg.body.get("nextCursor").is_none());
        }
        for (query, msg) in [
            ("endTime=20261121000000".to_string(), "missing startTime"),
            (format!("{range}&pageSize=1001"), "pageSize must be 1-1000"),
            (format!("{range}&cursor=zzz"), "cursor is not one this API gave"),
            ("startTime=2026&endTime=20261121000000".to_string(), "startTime must be YYYYMMDDHHmmss"),
        ] {
            let a = get(app.account_path(&format!("Cdrs?{query}"))).await;
            assert_eq!((a.code(), a.msg()), ("-4", msg), "{query}");
        }

        // Re-push: one CDR, then the range (new webhook ids, same targets).
        let a = app.post(&app.account_path(&format!("Cdrs/{}/Redeliver", calls[0])), &json!({})).await;
        assert_eq!((a.code(), a.body["queued"].as_i64()), ("0", Some(1)), "{}", a.body);
        let rows = store.outbox_of(&calls[0]).await.unwrap();
        let results: Vec<_> = rows.iter().filter(|r| r.kind == "result").collect();
        assert_eq!(results.len(), 2);
        assert_ne!(results[0].webhook_id, results[1].webhook_id);
        assert_eq!(results[0].body, results[1].body);
        let body = json!({"startTime": fmt(now - chrono::Duration::days(1)), "endTime": fmt(now + chrono::Duration::days(30))});
        let a = app.post(&app.account_path("Cdrs/Redeliver"), &body).await;
        assert_eq!((a.code(), a.body["queued"].as_i64()), ("0", Some(4)), "{}", a.body);
        // The job queues them in the background: a third result callback for the first call.
        let mut results = 0;
        for _ in 0..200 {
            let rows = store.outbox_of(&calls[0]).await.unwrap();
            results = rows.iter().filter(|r| r.kind == "result").count();
            if results == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(results, 3, "the range re-push reached the first call");

        // Deliveries, newest first, with their attempts.
        let a = get(app.account_path("Deliveries?pageSize=3")).await;
        let listed = a.body["deliveries"].as_array().unwrap();
        assert_eq!(listed.len(), 3);
        assert!(a.body["nextCursor"].is_string());
        assert!(listed.iter().all(|d| d["attempts"].is_array() && d["webhookId"].as_str().unwrap().starts_with("msg_")));
        let a = get(app.account_path("Deliveries?state=sent")).await;
        assert_eq!((a.code(), a.msg()), ("-4", "state must be failed, pending or delivered"));
    }
}

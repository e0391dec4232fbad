//! The operator API (API.md §10).

use reqwest::Method;
use serde_json::json;

use crate::both_backends;

both_backends! {
    /// Accounts and applications through the operator API, with exact fields.
    async fn accounts_and_applications(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.admin(Method::POST, "/admin/accounts", Some(json!({"name": "acme"}))).await;
        assert_eq!(a.status, 201);
        let sid = a.body["accountSid"].as_str().unwrap().to_string();
        assert_eq!(sid.len(), 32);
        assert_eq!(a.body["authToken"].as_str().unwrap().len(), 64);
        assert_eq!(a.body.as_object().unwrap().len(), 2);

        let a = app.admin(Method::GET, "/admin/accounts", None).await;
        let listed = a.body["accounts"].as_array().unwrap().iter().find(|x| x["accountSid"] == sid.as_str()).unwrap().clone();
        assert_eq!(listed, json!({"accountSid": sid, "name": "acme", "enabled": true, "cps": 10, "maxConcurrentCalls": 100,
                                  "maxQueuedCalls": 10000, "answerTimeout": 45, "createdAt": listed["createdAt"]}));

        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{sid}"), Some(json!({"cps": 50, "answerTimeout": 60}))).await;
        assert_eq!((a.status, &a.body["cps"], &a.body["answerTimeout"], &a.body["maxQueuedCalls"]), (200, &json!(50), &json!(60), &json!(10000)));
        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{sid}"), Some(json!({"answerTimeout": 5}))).await;
        assert_eq!((a.status, a.body.clone()), (400, json!({"error": "answerTimeout must be 10-120"})));
        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{}", "0".repeat(32)), Some(json!({"cps": 5}))).await;
        assert_eq!(a.status, 404);

        let created = app.create_app(&sid, json!({"name": "shop", "notifyUrl": "https://example.com/n", "cdrBatchSize": 10, "allowedCallerIds": ["01080001001"]})).await;
        let app_id = created["appId"].as_str().unwrap().to_string();
        assert_eq!(app_id.len(), 32);
        let secret = created["signingSecret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "{secret}");
        assert_eq!(created["notifyUrl"], "https://example.com/n");

        let path = format!("/admin/accounts/{sid}/applications/{app_id}");
        let a = app.admin(Method::PATCH, &path, Some(json!({"notifyUrl": null, "statusUrl": "https://example.com/s", "cdrBatchWindowMs": 250}))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!((&a.body["notifyUrl"], &a.body["statusUrl"], &a.body["cdrBatchWindowMs"], &a.body["cdrBatchSize"]),
                   (&json!(null), &json!("https://example.com/s"), &json!(250), &json!(10)));
        assert!(a.body.get("signingSecret").is_none());
        let a = app.admin(Method::PATCH, &path, Some(json!({"cdrFeedUrl": "gopher://x"}))).await;
        assert_eq!((a.status, a.body.clone()), (400, json!({"error": "cdrFeedUrl must be an http or https URL"})));
        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{}/applications/{app_id}", app.sid), Some(json!({"name": "steal"}))).await;
        assert_eq!(a.status, 404);
        let a = app.admin(Method::GET, &format!("/admin/accounts/{sid}/applications"), None).await;
        assert_eq!(a.body["applications"].as_array().unwrap().len(), 1);
        let a = app.admin(Method::POST, "/admin/accounts", Some(json!({}))).await;
        assert_eq!((a.status, a.body.clone()), (400, json!({"error": "missing name"})));
        let a = app.admin(Method::POST, &format!("/admin/accounts/{}/applications", "0".repeat(32)), Some(json!({"name": "x"}))).await;
        assert_eq!(a.status, 404);
    }
}

both_backends! {
    /// A wrong bearer token is 401; without VOICEPAAS_ADMIN_TOKEN the API is off (404).
    async fn operator_auth(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.client.get(app.url("/admin/accounts")).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(a.status(), 401);
        let a = app.client.get(app.url("/admin/accounts")).send().await.unwrap();
        assert_eq!(a.status(), 401);
        let off = db.spawn(&[("VOICEPAAS_ADMIN_TOKEN", "")]).await;
        let a = off.admin(Method::GET, "/admin/accounts", None).await;
        assert_eq!((a.status, a.body["error"].as_str().unwrap()), (404, "the operator API is off (VOICEPAAS_ADMIN_TOKEN is unset)"));
    }
}

both_backends! {
    /// Health endpoints.
    async fn health(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(a.status(), 200);
        let a = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(a.status(), 200);
        assert_eq!(
            a.json::<serde_json::Value>().await.unwrap(),
            json!({"status": "ready", "database": db.backend, "media": {"up": 1, "nodes": 1}})
        );
    }
}

both_backends! {
    /// With no media server reachable the server still starts, is not ready, and refuses
    /// new calls with -5 / 10005 without storing them.
    async fn no_media_server(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_MEDIA", "esl://:ClueCon@127.0.0.1:1")]).await;
        let a = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(a.status(), 503);
        assert_eq!(
            a.json::<serde_json::Value>().await.unwrap(),
            json!({"status": "unavailable", "database": db.backend, "media": {"up": 0, "nodes": 1}})
        );
        let a = app.post(&app.account_path("VoiceNotices"), &app.notice("13800138000")).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "-5", "no media server available"));
        assert!(db.store().await.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap().is_empty());
        let c2c = json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"});
        let a = app.post(&app.ctc_path(), &c2c).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "10005", "no media server available"));
        // Validation still comes first.
        let a = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id})).await;
        assert_eq!(a.code(), "-4");
    }
}

both_backends! {
    /// A route asked with the wrong method is HTTP 405 naming the allowed ones, in the
    /// route's own dialect; unknown operator paths and misspelt operator fields get the
    /// operator API's `{"error"}` with a 4xx.
    async fn wrong_methods_paths_and_fields(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.send(Method::GET, &app.account_path("VoiceNotices"), None).await;
        assert_eq!((a.status, a.code(), a.headers.get("allow").map(|v| v.to_str().unwrap())), (405, "-4", Some("POST")), "{}", a.body);
        assert_eq!(a.msg(), format!("GET is not allowed on \"/Accounts/{}/VoiceNotices\" (allowed: POST)", app.sid));
        let a = app.send(Method::GET, &app.ctc_path(), None).await;
        assert_eq!((a.status, a.code()), (405, "10004"), "{}", a.body);
        let a = app.send(Method::GET, "/Accounts/x/Nothing", None).await;
        assert_eq!((a.status, a.code()), (404, "-4"), "{}", a.body);

        let a = app.admin(Method::GET, "/admin/accounts//applications", None).await;
        assert_eq!(a.status, 404, "{}", a.body);
        assert!(a.body["error"].as_str().unwrap().starts_with("no such route"), "{}", a.body);
        let a = app.admin(Method::GET, &format!("/admin/accounts/{}/token", app.sid), None).await;
        assert_eq!((a.status, a.headers.get("allow").map(|v| v.to_str().unwrap())), (405, Some("POST")), "{}", a.body);
        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{}", app.sid), Some(json!({"maxConcurrentCall": 5}))).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.body["error"], "unknown field \"maxConcurrentCall\" (known: cps, maxConcurrentCalls, maxQueuedCalls, answerTimeout, enabled)");
        let a = app.admin(Method::POST, &format!("/admin/accounts/{}/applications", app.sid), Some(json!({"name": "x", "notifyURL": "https://example.com"}))).await;
        assert_eq!(a.status, 400, "{}", a.body);
    }
}

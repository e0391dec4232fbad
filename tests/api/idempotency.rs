//! Idempotency-Key (API.md §1a).

use serde_json::json;

use crate::both_backends;

both_backends! {
    /// A repeat answers the first response and places no new call; a different body
    /// under the same key is -4; keys are per account.
    async fn repeats_replay(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        let body = app.notice("13800138000");
        let key = [("Idempotency-Key", "order-1")];
        let first = app.post_as(&path, &body, &app.sid, &app.token, &key).await;
        assert_eq!(first.code(), "0");
        // Same body, keys in another order: still the same request.
        let reordered: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"contents":[{{"content":"123","type":"digits"}}],"to":"13800138000","appid":"{}"}}"#, app.app_id)).unwrap();
        let again = app.post_as(&path, &reordered, &app.sid, &app.token, &key).await;
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
        // The header names the request the body answers, the first one.
        assert_eq!(again.headers.get("x-request-id").unwrap(), first.body["requestid"].as_str().unwrap());
        assert_eq!(first.headers.get("x-request-id").unwrap(), first.body["requestid"].as_str().unwrap());

        let a = app.post_as(&path, &app.notice("13800138001"), &app.sid, &app.token, &key).await;
        assert_eq!((a.code(), a.msg()), ("-4", "Idempotency-Key was already used with a different request"));
        let a = app.post_as(&app.account_path("BatchVoiceNotices"), &body, &app.sid, &app.token, &key).await;
        assert_eq!(a.code(), "-4", "same key on another endpoint is another request");

        let (sid, token) = app.create_account("other").await;
        let theirs = app.create_app(&sid, json!({"name": "t"})).await;
        let their_body = json!({"appid": theirs["appId"], "to": "13800138000", "contents": [{"type": "digits", "content": "1"}]});
        let a = app.post_as(&format!("/Accounts/{sid}/VoiceNotices"), &their_body, &sid, &token, &key).await;
        assert_eq!(a.code(), "0");
        assert_ne!(a.body["callid"], first.body["callid"]);

        for bad in ["", &"k".repeat(256)] {
            let a = app.post_as(&path, &body, &app.sid, &app.token, &[("Idempotency-Key", bad)]).await;
            assert_eq!((a.code(), a.msg()), ("-4", "Idempotency-Key must be 1-255 visible ASCII characters"), "{bad:?}");
        }
    }
}

both_backends! {
    /// Concurrent repeats of one key all get the same answer, and one call is stored.
    async fn concurrent_repeats_place_one_call(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        let body = app.notice("13800138000");
        let key = [("Idempotency-Key", "burst")];
        let answers = futures_util::future::join_all((0..20).map(|_| app.post_as(&path, &body, &app.sid, &app.token, &key))).await;
        let first = &answers[0].body;
        assert_eq!(first["statuscode"], "0");
        assert!(answers.iter().all(|a| &a.body == first));
        let calls = db.store().await.calls_of_request(first["requestid"].as_str().unwrap()).await.unwrap();
        assert_eq!(calls.len(), 1);
    }
}

both_backends! {
    /// Click-to-call actions take keys too: a repeated cancelCall replays its success.
    async fn click_to_call_keys(db: TestDb) {
        let app = db.spawn(&[]).await;
        let c2c = json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"});
        let key = [("Idempotency-Key", "c2c-1")];
        let first = app.post_as(&app.ctc_path(), &c2c, &app.sid, &app.token, &key).await;
        let again = app.post_as(&app.ctc_path(), &c2c, &app.sid, &app.token, &key).await;
        assert_eq!(first.body, again.body);
        let one = format!("{}/{}", app.ctc_path(), first.body["conversationSid"].as_str().unwrap());
        let cancel = json!({"action": "cancelCall"});
        let key = [("Idempotency-Key", "cancel-1")];
        assert_eq!(app.post_as(&one, &cancel, &app.sid, &app.token, &key).await.code(), "00000");
        assert_eq!(app.post_as(&one, &cancel, &app.sid, &app.token, &key).await.code(), "00000");
        assert_eq!(app.post(&one, &cancel).await.code(), "10007");
    }
}

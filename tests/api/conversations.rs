//! Click-to-call actions (API.md §6): click2call, cancelCall, addCall and their statusCodes.

use serde_json::{Value, json};

use crate::both_backends;

fn click2call() -> Value {
    json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"})
}

both_backends! {
    /// click2call answers 00000 with a conversationSid; its caller leg is queued as leg 0.
    async fn click2call_accepted(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.upload_prompt("greet.wav").await;
        let body = patched(click2call(), json!({
            "callerCli": "01012345678", "calleeCli": "01012345679", "greetVoice": "greet.wav", "ringbackMode": "1",
            "record": 2, "maxDuration": "600", "userData": "abc123", "statusUrl": "https://example.com/status", "cdrUrl": ""
        }));
        let a = app.post(&app.ctc_path(), &body).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "00000", "success"), "{}", a.body);
        assert_id(&a.body["conversationSid"], "CV");
        // Both configured versions answer.
        let path = app.ctc_path().replacen("/v1/", "/2019-08-14/", 1);
        assert_eq!(app.post(&path, &click2call()).await.code(), "00000");
    }
}

both_backends! {
    /// Every click-to-call error has its statusCode.
    async fn click2call_errors(db: TestDb) {
        let app = db.spawn(&[]).await;
        let (other_sid, _) = app.create_account("other").await;
        let foreign = app.create_app(&other_sid, json!({"name": "theirs"})).await;
        let path = app.ctc_path();
        for (patch, code, msg) in [
            (json!({"action": null}), "10004", "missing action"),
            (json!({"action": "dial"}), "10004", "action must be click2call"),
            (json!({"action": "cancelCall"}), "10004", "action cancelCall needs the conversationSid in the path"),
            (json!({"caller": null}), "10004", "missing caller"),
            (json!({"callee": "abc"}), "10004", "invalid callee: \"abc\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"userData": "has space"}), "10004", "userData must contain only letters and digits"),
            (json!({"userData": "a".repeat(257)}), "10004", "userData must be at most 256 bytes"),
            (json!({"ringbackMode": 3}), "10004", "ringbackMode must be 0-1"),
            (json!({"record": "x"}), "10004", "record must be 0-2"),
            (json!({"maxDuration": -5}), "10004", "maxDuration must be 1-86400"),
            (json!({"statusUrl": "ftp://example.com"}), "10004", "statusUrl must be an http or https URL"),
            (json!({"greetVoice": "nope.wav"}), "10004", "greetVoice: prompt nope.wav not found"),
        ] {
            let a = app.post(&path, &patched(click2call(), patch.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (200, code, msg), "{patch}");
        }
        let a = app.post_raw(&path, "application/json", b"{not json".to_vec()).await;
        assert_eq!(a.code(), "10002");
        let foreign_path = format!("/v1/Accounts/{}/Applications/{}/ctc/Conversations", app.sid, foreign["appId"].as_str().unwrap());
        let a = app.post(&foreign_path, &click2call()).await;
        assert_eq!((a.code(), a.msg()), ("10003", "applicationSid not found in this account"));
        let a = app.post(&format!("/v1/Accounts/{}/Applications/nothex/ctc/Conversations", app.sid), &click2call()).await;
        assert_eq!(a.code(), "10003");
        let a = app.post(&path.replacen("/v1/", "/v7/", 1), &click2call()).await;
        assert_eq!((a.status, a.code()), (404, "10004"));
        assert_eq!(a.msg(), "unknown API version \"v7\" (this server accepts v1, 2019-08-14)");
    }
}

both_backends! {
    /// cancelCall ends a queued conversation (its caller leg completes as canceled); a
    /// second cancel is 10007; unknown or malformed ids are 10006, also from another app.
    async fn cancel_call(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.post(&app.ctc_path(), &click2call()).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let one = format!("{}/{cv}", app.ctc_path());

        let other_app = app.create_app(&app.sid, json!({"name": "second"})).await;
        let via_other_app = format!("/v1/Accounts/{}/Applications/{}/ctc/Conversations/{cv}", app.sid, other_app["appId"].as_str().unwrap());
        let a = app.post(&via_other_app, &json!({"action": "cancelCall"})).await;
        assert_eq!((a.code(), a.msg()), ("10006", "conversation not found"));

        let a = app.post(&one, &json!({"action": "cancelCall"})).await;
        assert_eq!((a.code(), a.msg()), ("00000", "success"));
        assert!(a.body.get("conversationSid").is_none());
        let a = app.post(&one, &json!({"action": "cancelCall"})).await;
        assert_eq!((a.code(), a.msg()), ("10007", "conversation has already ended"));

        for id in ["CV00424202611210000000000000000001", "CA00424202611210000000000000000001", "junk"] {
            let a = app.post(&format!("{}/{id}", app.ctc_path()), &json!({"action": "cancelCall"})).await;
            assert_eq!(a.code(), "10006", "{id}");
        }
        let a = app.post(&one, &json!({"action": "hangup"})).await;
        assert_eq!((a.code(), a.msg()), ("10004", "action must be cancelCall or addCall"));
    }
}

both_backends! {
    /// Cancelling frees the conversation's place in the account's queue.
    async fn cancel_frees_queue_room(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.occupy_line(&db.store().await).await;
        app.set_limits(json!({"maxQueuedCalls": 1})).await;
        let a = app.post(&app.ctc_path(), &click2call()).await;
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let a = app.post(&app.ctc_path(), &click2call()).await;
        assert_eq!((a.code(), a.msg()), ("10008", "the account's call queue is full (1 calls)"));
        assert_eq!(app.post(&format!("{}/{cv}", app.ctc_path()), &json!({"action": "cancelCall"})).await.code(), "00000");
        assert_eq!(app.post(&app.ctc_path(), &click2call()).await.code(), "00000");
    }
}

both_backends! {
    /// addCall validates its fields (10004), needs a known conversation (10006) and is
    /// allowed only while the conversation is two-party and bridged (10007).
    async fn add_call_rules(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.post(&app.ctc_path(), &click2call()).await;
        let one = format!("{}/{}", app.ctc_path(), a.body["conversationSid"].as_str().unwrap());
        let a = app.post(&one, &json!({"action": "addCall"})).await;
        assert_eq!((a.code(), a.msg()), ("10004", "missing callee"));
        let a = app.post(&one, &json!({"action": "addCall", "callee": "13800000003", "timeout": 0})).await;
        assert_eq!((a.code(), a.msg()), ("10004", "timeout must be 1-600"));
        let a = app.post(&one, &json!({"action": "addCall", "callee": "13800000003"})).await;
        assert_eq!(a.code(), "10007");
        assert_eq!(a.msg(), "addCall is allowed only while the conversation is two-party and bridged; the conversation has not been bridged yet");
        app.post(&one, &json!({"action": "cancelCall"})).await;
        let a = app.post(&one, &json!({"action": "addCall", "callee": "13800000003"})).await;
        assert_eq!(a.code(), "10007", "{}", a.body);
        let a = app.post(&format!("{}/CV00424202611210000000000000000001", app.ctc_path()), &json!({"action": "addCall", "callee": "13800000003"})).await;
        assert_eq!(a.code(), "10006");
    }
}

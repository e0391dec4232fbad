//! Authentication (API.md §1): Basic credentials, path sid = header sid, disabled accounts.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;

both_backends! {
    /// Bad credentials of every kind answer -1 without a requestid.
    async fn bad_credentials_fail(db: TestDb) {
        let app = db.spawn(&[]).await;
        let (other_sid, other_token) = app.create_account("other").await;
        let path = app.account_path("VoiceNotices");
        let body = app.notice("13800138000");
        let mismatch = "authentication failed: the AccountSid in the path is not the one in the credentials";
        let cases: Vec<(&str, String, String, &str)> = vec![
            ("wrong token", app.sid.clone(), "0".repeat(64), "authentication failed"),
            ("empty token", app.sid.clone(), String::new(), "authentication failed"),
            ("unknown sid", "f".repeat(32), app.token.clone(), mismatch),
            ("another account's credentials on this path", other_sid.clone(), other_token.clone(), mismatch),
            ("this token with another sid", other_sid.clone(), app.token.clone(), mismatch),
        ];
        for (case, sid, token, message) in cases {
            let a = app.post_as(&path, &body, &sid, &token, &[]).await;
            assert_eq!((a.status, a.code(), a.msg()), (200, "-1", message), "{case}");
            assert!(a.body.get("requestid").is_none(), "{case}");
        }
        for header in ["", "Basic", "Basic !!!notbase64", "Bearer abc", "Basic Zm9v"] {
            let a = app.client.post(app.url(&path)).header("authorization", header).json(&body).send().await.unwrap();
            let v: serde_json::Value = a.json().await.unwrap();
            assert_eq!(v["statuscode"], "-1", "{header:?}");
        }
        let a = app.client.post(app.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(a.json::<serde_json::Value>().await.unwrap()["statuscode"], "-1");
        // Click-to-call answers in its own dialect.
        let a = app.post_as(&app.ctc_path(), &json!({"action": "click2call"}), &app.sid, "nope", &[]).await;
        assert_eq!((a.code(), a.msg()), ("10001", "authentication failed"));
    }
}

both_backends! {
    /// A disabled account fails at once (the operator API clears the cache); enabling it
    /// again restores access. A rotated token replaces the old one.
    async fn disable_enable_and_rotate(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        assert_eq!(app.post(&path, &app.notice("13800138000")).await.code(), "0");
        app.set_limits(json!({"enabled": false})).await;
        assert_eq!(app.post(&path, &app.notice("13800138000")).await.code(), "-1");
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"})).await;
        assert_eq!(a.code(), "10001");
        app.set_limits(json!({"enabled": true})).await;
        assert_eq!(app.post(&path, &app.notice("13800138000")).await.code(), "0");

        let a = app.admin(Method::POST, &format!("/admin/accounts/{}/token", app.sid), None).await;
        assert_eq!(a.status, 200);
        let new_token = a.body["authToken"].as_str().unwrap().to_string();
        assert_eq!(new_token.len(), 64);
        assert_eq!(app.post(&path, &app.notice("13800138000")).await.code(), "-1");
        let a = app.post_as(&path, &app.notice("13800138000"), &app.sid, &new_token, &[]).await;
        assert_eq!(a.code(), "0");
    }
}

//! Voice captchas (API.md §4) and their per-callee limits (§1a).

use serde_json::{Value, json};

use crate::both_backends;

fn captcha(app: &crate::helpers::TestApp, to: &str) -> Value {
    json!({"appid": app.app_id, "code": "a1B2", "to": to})
}

both_backends! {
    /// Accepted captchas; each field rule answers -4 naming the field (missing fields
    /// are -4, not the seed's -2).
    async fn captcha_rules(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceCaptchas");
        let a = app.post(&path, &patched(captcha(&app, "13800000001"), json!({"lang": "en", "userdata": "x", "from": "01080001001"}))).await;
        assert_eq!((a.code(), a.msg()), ("0", "succ"), "{}", a.body);
        assert_id(&a.body["requestid"], "RQ");
        assert_id(&a.body["callid"], "CA");
        let calls = db.store().await.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap();
        assert_eq!(calls[0].kind, "captcha");
        assert!(LEG_STATES.contains(&calls[0].state.as_str()), "{}", calls[0].state);
        for (patch, msg) in [
            (json!({"code": null}), "missing code"),
            (json!({"code": "12"}), "code must be 4-8 letters or digits"),
            (json!({"code": "123456789"}), "code must be 4-8 letters or digits"),
            (json!({"code": "12 4"}), "code must be 4-8 letters or digits"),
            (json!({"code": 1234}), "code must be a string"),
            (json!({"to": null}), "missing to"),
            (json!({"lang": "de"}), "lang must be zh or en"),
            (json!({"userdata": "é".repeat(129)}), "userdata must be at most 256 bytes"),
        ] {
            let a = app.post(&path, &patched(captcha(&app, "13800000002"), patch.clone())).await;
            assert_eq!((a.code(), a.msg()), ("-4", msg), "{patch}");
        }
        let a = app.post(&path, &patched(captcha(&app, "13800000002"), json!({"appid": null}))).await;
        assert_eq!(a.code(), "-3");
    }
}

both_backends! {
    /// Default limit: one captcha a minute to a number; other numbers are unaffected;
    /// another account has its own count.
    async fn per_minute_limit(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceCaptchas");
        assert_eq!(app.post(&path, &captcha(&app, "13800000001")).await.code(), "0");
        let a = app.post(&path, &captcha(&app, "13800000001")).await;
        assert_eq!((a.code(), a.msg()), ("-6", "captcha limit reached: at most 1 per minute to this number"));
        assert_id(&a.body["requestid"], "RQ");
        assert_eq!(app.post(&path, &captcha(&app, "13800000002")).await.code(), "0");

        let (sid, token) = app.create_account("other").await;
        let other_app = app.create_app(&sid, json!({"name": "x"})).await;
        let body = json!({"appid": other_app["appId"], "code": "1234", "to": "13800000001"});
        assert_eq!(app.post_as(&format!("/Accounts/{sid}/VoiceCaptchas"), &body, &sid, &token, &[]).await.code(), "0");
    }
}

both_backends! {
    /// Configured limits: the hourly limit applies once the minute allows more; parallel
    /// requests cannot slip past it.
    async fn hourly_limit_holds_under_concurrency(db: TestDb) {
        let app = db.spawn(&[("VOICEPAAS_CAPTCHA_LIMITS", "100,3,20")]).await;
        let path = app.account_path("VoiceCaptchas");
        let body = captcha(&app, "13800000001");
        let answers = futures_util::future::join_all((0..10).map(|_| app.post(&path, &body))).await;
        let accepted = answers.iter().filter(|a| a.code() == "0").count();
        assert_eq!(accepted, 3);
        for a in answers.iter().filter(|a| a.code() != "0") {
            assert_eq!((a.code(), a.msg()), ("-6", "captcha limit reached: at most 3 per hour to this number"));
        }
    }
}

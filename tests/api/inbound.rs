//! Inbound calls (agents' contract §9, §11.1, §12): simulated callers from the sandbox.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestDb, assert_id};

both_backends! {
    /// `POST /admin/sandbox/inbound`: the operator's token, a granted number, the sandbox.
    async fn simulated_callers_need_a_granted_number_and_the_sandbox(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001000"}))).await;
        assert_eq!((a.status, &a.body["statusCode"]), (404, &json!("20005")), "{}", a.body);
        assert_eq!(a.body["error"], "number 4008001000 is not granted to an account");
        app.admin(Method::PUT, "/admin/numbers/4008001000", Some(json!({"accountSid": app.sid}))).await;
        let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001000"}))).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_id(&a.body["callSid"], "CA");
        for (body, error) in [
            (json!({"from": "x", "to": "4008001000"}), "invalid from: \"x\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"to": "4008001000"}), "missing from"),
            (json!({"from": "13800138000", "to": "4008001000", "via": "sip"}), "unknown field \"via\" (known: from, to)"),
        ] {
            let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(body)).await;
            assert_eq!((a.status, a.body["error"].as_str()), (400, Some(error)));
        }

        // On a FreeSWITCH node there are no simulated callers.
        let port = crate::agent_sessions::unregistering_media().await;
        let media = format!("esl://:ClueCon@127.0.0.1:{port}");
        let real = db.spawn(&[("VOICEPAAS_MEDIA", media.as_str())]).await;
        real.admin(Method::PUT, "/admin/numbers/4008001001", Some(json!({"accountSid": real.sid}))).await;
        let started = std::time::Instant::now();
        loop {
            let a = real.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": "13800138000", "to": "4008001001"}))).await;
            if a.status == 404 {
                assert_eq!(a.body["error"], "simulated callers need the sandbox media server");
                break;
            }
            // Until the media connection is up: 503.
            assert_eq!(a.status, 503, "{}", a.body);
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

//! Hostile data on both backends: free text with U+0000 and other control characters is
//! kept exactly (PostgreSQL's `text` cannot hold U+0000: it is stored escaped); labels refuse
//! control characters by name; a receiver answering with NUL bytes or invalid UTF-8 still
//! has its attempt recorded and the delivery settled; odd bytes in query strings and path ids
//! are answered without a 5xx.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestDb, patched, wait_cdr};
use crate::receiver::Receiver;

/// Userdata the customer may send: NUL, other C0 controls, DEL, U+10FFFF (the store's
/// escape character) and text that looks like an escape.
const ODD_USERDATA: &str = "a\u{0}b\u{1}\u{7f}\u{10FFFF}0\\u0000\u{10FFFF}";

both_backends! {
    /// A notice and a captcha with odd userdata are accepted, and each CDR carries the
    /// userdata exactly as sent.
    async fn free_text_with_nul_is_kept_exactly(db: TestDb) {
        let app = db.spawn(&[]).await;
        let store = db.store().await;
        let notice = patched(app.notice("13800009990"), json!({"userdata": ODD_USERDATA}));
        let a = app.post(&app.account_path("VoiceNotices"), &notice).await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let cdr = wait_cdr(&store, a.body["callid"].as_str().unwrap()).await;
        assert_eq!(cdr["userdata"], ODD_USERDATA);

        let captcha = json!({"appid": app.app_id, "code": "1234", "to": "13800009990", "userdata": ODD_USERDATA});
        let a = app.post(&app.account_path("VoiceCaptchas"), &captcha).await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let cdr = wait_cdr(&store, a.body["callid"].as_str().unwrap()).await;
        assert_eq!(cdr["userdata"], ODD_USERDATA);

        // Click-to-call's userData is letters and digits by contract: refused by name.
        let c2c = json!({"action": "click2call", "caller": "13800009990", "callee": "13800000002", "userData": ODD_USERDATA});
        let a = app.post(&app.ctc_path(), &c2c).await;
        assert_eq!((a.code(), a.msg()), ("10004", "userData must contain only letters and digits"));
    }
}

both_backends! {
    /// Account and application names refuse control characters, by name, over the API and
    /// the CLI's checks alike; other odd text in names is kept.
    async fn labels_refuse_control_characters(db: TestDb) {
        let app = db.spawn(&[]).await;
        for name in ["a\u{0}b", "tab\there", "\u{7f}", "line\nbreak"] {
            let a = app.admin(reqwest::Method::POST, "/admin/accounts", Some(json!({"name": name}))).await;
            assert_eq!((a.status, a.body["error"].as_str()), (400, Some("name must not contain control characters")), "{name:?}");
            let path = format!("/admin/accounts/{}/applications", app.sid);
            let a = app.admin(reqwest::Method::POST, &path, Some(json!({"name": name}))).await;
            assert_eq!((a.status, a.body["error"].as_str()), (400, Some("name must not contain control characters")), "{name:?}");
        }
        let a = app.admin(reqwest::Method::POST, "/admin/accounts", Some(json!({"name": "'; DROP TABLE calls; -- 😀"}))).await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
}

both_backends! {
    /// `%00`, invalid UTF-8 and other odd bytes in query parameters and path ids of the
    /// CDR, delivery and conversation endpoints: answered, never a 5xx.
    async fn odd_bytes_in_queries_and_paths(db: TestDb) {
        let app = db.spawn(&[]).await;
        let odd = ["%00", "a%00b", "%FF%FE", "%E4%B8", "%27%3B--", "%F0%9F%98%80", "%0A%0D"];
        for o in odd {
            for path in [
                format!("Cdrs/{o}"),
                format!("Cdrs?startTime=20260101000000&endTime=20260102000000&to={o}"),
                format!("Cdrs?startTime=20260101000000&endTime=20260102000000&kind={o}"),
                format!("Cdrs?startTime=20260101000000&endTime=20260102000000&appid={o}"),
                format!("Cdrs?startTime=20260101000000&endTime=20260102000000&cursor={o}"),
                format!("Cdrs?startTime={o}&endTime=20260102000000"),
                format!("Deliveries?id={o}"),
                format!("Deliveries?state={o}"),
                format!("Recordings/{o}"),
            ] {
                let a = app.send(reqwest::Method::GET, &app.account_path(&path), None).await;
                assert!(a.status < 500, "GET {path}: {} {}", a.status, a.body);
            }
            let a = app.send(reqwest::Method::POST, &app.account_path(&format!("Cdrs/{o}/Redeliver")), None).await;
            assert!(a.status < 500, "Redeliver {o}: {} {}", a.status, a.body);
            let cancel = json!({"action": "cancelCall", "conversationSid": format!("CV{o}")});
            let a = app.post(&app.ctc_path(), &cancel).await;
            assert!(a.status < 500, "cancelCall {o}: {}", a.status);
            let cancel = json!({"action": "cancelCall", "conversationSid": "CV\u{0}"});
            let a = app.post(&app.ctc_path(), &cancel).await;
            assert!(a.status < 500, "cancelCall NUL: {}", a.status);
        }
    }
}

both_backends! {
    /// A receiver answering 200 with NUL bytes and invalid UTF-8: the delivery is
    /// delivered once, its attempt recorded with the answer escaped.
    async fn receiver_answer_with_nul_bytes(db: TestDb) {
        let receiver = Receiver::start().await;
        receiver.answer_body(b"ok\0\xff\xfe\x01done");
        let app = db.spawn(&[("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")]).await;
        let c2c = json!({"action": "click2call", "caller": "13800009990", "callee": "13800000002", "cdrUrl": format!("{}/cdr", receiver.base)});
        let a = app.post(&app.ctc_path(), &c2c).await;
        assert_eq!(a.code(), "00000", "{}", a.body);
        let cv = a.body["conversationSid"].as_str().unwrap().to_string();
        let listed = poll_delivered(&app, &cv).await;
        let attempts = listed["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{listed}");
        assert_eq!(attempts[0]["response"], "ok\\u{0}\u{fffd}\u{fffd}\\u{1}done", "{listed}");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert_eq!(receiver.received().iter().filter(|r| r.path == "/cdr").count(), 1, "sent once");
    }
}

/// Waits (up to 20 s) for the CDR delivery of conversation `cv` to be delivered; returns
/// its listing.
async fn poll_delivered(app: &crate::helpers::TestApp, cv: &str) -> Value {
    for _ in 0..200 {
        let a = app
            .send(
                reqwest::Method::GET,
                &app.account_path(&format!("Deliveries?id={cv}")),
                None,
            )
            .await;
        if let Some(d) = a.body["deliveries"]
            .as_array()
            .and_then(|l| l.iter().find(|d| d["kind"] == "cdr"))
            && d["state"] == "delivered"
        {
            return d.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the CDR of {cv} was not delivered within 20 s");
}

//! The repository API, run the same way on SQLite and PostgreSQL.

use voicepaas::config::CaptchaLimits;
use voicepaas::domain::application::AppSettings;
use voicepaas::domain::limits::AccountPatch;
use voicepaas::domain::prompt::check_wav;
use voicepaas::store::accept::{AcceptOutcome, Acceptance, CallRow, CaptchaWindow, RequestRow};
use voicepaas::store::conversations::ConversationState;
use voicepaas::store::idempotency::IdempotencyClaim;

use crate::both_backends;

fn acceptance(n: u32, account: &str, app: &str, kind: &'static str, to: &str) -> Acceptance {
    Acceptance {
        request: RequestRow {
            id: format!("RQ00001202611210000000{n:012}"),
            account_sid: account.into(),
            app_id: app.into(),
            kind,
            from_number: None,
            userdata: Some("ü'\"".into()),
            params: "{}".into(),
            created_at: voicepaas::domain::time::now_ms(),
        },
        calls: vec![CallRow {
            id: format!("CA00001202611210000000{n:012}"),
            to_number: to.into(),
            conversation_id: None,
            leg_seq: 0,
        }],
        conversation_id: None,
        idempotency: None,
        captcha_limits: None,
        response: format!("{{\"n\":{n}}}"),
    }
}

both_backends! {
    /// Accounts: create, authenticate, patch, disable, rotate.
    async fn accounts(db: TestDb) {
        let store = db.store().await;
        let (account, token) = store.create_account("a").await.unwrap();
        assert_eq!((account.cps, account.max_concurrent_calls, account.max_queued_calls, account.answer_timeout, account.enabled), (10, 100, 10000, 45, true));
        assert!(store.authenticate(&account.sid, &token).await.unwrap().is_some());
        assert!(store.authenticate(&account.sid, "x").await.unwrap().is_none());
        assert!(store.authenticate("nobody", &token).await.unwrap().is_none());
        let patched = store.update_account(&account.sid, &AccountPatch { cps: Some(3), enabled: Some(false), ..Default::default() }).await.unwrap().unwrap();
        assert_eq!((patched.cps, patched.enabled, patched.answer_timeout), (3, false, 45));
        assert!(store.authenticate(&account.sid, &token).await.unwrap().is_none());
        store.update_account(&account.sid, &AccountPatch { enabled: Some(true), ..Default::default() }).await.unwrap();
        let new = store.rotate_token(&account.sid).await.unwrap().unwrap();
        assert!(store.authenticate(&account.sid, &token).await.unwrap().is_none());
        assert!(store.authenticate(&account.sid, &new).await.unwrap().is_some());
        assert!(store.rotate_token("nobody").await.unwrap().is_none());
        assert!(store.list_accounts().await.unwrap().iter().any(|a| a.sid == account.sid));
    }
}

both_backends! {
    /// Applications are found only through their own account.
    async fn applications(db: TestDb) {
        let store = db.store().await;
        let (a, _) = store.create_account("a").await.unwrap();
        let (b, _) = store.create_account("b").await.unwrap();
        let settings = AppSettings { name: Some("x".into()), ..Default::default() };
        let app = store.create_app(&a.sid, &settings).await.unwrap();
        assert_eq!((app.cdr_batch_size, app.cdr_batch_window_ms, app.allowed_caller_ids.as_str()), (100, 1000, "[]"));
        assert!(app.may_display("123"));
        assert!(store.find_app(&a.sid, &app.app_id).await.unwrap().is_some());
        assert!(store.find_app(&b.sid, &app.app_id).await.unwrap().is_none());
        assert!(store.update_app(&b.sid, &app.app_id, &settings).await.unwrap().is_none());
        let ids = vec![voicepaas::domain::PhoneNumber::parse("f", "01011112222").unwrap()];
        let updated = store.update_app(&a.sid, &app.app_id, &AppSettings { allowed_caller_ids: Some(ids), ..Default::default() }).await.unwrap().unwrap();
        assert!(updated.may_display("01011112222") && !updated.may_display("123"));
        assert_eq!(updated.name, "x");
    }
}

both_backends! {
    /// Prompts: put, replace, list, exists, delete.
    async fn prompts(db: TestDb) {
        let store = db.store().await;
        let (a, _) = store.create_account("a").await.unwrap();
        let app = store.create_app(&a.sid, &AppSettings { name: Some("x".into()), ..Default::default() }).await.unwrap();
        let wav = voicepaas::domain::prompt::build_wav(8000, &[1; 4000]);
        let info = check_wav(&wav).unwrap();
        assert!(!store.prompt_exists(&app.app_id, "p.wav").await.unwrap());
        store.put_prompt(&app.app_id, "p.wav", &wav, info).await.unwrap();
        store.put_prompt(&app.app_id, "p.wav", &wav, info).await.unwrap();
        assert!(store.prompt_exists(&app.app_id, "p.wav").await.unwrap());
        let listed = store.list_prompts(&app.app_id).await.unwrap();
        assert_eq!((listed.len(), listed[0].duration_ms, listed[0].size_bytes), (1, 500, wav.len() as i64));
        assert!(store.delete_prompt(&app.app_id, "p.wav").await.unwrap());
        assert!(!store.prompt_exists(&app.app_id, "p.wav").await.unwrap());
        assert!(!store.delete_prompt(&app.app_id, "p.wav").await.unwrap());
    }
}

both_backends! {
    /// The accept writer: idempotency, queue room, captcha windows, cancel.
    async fn accept_writer(db: TestDb) {
        let store = db.store().await;
        let (a, _) = store.create_account("a").await.unwrap();
        let app = store.create_app(&a.sid, &AppSettings { name: Some("x".into()), ..Default::default() }).await.unwrap();
        let claim = |hash: &str| Some(IdempotencyClaim { key: "k".into(), request_hash: hash.into() });

        let mut first = acceptance(1, &a.sid, &app.app_id, "notice", "13800000001");
        first.idempotency = claim("h1");
        assert_eq!(store.accept(first).await.unwrap(), AcceptOutcome::Accepted);
        let mut repeat = acceptance(2, &a.sid, &app.app_id, "notice", "13800000001");
        repeat.idempotency = claim("h1");
        assert_eq!(store.accept(repeat).await.unwrap(), AcceptOutcome::Replayed("{\"n\":1}".into()));
        let mut other = acceptance(3, &a.sid, &app.app_id, "notice", "13800000001");
        other.idempotency = claim("h2");
        assert_eq!(store.accept(other).await.unwrap(), AcceptOutcome::KeyReused);
        assert!(store.calls_of_request("RQ00001202611210000000000000000002").await.unwrap().is_empty());

        let limits = CaptchaLimits { per_minute: 2, per_hour: 2, per_day: 2 };
        for (n, expected) in [(4, AcceptOutcome::Accepted), (5, AcceptOutcome::Accepted), (6, AcceptOutcome::CaptchaLimited(CaptchaWindow::Minute(2)))] {
            let mut c = acceptance(n, &a.sid, &app.app_id, "captcha", "13900000000");
            c.captcha_limits = Some(limits);
            assert_eq!(store.accept(c).await.unwrap(), expected);
        }

        store.update_account(&a.sid, &AccountPatch { max_queued_calls: Some(5), ..Default::default() }).await.unwrap();
        let mut conv = acceptance(7, &a.sid, &app.app_id, "click2call", "13800000009");
        conv.conversation_id = Some("CV00001202611210000000000000000007".into());
        conv.calls[0].conversation_id = conv.conversation_id.clone();
        assert_eq!(store.accept(conv).await.unwrap(), AcceptOutcome::Accepted);
        assert_eq!(store.accept(acceptance(8, &a.sid, &app.app_id, "notice", "1")).await.unwrap(), AcceptOutcome::Accepted);
        assert_eq!(store.accept(acceptance(9, &a.sid, &app.app_id, "notice", "1")).await.unwrap(), AcceptOutcome::QueueFull { limit: 5 });

        let cv = "CV00001202611210000000000000000007";
        assert_eq!(store.conversation_state(&a.sid, &app.app_id, cv).await.unwrap(), Some(ConversationState::Queued));
        // cancelCall before dialling claims the queued caller leg (once), freeing queue room.
        let claimed = store.claim_queued_conversation(cv, 7).await.unwrap().expect("claimed");
        assert_eq!((claimed.leg_seq, claimed.to_number.as_str()), (0, "13800000009"));
        assert!(store.claim_queued_conversation(cv, 7).await.unwrap().is_none());
        let legs = store.calls_of_request("RQ00001202611210000000000000000007").await.unwrap();
        assert_eq!(legs[0].state, "placing");
        assert_eq!(store.accept(acceptance(10, &a.sid, &app.app_id, "notice", "1")).await.unwrap(), AcceptOutcome::Accepted);
    }
}

both_backends! {
    /// Callbacks queued before hosts were recorded get theirs at start, so claims (which
    /// go host by host) find them.
    async fn pending_callbacks_get_their_host(db: TestDb) {
        let store = db.store().await;
        let (a, _) = store.create_account("a").await.unwrap();
        let app = store.create_app(&a.sid, &AppSettings { name: Some("x".into()), ..Default::default() }).await.unwrap();
        let row = voicepaas::store::journal::OutboxRow::new(&a.sid, &app.app_id, "result", "https://Hooks.Example.com:8443/r", &serde_json::json!({}), "CA1");
        store.queue_callbacks(&[row]).await.unwrap();
        db.exec("UPDATE outbox SET target_host = NULL").await;
        assert_eq!(store.fill_missing_hosts().await.unwrap(), 1);
        assert_eq!(db.text("SELECT target_host FROM outbox").await.as_deref(), Some("hooks.example.com"));
        assert_eq!(store.fill_missing_hosts().await.unwrap(), 0);
    }
}

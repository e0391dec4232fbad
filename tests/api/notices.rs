//! Voice notices and batch notices (API.md §2, §3).

use serde_json::json;

use crate::both_backends;

both_backends! {
    /// An accepted notice answers statuscode 0 with ids of the contract, and its call is
    /// stored, queued, before the answer.
    async fn accepted_notice_is_stored_before_the_answer(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.post(&app.account_path("VoiceNotices"), &app.notice("13800138000")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.code(), "0");
        assert_eq!(a.msg(), "succ");
        assert_id(&a.body["requestid"], "RQ");
        assert_id(&a.body["callid"], "CA");
        let calls = db.store().await.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].id.as_str(), calls[0].kind.as_str(), calls[0].to_number.as_str()),
                   (a.body["callid"].as_str().unwrap(), "notice", "13800138000"));
        assert!(LEG_STATES.contains(&calls[0].state.as_str()), "{}", calls[0].state);
    }
}

both_backends! {
    /// Each field rule answers -4 with a statusmsg naming the field, and nothing is stored.
    async fn field_rules(db: TestDb) {
        let app = db.spawn(&[]).await;
        let store = db.store().await;
        let path = app.account_path("VoiceNotices");
        let cases = [
            (json!({"contents": null}), "missing contents"),
            (json!({"contents": []}), "missing contents"),
            (json!({"to": null}), "missing to"),
            (json!({"to": "12"}), "invalid to: \"12\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"to": "+86 138"}), "invalid to: \"+86 138\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"from": "x123"}), "invalid from: \"x123\" (expected 3–20 ASCII digits, optionally after a leading +)"),
            (json!({"times": 0}), "times must be 1-3"),
            (json!({"times": "4"}), "times must be 1-3"),
            (json!({"finishkey": "ab"}), "finishkey must be one of 0-9 * # or any"),
            (json!({"repeatkey": "10"}), "repeatkey must be one of 0-9 * # or any"),
            (json!({"finishvoice": "bye.mp3"}), "invalid finishvoice: \"bye.mp3\" (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)"),
            (json!({"finishvoice": "bye.wav"}), "finishvoice: prompt bye.wav not found"),
            (json!({"userdata": "u".repeat(257)}), "userdata must be at most 256 bytes"),
            (json!({"contents": [{"type": "voice", "content": "hello.wav"}]}), "contents[0].content: prompt hello.wav not found"),
            (json!({"contents": [{"type": "time", "content": "2013-7-30"}]}), "invalid contents[0].content: \"2013-7-30\" (expected a date YYYY-MM-DD)"),
            (json!({"contents": [{"type": "money", "content": "-1"}]}), "invalid contents[0].content: \"-1\" (expected a decimal with at most 2 places)"),
            (json!({"contents": [{"type": "number", "content": "1.5"}]}), "invalid contents[0].content: \"1.5\" (expected an integer of at most 15 digits)"),
            (json!({"contents": [{"type": "digits", "content": "12a"}]}), "invalid contents[0].content: \"12a\" (expected 1-64 digits)"),
            (json!({"contents": [{"type": "tts", "content": "hi"}]}), "contents[0].type must be one of voice, time, money, number, digits"),
            (json!({"contents": [{"type": "digits"}]}), "missing contents[0].content"),
        ];
        for (patch, msg) in cases {
            let a = app.post(&path, &patched(app.notice("13800138000"), patch.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (200, "-4", msg), "{patch}");
            assert_id(&a.body["requestid"], "RQ");
            assert!(a.body.get("callid").is_none());
            let calls = store.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap();
            assert!(calls.is_empty());
        }
    }
}

both_backends! {
    /// Every optional field at once, with prompts the application has, is accepted.
    async fn full_notice_with_prompts(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.upload_prompt("hello.wav").await;
        app.upload_prompt("bye.wav").await;
        let body = json!({
            "appid": app.app_id, "to": "+8613800138000", "from": "01080001001", "userdata": "order-42 ✓",
            "times": "3", "finishkey": "#", "repeatkey": "any", "finishvoice": "bye.wav",
            "contents": [{"type": "voice", "content": "hello.wav"}, {"type": "time", "content": "2013-07-30"},
                         {"type": "money", "content": "2.14"}, {"type": "number", "content": 112}, {"type": "digits", "content": "0571"}],
            "somethingNew": {"ignored": true}
        });
        let a = app.post(&app.account_path("VoiceNotices"), &body).await;
        assert_eq!((a.code(), a.msg()), ("0", "succ"), "{}", a.body);
    }
}

both_backends! {
    /// `from` must be one of the application's allowed caller ids when it has a list.
    async fn caller_id_must_be_allowed(db: TestDb) {
        let app = db.spawn(&[]).await;
        let listed = app.create_app(&app.sid, json!({"name": "listed", "allowedCallerIds": ["01080001001"]})).await;
        let listed = listed["appId"].as_str().unwrap();
        let path = app.account_path("VoiceNotices");
        let body = patched(app.notice("13800138000"), json!({"appid": listed, "from": "01080009999"}));
        let a = app.post(&path, &body).await;
        assert_eq!((a.code(), a.msg()), ("-4", "from 01080009999 is not an allowed caller id of this application"));
        let a = app.post(&path, &patched(body, json!({"from": "01080001001"}))).await;
        assert_eq!(a.code(), "0");
    }
}

both_backends! {
    /// appid missing, malformed, unknown or of another account: -3.
    async fn appid_rules(db: TestDb) {
        let app = db.spawn(&[]).await;
        let (other_sid, _) = app.create_account("other").await;
        let foreign = app.create_app(&other_sid, json!({"name": "theirs"})).await;
        let path = app.account_path("VoiceNotices");
        for (appid, msg) in [
            (json!(null), "missing appid"),
            (json!(""), "missing appid"),
            (json!(12), "appid must be a string"),
            (json!("xyz"), "appid must be 32 hex digits"),
            (json!("0123456789abcdef0123456789abcdef"), "appid not found in this account"),
            (foreign["appId"].clone(), "appid not found in this account"),
        ] {
            let a = app.post(&path, &patched(app.notice("13800138000"), json!({"appid": appid}))).await;
            assert_eq!((a.code(), a.msg()), ("-3", msg), "{appid}");
            assert_id(&a.body["requestid"], "RQ");
        }
    }
}

both_backends! {
    /// A batch answers one call per distinct number, in the order given.
    async fn batch_notice(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("BatchVoiceNotices");
        let body = patched(app.notice(""), json!({"to": " 13800000001,13800000002 , 13800000001,13800000003,"}));
        let a = app.post(&path, &body).await;
        assert_eq!((a.code(), a.msg()), ("0", "succ"), "{}", a.body);
        let callids = a.body["callids"].as_array().unwrap();
        let to: Vec<&str> = callids.iter().map(|c| c["to"].as_str().unwrap()).collect();
        assert_eq!(to, ["13800000001", "13800000002", "13800000003"]);
        callids.iter().for_each(|c| assert_id(&c["callid"], "CA"));
        assert!(a.body.get("callid").is_none());
        let stored = db.store().await.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap();
        assert_eq!(stored.len(), 3);

        let a = app.post(&path, &patched(body.clone(), json!({"to": "13800000001,13800000002,1380000000x"}))).await;
        assert_eq!((a.code(), a.msg()), ("-4", "invalid to: \"1380000000x\" (expected 3–20 ASCII digits, optionally after a leading +)"));
        assert!(db.store().await.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap().is_empty());

        let many: Vec<String> = (0..1001).map(|i| format!("1390000{i:04}")).collect();
        let a = app.post(&path, &patched(body.clone(), json!({"to": many.join(",")}))).await;
        assert_eq!((a.code(), a.msg()), ("-4", "to must list at most 1000 numbers"));
        let a = app.post(&path, &patched(body, json!({"to": many[..1000].join(",")}))).await;
        assert_eq!(a.code(), "0");
        assert_eq!(a.body["callids"].as_array().unwrap().len(), 1000);
    }
}

both_backends! {
    /// A full queue answers -6; the limit counts calls, so a batch that would overflow
    /// it is refused whole.
    async fn queue_limit(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.occupy_line(&db.store().await).await;
        app.set_limits(json!({"maxQueuedCalls": 3})).await;
        let path = app.account_path("VoiceNotices");
        assert_eq!(app.post(&path, &app.notice("13800000001")).await.code(), "0");
        let batch = patched(app.notice(""), json!({"to": "13800000002,13800000003,13800000004"}));
        let a = app.post(&app.account_path("BatchVoiceNotices"), &batch).await;
        assert_eq!((a.code(), a.msg()), ("-6", "the account's call queue is full (3 calls)"));
        assert_eq!(app.post(&path, &app.notice("13800000002")).await.code(), "0");
        assert_eq!(app.post(&path, &app.notice("13800000003")).await.code(), "0");
        let a = app.post(&path, &app.notice("13800000004")).await;
        assert_eq!((a.code(), a.msg()), ("-6", "the account's call queue is full (3 calls)"));
        assert_id(&a.body["requestid"], "RQ");
    }
}

both_backends! {
    /// Many concurrent notices are all accepted, each with its own stored call.
    async fn concurrent_notices_share_commits(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        let bodies: Vec<_> = (0..200).map(|i| app.notice(&format!("1380000{i:04}"))).collect();
        let answers = futures_util::future::join_all(bodies.iter().map(|body| app.post(&path, body))).await;
        let store = db.store().await;
        let mut callids = std::collections::HashSet::new();
        for a in answers {
            assert_eq!(a.code(), "0", "{}", a.body);
            let calls = store.calls_of_request(a.body["requestid"].as_str().unwrap()).await.unwrap();
            assert_eq!(calls.len(), 1);
            callids.insert(calls[0].id.clone());
        }
        assert_eq!(callids.len(), 200);
    }
}

//! Bad input never gets a 5xx or a panic: each malformed request gets its statuscode and a
//! message naming the problem; a proptest throws arbitrary JSON at every endpoint.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestDb, patched};

both_backends! {
    /// Bodies that are not a JSON object are -2 (10002 for click-to-call).
    async fn not_a_json_object(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        for (content_type, body, msg) in [
            ("text/plain", b"{}".to_vec(), "Content-Type must be application/json"),
            ("application/x-www-form-urlencoded", b"to=1".to_vec(), "Content-Type must be application/json"),
            ("application/json", vec![0xff, 0xfe, b'{', b'}'], "body is not valid UTF-8"),
            ("application/json", b"[1,2]".to_vec(), "body must be a JSON object"),
            ("application/json", b"42".to_vec(), "body must be a JSON object"),
            ("application/json", b"null".to_vec(), "body must be a JSON object"),
            ("application/json; charset=utf-8", b"".to_vec(), "body is not valid JSON: EOF while parsing a value at line 1 column 0"),
        ] {
            let a = app.post_raw(&path, content_type, body).await;
            assert_eq!((a.status, a.code(), a.msg()), (200, "-2", msg), "{content_type}");
            assert_id(&a.body["requestid"], "RQ");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let a = app.post_raw(&path, "application/json", deep.into_bytes()).await;
        assert_eq!(a.code(), "-2");
        let a = app.post_raw(&app.ctc_path(), "application/json", b"[]".to_vec()).await;
        assert_eq!((a.code(), a.msg()), ("10002", "body must be a JSON object"));
    }
}

both_backends! {
    /// Fields of the wrong type, huge arrays, oversized userdata: -4 naming the field.
    async fn wrong_types_and_sizes(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.account_path("VoiceNotices");
        let huge: Vec<Value> = (0..10_000).map(|_| json!({"type": "digits", "content": "1"})).collect();
        for (patch, msg) in [
            (json!({"to": 13800138000u64}), "to must be a string"),
            (json!({"to": ["13800138000"]}), "to must be a string"),
            (json!({"to": vec!["1"; 10_000]}), "to must be a string"),
            (json!({"contents": {"type": "digits"}}), "contents must be an array"),
            (json!({"contents": huge}), "contents must have at most 20 items"),
            (json!({"contents": [42]}), "contents[0] must be an object with type and content"),
            (json!({"contents": [{"type": 1, "content": "1"}]}), "contents[0].type must be a string"),
            (json!({"contents": [{"type": "digits", "content": true}]}), "contents[0].content must be a string"),
            (json!({"times": [1]}), "times must be 1-3"),
            (json!({"times": 2.5}), "times must be 1-3"),
            (json!({"userdata": "x".repeat(300)}), "userdata must be at most 256 bytes"),
            (json!({"userdata": {"a": 1}}), "userdata must be a string"),
            (json!({"finishkey": 1}), "finishkey must be a string"),
        ] {
            let a = app.post(&path, &patched(app.notice("13800138000"), patch.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (200, "-4", msg), "{}", patch.to_string().chars().take(80).collect::<String>());
        }
    }
}

both_backends! {
    /// Bodies over 1 MiB get HTTP 413 with a JSON answer.
    async fn oversized_body(db: TestDb) {
        let app = db.spawn(&[]).await;
        let big = format!(r#"{{"userdata":"{}"}}"#, "x".repeat(1024 * 1024));
        let a = app.post_raw(&app.account_path("VoiceNotices"), "application/json", big.clone().into_bytes()).await;
        assert_eq!((a.status, a.code(), a.msg()), (413, "-4", "body is larger than 1048576 bytes"));
        let a = app.post_raw(&app.ctc_path(), "application/json", big.into_bytes()).await;
        assert_eq!((a.status, a.code()), (413, "10004"));
    }
}

/// Strings customers might send that could upset a careless implementation.
const NASTY: &[&str] = &[
    "'; DROP TABLE calls; --",
    "\" OR 1=1 --",
    "13800138000'--",
    "%00%27",
    "😀📞🎉",
    "中文字符",
    "\u{0}\u{1}\u{7f}",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "\\u0000",
];

both_backends! {
    /// SQL metacharacters and emoji in every string field: a clear answer, never a 5xx.
    async fn nasty_strings_in_every_field(db: TestDb) {
        let app = db.spawn(&[]).await;
        let notice = json!({"appid": app.app_id, "to": "13800138000", "from": "01080001001", "userdata": "u", "times": "2",
                            "finishkey": "1", "repeatkey": "2", "finishvoice": "x.wav",
                            "contents": [{"type": "digits", "content": "1"}]});
        let c2c = json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002", "callerCli": "1", "calleeCli": "1",
                         "greetVoice": "g.wav", "ringbackMode": "0", "ringbackVoice": "r.wav", "failVoice": "f.wav", "calleeVoice": "c.wav",
                         "callerVoice": "c.wav", "userData": "u", "statusUrl": "https://e.com", "cdrUrl": "https://e.com",
                         "record": "0", "maxDuration": "60", "lastMinVoice": "l.wav"});
        let captcha = json!({"appid": app.app_id, "code": "1234", "to": "13800138000", "from": "1", "lang": "zh", "userdata": "u"});
        let targets = [
            (app.account_path("VoiceNotices"), notice.clone()),
            (app.account_path("BatchVoiceNotices"), notice),
            (app.account_path("VoiceCaptchas"), captcha),
            (app.ctc_path(), c2c),
        ];
        for (path, body) in &targets {
            for field in body.as_object().unwrap().keys() {
                for nasty in NASTY {
                    let a = app.post(path, &patched(body.clone(), json!({ field.as_str(): nasty }))).await;
                    assert!(a.status < 500, "{path} {field}={nasty:?}: {}", a.status);
                    assert!(["0", "-3", "-4", "-6", "00000", "10003", "10004"].contains(&a.code()), "{path} {field}={nasty:?}: {}", a.body);
                }
            }
        }
        // Free text is accepted as is.
        let a = app.post(&targets[0].0, &patched(app.notice("13800138001"), json!({"userdata": "'; DROP TABLE calls; -- 😀"}))).await;
        assert_eq!(a.code(), "0");
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let strings = prop_oneof![
        Just(String::new()),
        "[0-9+]{0,22}",
        "\\PC{0,40}",
        proptest::sample::select(NASTY).prop_map(str::to_string),
        proptest::sample::select(
            &[
                "voice",
                "digits",
                "money",
                "time",
                "number",
                "click2call",
                "cancelCall",
                "addCall",
                "a.wav",
                "any",
                "zh"
            ][..]
        )
        .prop_map(str::to_string),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        strings.prop_map(Value::from),
    ];
    let keys = proptest::sample::select(
        &[
            "appid",
            "to",
            "from",
            "contents",
            "type",
            "content",
            "times",
            "finishkey",
            "repeatkey",
            "finishvoice",
            "userdata",
            "code",
            "lang",
            "action",
            "caller",
            "callee",
            "callerCli",
            "calleeCli",
            "greetVoice",
            "ringbackMode",
            "record",
            "maxDuration",
            "userData",
            "statusUrl",
            "timeout",
            "name",
            "cps",
            "enabled",
            "allowedCallerIds",
            "notifyUrl",
            "cdrBatchSize",
            "x",
        ][..],
    );
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            proptest::collection::btree_map(keys.clone().prop_map(str::to_string), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON, and valid bodies with one field replaced by arbitrary JSON, at every
/// endpoint that takes a body: never a 5xx.
#[test]
fn arbitrary_json_never_gets_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = TestDb::sqlite();
    let app: TestApp = rt.block_on(db.spawn(&[]));
    let conversation = rt.block_on(app.post(
        &app.ctc_path(),
        &json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"}),
    ));
    let conversation = conversation.body["conversationSid"]
        .as_str()
        .unwrap()
        .to_string();
    let customer: Vec<(String, Value)> = vec![
        (app.account_path("VoiceNotices"), app.notice("13800138000")),
        (
            app.account_path("BatchVoiceNotices"),
            app.notice("13800138000"),
        ),
        (
            app.account_path("VoiceCaptchas"),
            json!({"appid": app.app_id, "code": "1234", "to": "13800138000"}),
        ),
        (
            app.ctc_path(),
            json!({"action": "click2call", "caller": "13800000001", "callee": "13800000002"}),
        ),
        (
            format!("{}/{conversation}", app.ctc_path()),
            json!({"action": "addCall", "callee": "13800000003"}),
        ),
    ];
    // The operator half mutates an account of its own, so the customer half keeps working.
    let (victim, _) = rt.block_on(app.create_account("fuzzed"));
    let victim_app = rt.block_on(app.create_app(&victim, json!({"name": "fuzzed"})));
    let victim_app = victim_app["appId"].as_str().unwrap();
    let admin: Vec<(reqwest::Method, String)> = vec![
        (reqwest::Method::POST, "/admin/accounts".into()),
        (reqwest::Method::PATCH, format!("/admin/accounts/{victim}")),
        (
            reqwest::Method::POST,
            format!("/admin/accounts/{victim}/applications"),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/accounts/{victim}/applications/{victim_app}"),
        ),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        arbitrary_json(),
        0..customer.len() + admin.len(),
        any::<bool>(),
        any::<prop::sample::Index>(),
    );
    runner
        .run(&strategy, |(value, target, mutate, index)| {
            let status = rt.block_on(async {
                if target < customer.len() {
                    let (path, valid) = &customer[target];
                    let body = if mutate {
                        let keys: Vec<&String> = valid.as_object().unwrap().keys().collect();
                        patched(
                            valid.clone(),
                            json!({ keys[index.index(keys.len())].as_str(): value }),
                        )
                    } else {
                        value
                    };
                    app.post(path, &body).await.status
                } else {
                    let (method, path) = &admin[target - customer.len()];
                    app.admin(method.clone(), path, Some(value)).await.status
                }
            });
            prop_assert!(status < 500, "status {}", status);
            Ok(())
        })
        .unwrap();
    // Whatever the fuzzing did, the test account still works (past the 1 s account cache).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after = rt.block_on(app.post(
        &app.account_path("VoiceNotices"),
        &app.notice("13800138000"),
    ));
    assert_eq!(after.code(), "0", "{}", after.body);
    // Arbitrary bytes as prompt uploads.
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let prompt = format!(
        "/Accounts/{}/Applications/{}/Prompts/p.wav",
        app.sid, app.app_id
    );
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..2048), |bytes| {
            let a = rt.block_on(app.send(reqwest::Method::PUT, &prompt, Some(bytes)));
            prop_assert_eq!(a.status, 200);
            prop_assert!(a.code() == "-4" || a.code() == "0", "{}", a.body);
            Ok(())
        })
        .unwrap();
}

//! The agent management API (agents' contract §1–§3.1, §3.4, §3.5): agents, tokens,
//! caller-id pools and CTI settings, with the §2 statuscodes and HTTP statuses.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestDb;

fn time_shape(v: &Value) {
    let s = v.as_str().unwrap();
    assert!(
        s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()),
        "{s}"
    );
}

both_backends! {
    /// Create, read, change, list and delete an agent, with every field's default.
    async fn agent_lifecycle(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!", "name": "Li Lei"}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (201, "00000", "success"));
        let agent = &a.body["agent"];
        assert_eq!(agent["agentNo"], "1001");
        assert_eq!(agent["name"], "Li Lei");
        assert_eq!(agent["role"], "agent");
        assert_eq!(agent["phoneType"], 3);
        assert_eq!(agent["pstnNumber"], "");
        assert_eq!(agent["sipNumber"], "80000001");
        let sip_pwd = agent["sipPwd"].as_str().unwrap().to_string();
        assert!(sip_pwd.len() == 16 && sip_pwd.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(agent["queues"], json!([]));
        assert_eq!(agent["wrapupTime"], 15);
        assert_eq!(agent["autoAnswer"], false);
        assert_eq!(agent["callerIdPoolSid"], "");
        assert_eq!(agent["enabled"], true);
        assert!(agent.get("pwd").is_none());
        time_shape(&agent["createdAt"]);
        time_shape(&agent["updatedAt"]);
        let hash = db.text("SELECT pwd_hash FROM agents WHERE agent_no = '1001'").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "the password is kept as a slow salted hash");

        let a = app.cti(Method::GET, "Agents/1001", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        assert_eq!(&a.body["agent"], agent);

        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"name": "Han Meimei", "phoneType": 2,
            "pstnNumber": "13800138000", "wrapupTime": 0, "autoAnswer": true, "rotateSipPwd": true, "role": "supervisor"}))).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        let changed = &a.body["agent"];
        assert_eq!(changed["name"], "Han Meimei");
        assert_eq!(changed["phoneType"], 2);
        assert_eq!(changed["pstnNumber"], "13800138000");
        assert_eq!(changed["wrapupTime"], 0);
        assert_eq!(changed["autoAnswer"], true);
        assert_eq!(changed["role"], "supervisor");
        assert_eq!(changed["sipNumber"], "80000001");
        assert_ne!(changed["sipPwd"], sip_pwd.as_str(), "rotateSipPwd renews it");
        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"pstnNumber": ""}))).await;
        assert_eq!(a.body["agent"]["pstnNumber"], "");
        assert_eq!(a.body["agent"]["name"], "Han Meimei", "fields not given stay");

        // A second agent gets the next sipNumber; a given one is kept.
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1002", "pwd": "s3cret!"}))).await;
        assert_eq!(a.body["agent"]["sipNumber"], "80000002");
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "a_3", "pwd": "s3cret!", "sipNumber": "6001"}))).await;
        assert_eq!((a.status, a.body["agent"]["sipNumber"].as_str()), (201, Some("6001")));

        // Lists: keyset pages by agentNo; the last page has no cursor; filters.
        let a = app.cti(Method::GET, "Agents?pageSize=2", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        let nos: Vec<&str> = a.body["agents"].as_array().unwrap().iter().map(|x| x["agentNo"].as_str().unwrap()).collect();
        assert_eq!(nos, ["1001", "1002"]);
        let cursor = a.body["nextCursor"].as_str().unwrap().to_string();
        let a = app.cti(Method::GET, &format!("Agents?pageSize=2&cursor={cursor}"), None).await;
        let nos: Vec<&str> = a.body["agents"].as_array().unwrap().iter().map(|x| x["agentNo"].as_str().unwrap()).collect();
        assert_eq!(nos, ["a_3"]);
        assert!(a.body.get("nextCursor").is_none());
        let a = app.cti(Method::GET, "Agents?pageSize=3", None).await;
        assert!(a.body.get("nextCursor").is_none(), "a full last page has no cursor either");
        let a = app.cti(Method::GET, "Agents?role=supervisor", None).await;
        assert_eq!(a.body["agents"].as_array().unwrap().len(), 1);
        assert_eq!(a.body["agents"][0]["agentNo"], "1001");

        let a = app.cti(Method::DELETE, "Agents/1002", None).await;
        assert_eq!((a.status, a.code(), a.msg()), (200, "00000", "success"));
        let a = app.cti(Method::GET, "Agents/1002", None).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "20001", "agent not found"));
        let a = app.cti(Method::DELETE, "Agents/1002", None).await;
        assert_eq!((a.status, a.code()), (404, "20001"));
        // Numbers once handed out are not handed out again.
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1004", "pwd": "s3cret!"}))).await;
        assert_eq!(a.body["agent"]["sipNumber"], "80000003");
    }
}

both_backends! {
    /// Every refusal of the agent endpoints: its statusCode, statusMsg and HTTP status.
    async fn agent_refusals(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!", "sipNumber": "7001"}))).await;
        assert_eq!(a.status, 201);
        let cases = [
            (json!({"agentNo": "1001", "pwd": "s3cret!"}), 409, "20002", "agentNo already exists in this application"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "sipNumber": "7001"}), 409, "20007", "sipNumber already in use"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "queues": [{"queueSid": "QU00001202611300000000000000000001"}]}), 404, "20003", "queue not found"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "callerIdPoolSid": "CP00001202611300000000000000000001"}), 404, "20006", "caller-id pool not found"),
            (json!({"agentNo": "1002"}), 400, "10004", "missing pwd"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "wrapupTime": -1}), 400, "10004", "wrapupTime must be 0-3600"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "wrapUpTime": 5}), 400, "10004",
                "unknown field \"wrapUpTime\" (known: agentNo, name, pwd, role, phoneType, pstnNumber, sipNumber, queues, wrapupTime, autoAnswer, callerIdPoolSid, enabled)"),
            (json!({"agentNo": "1002", "pwd": "s3cret!", "pstnNumber": "phone"}), 400, "10004",
                "invalid pstnNumber: \"phone\" (expected 3–20 ASCII digits, optionally after a leading +)"),
        ];
        for (body, status, code, msg) in cases {
            let a = app.cti(Method::POST, "Agents", Some(body.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (status, code, msg), "{body}");
        }
        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"sipNumber": "7002"}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "sipNumber cannot be changed (delete and create the agent)"));
        let a = app.cti(Method::PATCH, "Agents/nobody", Some(json!({"name": "x"}))).await;
        assert_eq!((a.status, a.code()), (404, "20001"));
        let a = app.cti(Method::GET, "Agents/no%20such", None).await;
        assert_eq!((a.status, a.code()), (404, "20001"));
        let a = app.cti(Method::GET, "Agents?pageSize=0", None).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "pageSize must be 1-1000"));
        let a = app.cti(Method::GET, "Agents?cursor=!!", None).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "cursor is not one this API gave"));

        // 10001 (401), 10002 (400), 10003 (404), an unknown version (404).
        let path = app.cti_path("Agents");
        let a = app.post_as(&path, &json!({"agentNo": "x", "pwd": "s3cret!"}), &app.sid, "wrong", &[]).await;
        assert_eq!((a.status, a.code()), (401, "10001"));
        let a = app.post_raw(&path, "application/json", b"{".to_vec()).await;
        assert_eq!((a.status, a.code()), (400, "10002"));
        let (other, _) = app.create_account("other").await;
        let theirs = app.create_app(&other, json!({"name": "t"})).await;
        let a = app.send(Method::GET, &format!("/v1/Accounts/{}/Applications/{}/Agents", app.sid, theirs["appId"].as_str().unwrap()), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "10003", "applicationSid not found in this account"));
        let a = app.send(Method::GET, &format!("/v9/Accounts/{}/Applications/{}/Agents", app.sid, app.app_id), None).await;
        assert_eq!((a.status, a.code()), (404, "10004"));
        let a = app.send(Method::PUT, &path, None).await;
        assert_eq!((a.status, a.code()), (405, "10004"));
        assert_eq!(a.headers["allow"], "POST, GET");
    }
}

both_backends! {
    /// Queue memberships name queues of the same application only; the list filters by them.
    async fn memberships(db: TestDb) {
        let app = db.spawn(&[]).await;
        let mine = &crate::queues::create_queue(&app, json!({"name": "mine"})).await;
        let other = app.create_app(&app.sid, json!({"name": "other"})).await["appId"].as_str().unwrap().to_string();
        let a = app.cti_in(&other, Method::POST, "Queues", Some(json!({"name": "theirs"}))).await;
        let other_app = a.body["queue"]["queueSid"].as_str().unwrap();
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!", "queues": [{"queueSid": mine, "skillLevel": 9}]}))).await;
        assert_eq!(a.status, 201);
        assert_eq!(a.body["agent"]["queues"], json!([{"queueSid": mine, "skillLevel": 9}]));
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1002", "pwd": "s3cret!", "queues": [{"queueSid": other_app}]}))).await;
        assert_eq!((a.status, a.code()), (404, "20003"), "sids never cross applications");
        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1002", "pwd": "s3cret!"}))).await;
        assert_eq!(a.status, 201);
        let a = app.cti(Method::GET, &format!("Agents?queueSid={mine}"), None).await;
        assert_eq!(a.body["agents"].as_array().unwrap().len(), 1);
        assert_eq!(a.body["agents"][0]["queues"][0]["skillLevel"], 9);
        let a = app.cti(Method::PATCH, "Agents/1002", Some(json!({"queues": [{"queueSid": mine}]}))).await;
        assert_eq!(a.body["agent"]["queues"], json!([{"queueSid": mine, "skillLevel": 5}]));
        let a = app.cti(Method::PATCH, "Agents/1001", Some(json!({"queues": []}))).await;
        assert_eq!(a.body["agent"]["queues"], json!([]));
        let a = app.cti(Method::GET, &format!("Agents?queueSid={mine}"), None).await;
        let nos: Vec<&str> = a.body["agents"].as_array().unwrap().iter().map(|x| x["agentNo"].as_str().unwrap()).collect();
        assert_eq!(nos, ["1002"]);
    }
}

both_backends! {
    /// Caller-id pools: one default, numbers within allowedCallerIds, no delete while named.
    async fn caller_id_pools(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.cti(Method::POST, "CallerIdPools", Some(json!({"name": "hq", "numbers": ["01088880000"], "default": true}))).await;
        assert_eq!((a.status, a.code()), (201, "00000"));
        let first = a.body["callerIdPool"]["poolSid"].as_str().unwrap().to_string();
        assert_id(&a.body["callerIdPool"]["poolSid"], "CP");
        assert_eq!(a.body["callerIdPool"]["numbers"], json!(["01088880000"]));
        assert_eq!(a.body["callerIdPool"]["default"], true);
        let a = app.cti(Method::POST, "CallerIdPools", Some(json!({"name": "branch", "numbers": ["02188880000", "02188880001"], "default": true}))).await;
        let second = a.body["callerIdPool"]["poolSid"].as_str().unwrap().to_string();
        let a = app.cti(Method::GET, &format!("CallerIdPools/{first}"), None).await;
        assert_eq!(a.body["callerIdPool"]["default"], false, "one default at most");
        let a = app.cti(Method::GET, "CallerIdPools", None).await;
        assert_eq!(a.body["callerIdPools"].as_array().unwrap().len(), 2);

        let a = app.cti(Method::PATCH, &format!("CallerIdPools/{first}"), Some(json!({"default": true, "name": "HQ"}))).await;
        assert_eq!((a.body["callerIdPool"]["default"].as_bool(), a.body["callerIdPool"]["name"].as_str()), (Some(true), Some("HQ")));
        let a = app.cti(Method::GET, &format!("CallerIdPools/{second}"), None).await;
        assert_eq!(a.body["callerIdPool"]["default"], false);

        let a = app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!", "callerIdPoolSid": second}))).await;
        assert_eq!(a.body["agent"]["callerIdPoolSid"], second.as_str());
        let a = app.cti(Method::DELETE, &format!("CallerIdPools/{second}"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (409, "20004", "caller-id pool in use by agent 1001"));
        app.cti(Method::PATCH, "Agents/1001", Some(json!({"callerIdPoolSid": ""}))).await;
        let a = app.cti(Method::DELETE, &format!("CallerIdPools/{second}"), None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        let a = app.cti(Method::GET, &format!("CallerIdPools/{second}"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "20006", "caller-id pool not found"));

        // Numbers must be among the application's allowed caller ids when it lists any.
        app.admin(Method::PATCH, &format!("/admin/accounts/{}/applications/{}", app.sid, app.app_id), Some(json!({"allowedCallerIds": ["01088880000"]}))).await;
        let a = app.cti(Method::POST, "CallerIdPools", Some(json!({"name": "x", "numbers": ["01099990000"]}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (403, "20008", "displayNum not allowed for this application"));
        let a = app.cti(Method::POST, "CallerIdPools", Some(json!({"name": "x"}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "missing numbers"));
    }
}

both_backends! {
    /// CTI settings: defaults, a change by the customer and one by the operator, refusals.
    async fn cti_settings(db: TestDb) {
        let app = db.spawn(&[]).await;
        let a = app.cti(Method::GET, "CtiSettings", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        assert_eq!(a.body["ctiSettings"], json!({"eventUrl": "", "eventFormat": "json", "encryptNumber": false,
            "recordAgentCalls": false, "agentRingTimeout": 20, "maxCallDuration": 0, "musicOnHold": "", "allowedOrigins": []}));
        app.upload_prompt("hold.wav").await;
        let a = app.cti(Method::PATCH, "CtiSettings", Some(json!({"eventUrl": "https://events.example.com/cti", "eventFormat": "astercc",
            "encryptNumber": true, "agentRingTimeout": 30, "maxCallDuration": 3600, "musicOnHold": "hold.wav",
            "allowedOrigins": ["https://crm.example.com"]}))).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "{}", a.msg());
        assert_eq!(a.body["ctiSettings"], json!({"eventUrl": "https://events.example.com/cti", "eventFormat": "astercc", "encryptNumber": true,
            "recordAgentCalls": false, "agentRingTimeout": 30, "maxCallDuration": 3600, "musicOnHold": "hold.wav",
            "allowedOrigins": ["https://crm.example.com"]}));
        for (body, msg) in [
            (json!({"musicOnHold": "nope.wav"}), "unknown prompt nope.wav"),
            (json!({"agentRingTimeout": 121}), "agentRingTimeout must be 5-120"),
            (json!({"eventFormat": "xml"}), "invalid eventFormat: \"xml\" (json or astercc)"),
            (json!({"ringTimeout": 5}), "unknown field \"ringTimeout\" (known: eventUrl, eventFormat, encryptNumber, recordAgentCalls, agentRingTimeout, maxCallDuration, musicOnHold, allowedOrigins)"),
        ] {
            let a = app.cti(Method::PATCH, "CtiSettings", Some(body.clone())).await;
            assert_eq!((a.status, a.code(), a.msg()), (400, "10004", msg), "{body}");
        }
        // The operator sets the same fields on the application.
        let a = app.admin(Method::PATCH, &format!("/admin/accounts/{}/applications/{}", app.sid, app.app_id),
            Some(json!({"recordAgentCalls": true, "eventUrl": ""}))).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["ctiSettings"]["recordAgentCalls"], true);
        let a = app.cti(Method::GET, "CtiSettings", None).await;
        assert_eq!((a.body["ctiSettings"]["recordAgentCalls"].as_bool(), a.body["ctiSettings"]["eventUrl"].as_str()), (Some(true), Some("")));
        assert_eq!(a.body["ctiSettings"]["agentRingTimeout"], 30, "fields not given stay");
    }
}

both_backends! {
    /// Agent tokens: minted with a ttl, kept only as a hash, revoked all at once.
    async fn agent_tokens(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!"}))).await;
        let a = app.cti(Method::POST, "Agents/1001/Tokens", Some(json!({"ttl": 60}))).await;
        assert_eq!((a.status, a.code()), (201, "00000"));
        let token = a.body["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("agt_") && token.len() == 52, "{token}");
        time_shape(&a.body["expiresAt"]);
        let stored = db.text("SELECT token_hash FROM agent_tokens").await.unwrap();
        assert!(!stored.contains(&token[4..]), "stored hashed");
        let a = app.cti(Method::POST, "Agents/1001/Tokens", Some(json!({}))).await;
        assert_eq!(a.status, 201, "ttl defaults to 600");
        for ttl in [59, 86_401] {
            let a = app.cti(Method::POST, "Agents/1001/Tokens", Some(json!({"ttl": ttl}))).await;
            assert_eq!((a.status, a.code(), a.msg()), (400, "10004", "ttl must be 60-86400"));
        }
        let a = app.cti(Method::POST, "Agents/1002/Tokens", Some(json!({}))).await;
        assert_eq!((a.status, a.code()), (404, "20001"));
        let a = app.cti(Method::DELETE, "Agents/1001/Tokens", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        assert_eq!(db.text("SELECT CAST(COUNT(*) AS TEXT) FROM agent_tokens").await.as_deref(), Some("0"));
    }
}

both_backends! {
    /// Creates honour Idempotency-Key: a repeat gets the first answer, another body 10004.
    async fn idempotent_agent_create(db: TestDb) {
        let app = db.spawn(&[]).await;
        let path = app.cti_path("Agents");
        let body = json!({"agentNo": "1001", "pwd": "s3cret!"});
        let first = app.post_as(&path, &body, &app.sid, &app.token, &[("Idempotency-Key", "k1")]).await;
        assert_eq!(first.status, 201);
        let again = app.post_as(&path, &body, &app.sid, &app.token, &[("Idempotency-Key", "k1")]).await;
        assert_eq!((again.status, &again.body), (201, &first.body));
        assert_eq!(again.headers["idempotent-replayed"], "true");
        let other = app.post_as(&path, &json!({"agentNo": "1002", "pwd": "s3cret!"}), &app.sid, &app.token, &[("Idempotency-Key", "k1")]).await;
        assert_eq!((other.status, other.code(), other.msg()), (400, "10004", "Idempotency-Key was already used with a different request"));
    }
}

//! Inbound numbers (agents' contract §3.3): the operator's grants (API and CLI) and the
//! customer's routes, with every refusal.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestDb;
use crate::queues::create_queue;

both_backends! {
    /// Grants: 201 then 200, the list by account, revocation; routes need a grant of the
    /// same account and belong to one application at a time.
    async fn grants_and_routes(db: TestDb) {
        let app = db.spawn(&[]).await;
        let grant = |number: &str, sid: &str| {
            let (app, path, sid) = (&app, format!("/admin/numbers/{number}"), sid.to_string());
            async move { app.admin(Method::PUT, &path, Some(json!({"accountSid": sid}))).await }
        };
        let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "hangup"}}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (404, "20005", "number not granted to this account"));
        let a = grant("4008001000", &app.sid).await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!((a.body["number"].as_str(), a.body["accountSid"].as_str(), a.body["appSid"].as_str()),
                   (Some("4008001000"), Some(app.sid.as_str()), Some("")));
        assert_eq!(grant("4008001000", &app.sid).await.status, 200, "granting again changes nothing");
        let a = grant("40080x", &app.sid).await;
        assert_eq!(a.status, 400);
        let a = grant("4008001001", "AC-nobody").await;
        assert_eq!(a.status, 404);

        let queue = create_queue(&app, json!({"name": "sales"})).await;
        app.upload_prompt("welcome.wav").await;
        let routing = json!({"name": "hotline", "welcomePrompt": "welcome.wav", "route": {"type": "queue", "queueSid": queue}});
        let a = app.cti(Method::PUT, "Numbers/4008001000", Some(routing.clone())).await;
        assert_eq!((a.status, a.code()), (201, "00000"), "{}", a.body);
        let number = a.body["number"].clone();
        assert_eq!((&number["number"], &number["name"], &number["welcomePrompt"], &number["route"]),
                   (&json!("4008001000"), &json!("hotline"), &json!("welcome.wav"), &routing["route"]));
        assert_eq!(number["createdAt"].as_str().unwrap().len(), 14);
        let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "hangup", "prompt": ""}}))).await;
        assert_eq!((a.status, a.code()), (200, "00000"), "a replacement answers 200");
        assert_eq!(a.body["number"]["name"], "", "a PUT replaces the whole routing");
        assert_eq!(a.body["number"]["createdAt"], number["createdAt"]);
        let a = app.cti(Method::GET, "Numbers/4008001000", None).await;
        assert_eq!(a.body["number"]["route"], json!({"type": "hangup", "prompt": ""}));
        let a = app.admin(Method::GET, &format!("/admin/numbers?accountSid={}", app.sid), None).await;
        assert_eq!(a.body["numbers"][0]["appSid"], app.app_id.as_str());

        // Another application of the same account: 20004 while the first routes it.
        let other = app.create_app(&app.sid, json!({"name": "other"})).await["appId"].as_str().unwrap().to_string();
        let a = app.cti_in(&other, Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "hangup"}}))).await;
        assert_eq!((a.status, a.code(), a.msg()), (409, "20004", "number routed by another application"));
        let a = app.cti_in(&other, Method::GET, "Numbers/4008001000", None).await;
        assert_eq!((a.status, a.code()), (404, "20005"));
        let a = app.cti(Method::DELETE, "Numbers/4008001000", None).await;
        assert_eq!((a.status, a.code()), (200, "00000"));
        let a = app.cti(Method::DELETE, "Numbers/4008001000", None).await;
        assert_eq!((a.status, a.code()), (404, "20005"));
        let a = app.cti_in(&other, Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "hangup"}}))).await;
        assert_eq!((a.status, a.code()), (201, "00000"), "free again once unrouted");

        // Moving the grant to another account drops the route; revoking ends the grant.
        let (second, _) = app.create_account("second").await;
        assert_eq!(grant("4008001000", &second).await.status, 201);
        let a = app.cti_in(&other, Method::GET, "Numbers/4008001000", None).await;
        assert_eq!((a.status, a.code()), (404, "20005"));
        let a = app.admin(Method::GET, "/admin/numbers", None).await;
        assert_eq!(a.body["numbers"], json!([{"number": "4008001000", "accountSid": second, "grantedAt": a.body["numbers"][0]["grantedAt"], "appSid": ""}]));
        assert_eq!(app.admin(Method::DELETE, "/admin/numbers/4008001000", None).await.status, 200);
        assert_eq!(app.admin(Method::DELETE, "/admin/numbers/4008001000", None).await.status, 404);
    }
}

both_backends! {
    /// Every route shape; what a route names must exist in the application; a routed
    /// queue cannot be deleted.
    async fn route_shapes_and_references(db: TestDb) {
        let app = db.spawn(&[]).await;
        for n in ["4008001000", "4008001001", "4008001002"] {
            app.admin(Method::PUT, &format!("/admin/numbers/{n}"), Some(json!({"accountSid": app.sid}))).await;
        }
        let queue = create_queue(&app, json!({"name": "sales"})).await;
        app.cti(Method::POST, "Agents", Some(json!({"agentNo": "1001", "pwd": "s3cret!"}))).await;
        app.upload_prompt("menu.wav").await;
        let menu = json!({"type": "menu", "prompt": "menu.wav", "keys": {
            "1": {"type": "queue", "queueSid": queue},
            "2": {"type": "agent", "agentNo": "1001", "fallback": {"type": "queue", "queueSid": queue}},
            "#": {"type": "hangup", "prompt": ""}}, "timeout": 5, "tries": 2,
            "default": {"type": "hangup", "prompt": ""}});
        let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"route": menu}))).await;
        assert_eq!((a.status, &a.body["number"]["route"]), (201, &menu), "{}", a.body);
        let a = app.cti(Method::PUT, "Numbers/4008001001", Some(json!({"route": {"type": "agent", "agentNo": "1001"}}))).await;
        assert_eq!(a.body["number"]["route"], json!({"type": "agent", "agentNo": "1001", "fallback": {"type": "hangup", "prompt": ""}}));
        let a = app.cti(Method::GET, "Numbers?pageSize=1", None).await;
        assert_eq!(a.body["numbers"][0]["number"], "4008001000");
        let a = app.cti(Method::GET, &format!("Numbers?pageSize=1&cursor={}", a.body["nextCursor"].as_str().unwrap()), None).await;
        assert_eq!(a.body["numbers"][0]["number"], "4008001001");
        assert!(a.body.get("nextCursor").is_none());

        for (route, status, code, msg) in [
            (json!({"type": "queue", "queueSid": "QU00001202611300000000000000000009"}), 404, "20003", "queue not found"),
            (json!({"type": "agent", "agentNo": "9999"}), 404, "20001", "agent not found"),
            (json!({"type": "hangup", "prompt": "gone.wav"}), 400, "10004", "unknown prompt gone.wav"),
            (json!({"type": "menu", "prompt": "menu.wav", "keys": {"1": {"type": "menu"}}, "default": {"type": "hangup"}}),
             400, "10004", "route.keys.1.type must be queue, agent or hangup"),
            (json!({"type": "forward", "to": "13800138000"}), 400, "10004", "route.type must be queue, agent, menu or hangup"),
        ] {
            let a = app.cti(Method::PUT, "Numbers/4008001002", Some(json!({"route": route}))).await;
            assert_eq!((a.status, a.code(), a.msg()), (status, code, msg), "{route}");
        }
        let a = app.cti(Method::PUT, "Numbers/not-a-number", Some(json!({"route": {"type": "hangup"}}))).await;
        assert_eq!((a.status, a.code()), (404, "20005"));

        let a = app.cti(Method::DELETE, &format!("Queues/{queue}"), None).await;
        assert_eq!((a.status, a.code(), a.msg()), (409, "20004", "queue in use by the route of number 4008001000"));
    }
}

both_backends! {
    /// `voicepaas number grant|list|revoke` print what the operator API answers.
    async fn number_cli(db: TestDb) {
        let app = db.spawn(&[]).await;
        let run = |args: &[&str]| crate::cli::voicepaas(&db, args);
        let (code, grant, err) = run(&["number", "grant", "4008001000", "--account", &app.sid]);
        assert_eq!(code, 0, "{err}");
        assert_eq!((grant["number"].as_str(), grant["accountSid"].as_str()), (Some("4008001000"), Some(app.sid.as_str())));
        let (code, _, err) = run(&["number", "grant", "40x", "--account", &app.sid]);
        assert_eq!(code, 1);
        assert!(err.contains("invalid number"), "{err}");
        let (_, list, _) = run(&["number", "list", "--account", &app.sid]);
        assert_eq!(list["numbers"].as_array().unwrap().len(), 1);
        let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"route": {"type": "hangup"}}))).await;
        assert_eq!(a.status, 201, "a CLI grant is the same grant");
        let (code, _, _) = run(&["number", "revoke", "4008001000"]);
        assert_eq!(code, 0);
        let (code, _, err) = run(&["number", "revoke", "4008001000"]);
        assert_eq!(code, 1);
        assert!(err.contains("not granted"), "{err}");
    }
}

both_backends! {
    /// Odd bytes in every field of queues, routes and grants get a 4xx naming the field,
    /// never a 5xx, on both backends.
    async fn hostile_values_are_refused_by_name(db: TestDb) {
        let app = db.spawn(&[]).await;
        app.admin(Method::PUT, "/admin/numbers/4008001000", Some(json!({"accountSid": app.sid}))).await;
        let odd = ["\u{0}", "a\u{0}b", "\u{202e}evil", "QU\u{0}0000000000000000000000000000000", &"9".repeat(5000)];
        for value in odd {
            for body in [
                json!({"name": value}),
                json!({"name": "q", "strategy": value}),
                json!({"name": "q", "musicOnHold": value}),
                json!({"name": "q", "overflow": {"type": "queue", "queueSid": value}}),
                json!({"name": "q", "overflow": {"type": "hangup", "prompt": value}}),
                json!({"name": "q", "announce": {"everySeconds": 30, "prompt": value}}),
                json!({"name": ["q"]}),
            ] {
                let a = app.cti(Method::POST, "Queues", Some(body.clone())).await;
                assert!(a.status < 500, "{body}: {} {}", a.status, a.body);
                // A name is free text (a bidi mark is kept, as in account names); the
                // other fields have shapes.
                let free_text = body.get("strategy").is_none() && body["name"] == json!(value) && value.starts_with('\u{202e}');
                assert!(a.status != 201 || free_text, "{body}");
            }
            for route in [
                json!({"type": "queue", "queueSid": value}),
                json!({"type": "agent", "agentNo": value}),
                json!({"type": "hangup", "prompt": value}),
                json!({"type": value}),
                json!({"type": "menu", "prompt": "m.wav", "keys": {value: {"type": "hangup"}}, "default": {"type": "hangup"}}),
            ] {
                let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"route": route}))).await;
                assert!(a.status < 500 && a.status != 201, "{route}: {} {}", a.status, a.body);
            }
            let a = app.cti(Method::PUT, "Numbers/4008001000", Some(json!({"name": value, "route": {"type": "hangup"}}))).await;
            assert!(a.status < 500, "{} {}", a.status, a.body);
            let a = app.admin(Method::PUT, "/admin/numbers/4008001001", Some(json!({"accountSid": value}))).await;
            assert_eq!(a.status, 404, "{}", a.body);
            let a = app.admin(Method::POST, "/admin/sandbox/inbound", Some(json!({"from": value, "to": "4008001000"}))).await;
            assert_eq!(a.status, 400, "{}", a.body);
        }
        for path in ["Queues/%00", "Queues/QU%00/Live", "Numbers/%00", "Numbers/%E2%80%AE1"] {
            let a = app.cti(Method::GET, path, None).await;
            assert!(a.status < 500, "{path}: {} {}", a.status, a.body);
        }
        let a = app.admin(Method::GET, "/admin/numbers?accountSid=%00&cursor=%00", None).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
}

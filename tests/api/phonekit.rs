//! PhoneKit (agents' contract §13): the files served compiled in, the sandbox-only demo
//! backend, and the toolbar in headless Chromium driven by `tests/console/phonekit.mjs`
//! (playwright-core from npm, Debian's chromium) as an agent, a second agent and a
//! supervisor use it. Set `VOICEPAAS_SCREENSHOTS=<dir>` to keep a screenshot of each state
//! (docs/ has them). Without node, playwright-core or chromium it prints SKIPPED, unless
//! CI is set.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;

/// `GET path` on `app`: status, content-type, body.
async fn fetch(app: &TestApp, path: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(format!("{}{path}", app.address))
        .await
        .expect("GET");
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, r.bytes().await.unwrap().to_vec())
}

/// `method path` on `app` with a JSON body and no credentials: status and JSON answer.
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, format!("{}{path}", app.address));
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

both_backends! {
    /// The SDK's files are served as they are to be copied: the SDK with exactly the
    /// seed's methods and one per command, JsSIP 3.3.6 with its licences, the toolbar
    /// page, a real WAV ring tone.
    async fn the_phonekit_files_are_served(db: TestDb) {
        let app = db.spawn(&[]).await;
        let (status, kind, sdk) = fetch(&app, "/PhoneKit/js/PhoneKit.js").await;
        assert_eq!((status, kind.as_str()), (200, "text/javascript; charset=utf-8"));
        let sdk = String::from_utf8(sdk).unwrap();
        for method in ["initial", "login", "logout", "ready", "pause", "callOut", "hangup", "bridge", "holdCall",
                       "retrieveCall", "answer", "transfer", "consult", "consultTransfer", "consultConference",
                       "cancelConsult", "setUserData", "sendDtmf", "getState", "ping", "monitor", "whisper", "barge",
                       "intercept", "forceHangup", "forceReady", "forcePause", "forceLogout", "monitorQueues",
                       "unmonitorQueues"] {
            assert!(sdk.contains(&format!("'{method}'")) || sdk.contains(&format!("{method}:")), "PhoneKit.{method}");
        }
        for callback in ["onStatusEvent", "onCallEvent", "onConnEvent", "onQueueEvent", "tokenProvider", "destroy"] {
            assert!(sdk.contains(callback), "{callback}");
        }
        let (status, kind, jssip) = fetch(&app, "/PhoneKit/js/jssip-3.3.6.min.js").await;
        assert_eq!((status, kind.as_str()), (200, "text/javascript; charset=utf-8"));
        let jssip = String::from_utf8(jssip).unwrap();
        assert!(jssip.starts_with("/*! JsSIP v3.3.6") && jssip.contains("window.JsSIP") , "{}", &jssip[..200]);
        let (status, _, licences) = fetch(&app, "/PhoneKit/LICENSES.txt").await;
        assert_eq!(status, 200);
        let licences = String::from_utf8(licences).unwrap();
        for dep in ["jssip 3.3.6 (MIT)", "debug", "sdp-transform", "events"] {
            assert!(licences.contains(dep), "{dep}");
        }
        let (status, kind, page) = fetch(&app, "/PhoneKit/template/template.html").await;
        assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
        let page = String::from_utf8(page).unwrap();
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "self-contained");
        let (status, kind, wav) = fetch(&app, "/PhoneKit/res/ring.wav").await;
        assert_eq!((status, kind.as_str()), (200, "audio/wav"));
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
    }
}

both_backends! {
    /// The demo's backend exists only with the sandbox; with it, it sets up one demo
    /// application (once, however often asked) and hands out working socket tokens.
    async fn the_demo_is_sandbox_only(db: TestDb) {
        let real = db.spawn(&[("VOICEPAAS_MEDIA", "esl://:ClueCon@127.0.0.1:9")]).await;
        for (method, path) in [(Method::GET, "/PhoneKit/demo.html"), (Method::POST, "/PhoneKit/demo/agent"), (Method::POST, "/PhoneKit/demo/call")] {
            let (status, body) = call(&real, method, path, None).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        drop(real);
        let app = db.spawn(&[]).await;
        let (status, first) = call(&app, Method::POST, "/PhoneKit/demo/agent", Some(json!({}))).await;
        assert_eq!(status, 200, "{first}");
        let (status, again) = call(&app, Method::POST, "/PhoneKit/demo/agent", Some(json!({"agentNo": "9001"}))).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(first["appSid"], again["appSid"], "one demo");
        assert_eq!(first["agentNo"], "1001");
        assert_ne!(first["token"], again["token"]);
        let (status, bad) = call(&app, Method::POST, "/PhoneKit/demo/agent", Some(json!({"agentNo": "1"}))).await;
        assert_eq!(status, 400, "{bad}");
        // The token opens 1001's socket.
        let app_sid = first["appSid"].as_str().unwrap();
        let mut socket = crate::agent_client::AgentSocket::open(&app.address, app_sid, "1001").await;
        let auth = socket.request("auth", json!({"token": first["token"]})).await;
        assert_eq!(auth["statusCode"], "00000", "{auth}");
        assert_eq!(auth["data"]["name"], "Li Lei");
        let (status, placed) = call(&app, Method::POST, "/PhoneKit/demo/call", None).await;
        assert_eq!(status, 201, "{placed}");
        assert_eq!(placed["to"], "4000000000");
        assert!(placed["callSid"].as_str().unwrap().starts_with("CA"), "{placed}");
    }
}

both_backends! {
    /// The toolbar as people use it (see the module's doc): every step's state and buttons
    /// in the browser, then the events the agent's page got against its session's own.
    async fn the_toolbar_serves_agents_and_supervisors(db: TestDb) {
        if !browser_ready("api::phonekit") {
            return;
        }
        let app = db.spawn(&[("VOICEPAAS_SANDBOX_SPEED", "1")]).await;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/phonekit.mjs");
        let shots = std::env::var("VOICEPAAS_SCREENSHOTS").unwrap_or_default();
        let out = Command::new("node").arg(script).args([&app.address, &shots]).output().expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(shown["errors"], json!([]), "{shown}");
        assert_eq!(shown["ringingNumber"], "138****8000", "masked: {shown}");
        assert!(shown["heldState"].as_str().unwrap().starts_with("held"), "{shown}");
        assert_eq!(shown["supervisorCall"], "connected · whispering to 1001", "{shown}");
        assert!(shown["supervisorQueue"].as_str().unwrap().starts_with("demo — waiting 0"), "{shown}");
        assert_eq!(shown["consulting"], "held · agent · consulting 1002 (connected)", "{shown}");
        assert_eq!(shown["wrapup"], "wrap-up ends in 0:10", "{shown}");
        assert_eq!(shown["transferredTo"], "connected · transfer", "{shown}");
        // Nothing lost across the drop: the page got every event of the session, once, in
        // order, as the session holds them.
        let resumed = &shown["resumed"];
        assert_eq!(resumed["events"], resumed["lastSeq"], "{shown}");
        assert_eq!(shown["eventsBeforeDrop"].as_i64().unwrap() + 1, resumed["events"].as_i64().unwrap(), "autoReady came while away: {shown}");
        let names: Vec<&str> = resumed["names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["login", "initiated/2", "ringing/2", "answered/2", "answered/2", "held/2", "retrieved/2", "held/2",
             "initiated/5", "ringing/5", "answered/5", "completed/5", "completed/2", "completed", "autoReady"]
        );
        assert_eq!(shown["whileDown"]["statusCode"], "20114", "{shown}");
        assert_eq!(shown["afterKick"], "kicked_out", "a kicked-out page stays out: {shown}");
        let wrong = &shown["wrongPassword"];
        assert_eq!(wrong["statusCode"], "20101", "{shown}");
        assert_eq!(wrong["conn"], json!(["connected", "auth_fail"]), "no retry after auth_fail: {shown}");
        assert_eq!(wrong["state"], "stopped", "{shown}");
        let sid = resumed["sessionSid"].as_str().unwrap();
        let store = db.store().await;
        let stored = store.session_events(sid, 0, 100).await.unwrap();
        let stored: Vec<String> = stored
            .iter()
            .map(|(_, f)| {
                let f: Value = serde_json::from_str(f).unwrap();
                let d = &f["data"];
                match d["callSubtype"].as_str() {
                    Some(cst) => format!("{}/{cst}", d["eventName"].as_str().unwrap()),
                    None => d["eventName"].as_str().unwrap().to_string(),
                }
            })
            .collect();
        assert_eq!(stored[..names.len()], names, "the session's events");
        assert_eq!(stored.last().map(String::as_str), Some("logout"));
    }
}

both_backends! {
    /// The WebPhone (phoneType 3) against a fake SIP-over-WebSocket peer at `wsAddr`
    /// (`tests/console/webphone.mjs`): JsSIP registers as the agent's sipNumber with the
    /// sipPwd of its login, a plain INVITE rings (ring.wav) until the toolbar's Answer, one
    /// asking for auto-answer is answered by itself, and logout unregisters.
    async fn the_webphone_registers_rings_and_answers(db: TestDb) {
        if !browser_ready("api::phonekit") {
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ws = format!("ws://127.0.0.1:{port}");
        let app = db.spawn(&[("VOICEPAAS_WEBPHONE_WSS", ws.as_str())]).await;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/webphone.mjs");
        let shots = std::env::var("VOICEPAAS_SCREENSHOTS").unwrap_or_default();
        let out = Command::new("node").arg(script).args([&app.address, &port.to_string(), &shots]).output().expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(shown["errors"], json!([]), "{shown}");
        let agent = &shown["agent"];
        assert_eq!(agent["phoneType"], "3");
        assert_eq!(agent["wsAddr"], ws.as_str());
        let sip = agent["sipNumber"].as_str().unwrap();
        assert!(!agent["sipPwd"].as_str().unwrap().is_empty(), "{agent}");
        let seen = &shown["seen"];
        let registers = seen["registers"].as_array().unwrap();
        assert_eq!(registers.len(), 2, "{seen}");
        assert_eq!(registers[0]["uri"], "sip:voicepaas.local");
        assert!(registers[0]["from"].as_str().unwrap().starts_with(&format!("<sip:{sip}@voicepaas.local>")), "{seen}");
        assert_eq!(registers[0]["userAgent"], "JsSIP 3.3.6");
        assert_eq!(registers[1]["expires"], "0", "unregistered at logout");
        for invite in seen["invites"].as_array().unwrap() {
            assert!(invite["provisional"].as_array().unwrap().contains(&json!(180)), "{seen}");
        }
        let answers = seen["answers"].as_array().unwrap();
        assert_eq!(answers.len(), 2, "{seen}");
        assert!(answers.iter().all(|a| a["sdp"] == true), "{seen}");
        assert_eq!(seen["acks"], 2);
        assert_eq!(shown["ringTone"], format!("{}/PhoneKit/res/ring.wav", app.address));
    }
}

//! What operators rely on, with real `voicepaas serve` processes: `/metrics` in
//! Prometheus text, JSON log lines that carry the request id and never a full phone
//! number, a captcha code or a token, and SIGTERM leaving live calls to another replica.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::*;
use crate::processes::*;
use crate::receiver::Receiver;

/// `/metrics` parsed: `name{labels}` → value (comments left out).
async fn scrape(address: &str) -> HashMap<String, f64> {
    let response = reqwest::get(format!("{address}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                series.to_string(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

/// The series of `name` (any labels).
fn series<'a>(metrics: &'a HashMap<String, f64>, name: &str) -> Vec<(&'a str, f64)> {
    let mut found: Vec<_> = metrics
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    found.sort_by(|a, b| a.0.cmp(b.0));
    found
}

both_backends! {
    /// Requests by route and status with latencies, calls placed/ended and unfinished
    /// legs by state, the media node's connection and command latency, outbox depth by
    /// state, deliveries by outcome with their latency.
    async fn metrics_in_prometheus_text(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start().await;
        let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command
            .env("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")
            .env("VOICEPAAS_SANDBOX_SPEED", "20")
            .env("VOICEPAAS_LOG", "warn");
        let (_server, address) = serve(&db, dir.path(), command).await;
        let mut app = customer(&address, 100).await;
        let created = app.create_app(&app.sid, json!({"name": "m", "notifyUrl": format!("{}/n", receiver.base)})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();

        // A notice that rings for 10 s (0.5 s here) shows as an unfinished leg (notices
        // write their ringing and answer with their end: it is `initiated` until then).
        let ringing = app.post(&app.account_path("VoiceNotices"), &app.notice("13800009996")).await;
        assert_eq!(ringing.code(), "0", "{}", ringing.body);
        let started = Instant::now();
        loop {
            let m = scrape(&address).await;
            if m.get("voicepaas_calls{kind=\"notice\",state=\"initiated\"}") == Some(&1.0) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no ringing leg in {:?}", series(&m, "voicepaas_calls"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        receiver.wait_for(1, Duration::from_secs(30)).await;
        let store = db.store().await;
        settle_delivery(&store, ringing.body["callid"].as_str().unwrap(), "delivered").await;

        let m = scrape(&address).await;
        let route = "route=\"/Accounts/{AccountSid}/VoiceNotices\"";
        assert_eq!(m[&format!("voicepaas_http_requests_total{{method=\"POST\",{route},status=\"200\",statuscode=\"0\"}}")], 1.0);
        assert_eq!(m[&format!("voicepaas_http_request_duration_seconds_count{{method=\"POST\",{route}}}")], 1.0);
        assert_eq!(m[&format!("voicepaas_http_request_duration_seconds_bucket{{le=\"+Inf\",method=\"POST\",{route}}}")], 1.0);
        assert!(m.keys().all(|k| !k.contains(&app.sid)), "a raw path (with the account) became a label");
        assert_eq!(m["voicepaas_calls_placed_total{kind=\"notice\"}"], 1.0);
        assert_eq!(m["voicepaas_calls_ended_total{kind=\"notice\"}"], 1.0);
        assert_eq!(series(&m, "voicepaas_calls"), vec![], "no leg is unfinished any more");
        let nodes = series(&m, "voicepaas_esl_node_up");
        assert_eq!(nodes.len(), 1, "{nodes:?}");
        assert_eq!(nodes[0].1, 1.0);
        let originates: f64 = series(&m, "voicepaas_esl_command_duration_seconds_count")
            .iter()
            .filter(|(k, _)| k.contains("command=\"originate\""))
            .map(|(_, v)| v)
            .sum();
        assert!(originates >= 1.0, "{:?}", series(&m, "voicepaas_esl_command_duration_seconds_count"));
        for state in ["due", "in_flight", "scheduled", "failed"] {
            assert_eq!(m[&format!("voicepaas_outbox_depth{{state=\"{state}\"}}")], 0.0, "{state}");
        }
        assert_eq!(m["voicepaas_webhook_deliveries_total{outcome=\"delivered\"}"], 1.0);
        assert_eq!(m["voicepaas_webhook_delivery_duration_seconds_count"], 1.0);
        // An error answer is counted under its statuscode.
        let refused = app.post(&app.account_path("VoiceNotices"), &json!({"appid": app.app_id, "to": "13800009996"})).await;
        assert_eq!(refused.code(), "-4");
        let m = scrape(&address).await;
        assert_eq!(m[&format!("voicepaas_http_requests_total{{method=\"POST\",{route},status=\"200\",statuscode=\"-4\"}}")], 1.0);
    }
}

both_backends! {
    /// `VOICEPAAS_LOG_FORMAT=json` at trace level: every line is a JSON object; the
    /// request's lines carry its id (the answer's `requestid` and `X-Request-Id`); phone
    /// numbers show only their last four digits; no captcha code, token or secret.
    async fn json_logs_carry_request_ids_and_hide_secrets(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command
            .env("VOICEPAAS_LOG", "trace")
            .env("VOICEPAAS_LOG_FORMAT", "json")
            .env("VOICEPAAS_SANDBOX_SPEED", "50")
            .stdout(Stdio::null())
            .stderr(log);
        let (_server, address) = serve(&db, dir.path(), command).await;
        let mut app = customer(&address, 100).await;
        let created = app.create_app(&app.sid, json!({"name": "l"})).await;
        app.app_id = created["appId"].as_str().unwrap().to_string();
        let secret = created["signingSecret"].as_str().unwrap().to_string();

        let notice = app.post(&app.account_path("VoiceNotices"), &app.notice("13812349995")).await;
        assert_eq!(notice.code(), "0", "{}", notice.body);
        let captcha = app.post(&app.account_path("VoiceCaptchas"), &json!({"appid": app.app_id, "to": "13856780001", "code": "q7z9x2"})).await;
        assert_eq!(captcha.code(), "0", "{}", captcha.body);
        let ids = [notice.body["callid"].as_str().unwrap().to_string(), captcha.body["callid"].as_str().unwrap().to_string()];
        let cdrs = all_cdrs(&db.store().await, &ids, Duration::from_secs(20)).await;
        assert_eq!(cdrs[1]["result"], "0", "the code was read: {}", cdrs[1]);

        let text = std::fs::read_to_string(&log_path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        for line in &lines {
            for field in ["timestamp", "level", "target", "fields"] {
                assert!(line.get(field).is_some(), "no {field}: {line}");
            }
        }
        let request_id = notice.body["requestid"].as_str().unwrap();
        assert_eq!(notice.headers["x-request-id"], request_id);
        let of_request: Vec<&Value> = lines.iter().filter(|l| l["span"]["request_id"] == request_id).collect();
        let access = of_request
            .iter()
            .find(|l| l["target"] == "voicepaas::access")
            .unwrap_or_else(|| panic!("no access line for {request_id}"));
        assert_eq!(access["fields"]["status"], 200);
        assert_eq!(access["span"]["route"], "/Accounts/{AccountSid}/VoiceNotices");
        let accepted = of_request
            .iter()
            .find(|l| l["fields"]["message"] == "accepted")
            .unwrap_or_else(|| panic!("no acceptance line in {of_request:?}"));
        assert_eq!(accepted["fields"]["to"], "*******9995");
        assert_eq!(accepted["fields"]["call"], ids[0].as_str());

        let lower = text.to_lowercase();
        for (what, secret) in [
            ("a callee number", "13812349995"),
            ("a callee number", "13856780001"),
            ("the captcha code", "q7z9x2"),
            ("the account token", &app.token.to_lowercase()),
            ("the admin token", &ADMIN_TOKEN.to_lowercase()),
            ("the signing secret", &secret.to_lowercase()),
        ] {
            assert!(!lower.contains(secret), "{what} ({secret}) is in the log");
        }
    }
}

both_backends! {
    /// SIGTERM with a conversation bridged on a standalone media server: the process
    /// exits well within 30 s without hanging the call up, gives up its lease, and a
    /// second replica re-attaches the call at once (without waiting for the lease to run
    /// out), so the conversation ends normally with one CDR.
    async fn sigterm_leaves_live_calls_to_another_replica(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let media_port = free_port();
        // Speed 4: the callee hangs up 7.5 s after answering, before a lease left to run
        // out (10 s) would let another replica in; re-attached in time only if given up.
        let _sandbox = sandbox(media_port, "4", dir.path());
        let (mut first, address) = server(&db, media_port, dir.path(), "10").await;
        let app = customer(&address, 20).await;
        let a = app.post(&app.ctc_path(), &json!({"action": "click2call", "caller": "13900010001", "callee": "13900020001"})).await;
        assert_eq!(a.code(), "00000", "{}", a.body);
        let id = a.body["conversationSid"].as_str().unwrap().to_string();
        let store = db.store().await;
        // Bridged: both legs answered.
        let started = Instant::now();
        while callbacks(&store, &id).await.iter().filter(|(_, b)| b["callStatus"] == "answered").count() < 2 {
            assert!(started.elapsed() < Duration::from_secs(10), "not bridged: {:?}", callbacks(&store, &id).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        first.terminate();
        let (status, took) = first.exited().await;
        assert!(status.success(), "{status:?}");
        assert!(took < Duration::from_secs(5), "took {took:?} with nothing in flight");
        assert_eq!(store.count_cdrs().await.unwrap(), 0, "the stopping process ended the call");

        let (_second, _) = server(&db, media_port, dir.path(), "10").await;
        let cdr = all_cdrs(&store, std::slice::from_ref(&id), Duration::from_secs(40)).await;
        assert_eq!(cdr[0]["byeType"], "3", "{}", cdr[0]);
        assert_eq!(cdr[0]["cdrs"][1]["cause"], "completed", "{}", cdr[0]);
        assert_eq!(store.count_cdrs().await.unwrap(), 1);
    }
}

both_backends! {
    /// SIGTERM while a request is half sent: new connections are refused at once, the
    /// request in flight is still answered (and its call accepted), the process exits,
    /// and the next process places the call it accepted.
    async fn sigterm_finishes_requests_in_flight(db: TestDb) {
        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command.env("VOICEPAAS_SANDBOX_SPEED", "20").env("VOICEPAAS_LOG", "warn").stdout(Stdio::null());
        let (mut server, address) = serve(&db, dir.path(), command).await;
        let app = customer(&address, 100).await;
        let host = address.trim_start_matches("http://").to_string();
        let body = app.notice("13800009995").to_string();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.sid, app.token));
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.account_path("VoiceNotices"),
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        server.terminate();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(tokio::net::TcpStream::connect(&host).await.is_err(), "still accepting connections after SIGTERM");

        stream.write_all(rest.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let accepted: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(accepted["statuscode"], "0", "{accepted}");
        let (status, _) = server.exited().await;
        assert!(status.success(), "{status:?}");

        let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
        command.env("VOICEPAAS_SANDBOX_SPEED", "20").env("VOICEPAAS_LOG", "warn").stdout(Stdio::null());
        let (_next, _) = serve(&db, dir.path(), command).await;
        let id = accepted["callid"].as_str().unwrap().to_string();
        let cdr = all_cdrs(&db.store().await, &[id], Duration::from_secs(30)).await;
        assert_eq!(cdr[0]["result"], "0", "{}", cdr[0]);
    }
}

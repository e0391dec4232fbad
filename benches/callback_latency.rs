//! Call end → result callback received: notices to a busy number (the sandbox fails them at
//! once) through the in-process server and sandbox, their result callbacks POSTed to a
//! local receiver; the time from the call's end on the media server's clock (speed 1, so
//! the platform's clock) to the callback's arrival.
//!
//! `cargo bench --bench callback_latency` (env `CALLBACK_CALLS`, default 500).
//!
//! With `CALLBACK_SLOW=N`, N result callbacks of another application are queued first to a
//! second receiver, under another host name, that answers only after 20 s (past the 15 s
//! timeout), and the measure starts once that host has its whole budget in flight: the
//! figure then says what a timing-out customer costs the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use voicepaas::config::Settings;
use voicepaas::domain::Fields;
use voicepaas::domain::application::AppSettings;
use voicepaas::domain::limits::AccountPatch;
use voicepaas::startup::Application;
use voicepaas::store::Store;

mod support;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = std::env::var("CALLBACK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/latency.db", dir.path().display());
    let arrivals: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let sink = arrivals.clone();
    let receiver = HttpServer::new(move || {
        let sink = sink.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let at = chrono::Utc::now().timestamp_millis();
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && let Some(id) = v["callid"].as_str()
            {
                sink.lock().unwrap().insert(id.to_string(), at);
            }
            async { HttpResponse::Ok().finish() }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let port = receiver.addrs()[0].port();
    tokio::spawn(receiver.run());

    let slow_calls: usize = std::env::var("CALLBACK_SLOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let slow_got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = slow_got.clone();
    let slow = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let slow_port = slow.addrs()[0].port();
    tokio::spawn(slow.run());

    let prompts = dir.path().join("prompts").display().to_string();
    let values: HashMap<String, String> = [
        ("VOICEPAAS_LISTEN", "127.0.0.1:0"),
        ("DATABASE_URL", url.as_str()),
        ("VOICEPAAS_PROMPTS_DIR", prompts.as_str()),
        ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"),
        ("VOICEPAAS_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let server = Application::build(Settings::from_values(&values).expect("settings"))
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    let store = Store::open(&url).await.expect("store");
    let (account, token) = store.create_account("latency").await.unwrap();
    let limits = AccountPatch {
        cps: Some(1000),
        max_concurrent_calls: Some(100_000),
        ..Default::default()
    };
    store.update_account(&account.sid, &limits).await.unwrap();
    let fields = json!({"name": "latency", "notifyUrl": format!("http://127.0.0.1:{port}/n")});
    let settings = AppSettings::parse(Fields(fields.as_object().unwrap()), true).unwrap();
    let app = store.create_app(&account.sid, &settings).await.unwrap();

    let client = reqwest::Client::new();
    let (as_account, accepted) = ((account.sid.as_str(), token.as_str()), ("statuscode", "0"));
    if slow_calls > 0 {
        let fields =
            json!({"name": "slow", "notifyUrl": format!("http://localhost:{slow_port}/s")});
        let settings = AppSettings::parse(Fields(fields.as_object().unwrap()), true).unwrap();
        let slow_app = store.create_app(&account.sid, &settings).await.unwrap();
        let numbers: Vec<String> = (0..slow_calls).map(|i| format!("139{i:04}9990")).collect();
        for to in numbers.chunks(1000) {
            let body = json!({"appid": slow_app.app_id, "to": to.join(","), "contents": [{"type": "digits", "content": "1"}]});
            let url = format!("{base}/Accounts/{}/BatchVoiceNotices", account.sid);
            support::post(&client, &url, as_account, &body, accepted).await;
        }
        while slow_got.load(std::sync::atomic::Ordering::Relaxed) < 16 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let started = Instant::now();
    for i in 0..calls {
        let body = json!({"appid": app.app_id, "to": format!("138{i:04}9990"), "contents": [{"type": "digits", "content": "1"}]});
        let url = format!("{base}/Accounts/{}/VoiceNotices", account.sid);
        support::post(&client, &url, as_account, &body, accepted).await;
        // About 250 calls per second.
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    while arrivals.lock().unwrap().len() < calls {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "callbacks missing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ends: HashMap<String, i64> = store
        .call_timings(&account.sid)
        .await
        .expect("call timings")
        .into_iter()
        .map(|t| (t.id, t.end_at))
        .collect();
    let arrivals = arrivals.lock().unwrap();
    let mut latencies: Vec<i64> = arrivals
        .iter()
        .filter_map(|(id, at)| ends.get(id).map(|end| at - end))
        .collect();
    latencies.sort_unstable();
    let pick = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "call end → result callback received: p50 {} ms, p99 {} ms ({} calls; {} callbacks due to a timing-out host)",
        pick(0.5),
        pick(0.99),
        latencies.len(),
        slow_calls
    );
}

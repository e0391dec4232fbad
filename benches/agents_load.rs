//! Agents over WebSocket against one `voicepaas serve`: a login storm (every agent opens
//! its socket, authenticates with a token and logs in), the server's RSS and CPU per
//! session, then state changes at a steady rate sent by "the backend" over REST
//! (`…/Agents/{agentNo}/Commands`, pause and ready in turn) with the time from the request
//! to the statusEvent frame on the agent's socket.
//!
//! `cargo bench --bench agents_load` (env: AGENTS, default 10000; RATE state changes per
//! second, default 1000; SECS of that, default 20; STORM_CONCURRENCY sockets opening at
//! once, default 500; DATABASE_URL, default a temporary SQLite file; VOICEPAAS_BIN, the
//! server binary). Agents are written straight into the database with one password hash
//! (creating 10,000 through the API would spend minutes in Argon2); tokens are minted
//! through the API, as a customer's backend does for its CRM users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::{Proc, admin, cpu_secs, env_u64, free_port, peak_rss_mb};

/// Current resident memory (VmRSS) of process `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Writes `n` agents (`a00000` …) of `app_id` with one password hash.
async fn insert_agents(url: &str, app_id: &str, n: usize) {
    let hash = voicepaas::domain::credentials::hash_password("s3cret!").expect("hash");
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{app_id}', 'a{i:05}', 'agent {i}', '{hash}', 'agent', 1, '', '{}', 'abcdefghijklmnop', 0, FALSE, '', TRUE, 0, 0)",
                80_000_001 + i
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO agents (app_id, agent_no, name, pwd_hash, role, phone_type, pstn_number, sip_number, sip_pwd, \
             wrapup_time, auto_answer, caller_id_pool_sid, enabled, created_at, updated_at) VALUES {}",
            chunk.join(", ")
        );
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            sqlx::query(&sql)
                .execute(&pool)
                .await
                .expect("insert agents");
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            sqlx::query(&sql)
                .execute(&pool)
                .await
                .expect("insert agents");
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens agent `agent_no`'s socket, authenticates with `token` and logs in.
async fn sign_in(base: &str, app_id: &str, agent_no: &str, token: &str) -> Socket {
    let url = format!(
        "{}/v1/Applications/{app_id}/cti?agentNo={agent_no}",
        base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok(ws) => break ws,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    for (id, cmd, params) in [
        (1, "auth", json!({"token": token})),
        (2, "login", json!({"phoneType": "1"})),
    ] {
        ws.send(Message::text(
            json!({"id": id, "cmd": cmd, "params": params}).to_string(),
        ))
        .await
        .expect("send");
        loop {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                continue;
            };
            let frame: Value = serde_json::from_str(&t).expect("json");
            if frame["id"] == id {
                assert_eq!(frame["statusCode"], "00000", "{frame}");
                break;
            }
        }
    }
    ws
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents = env_u64("AGENTS", 10_000) as usize;
    let rate = env_u64("RATE", 1000).max(1);
    let secs = env_u64("SECS", 20);
    let concurrency = env_u64("STORM_CONCURRENCY", 500) as usize;
    let bin =
        std::env::var("VOICEPAAS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_voicepaas").into());
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/agents.db", dir.path().display()));

    let port = free_port();
    let server = Proc::spawn(
        std::process::Command::new(&bin)
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("VOICEPAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("VOICEPAAS_PROMPTS_DIR", dir.path().join("prompts"))
            .env("VOICEPAAS_RECORDINGS_DIR", dir.path().join("recordings"))
            .env("VOICEPAAS_ADMIN_TOKEN", "bench"),
    );
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = admin(
        &client,
        reqwest::Method::POST,
        format!("{base}/admin/accounts"),
        json!({"name": "agents"}),
    )
    .await;
    let sid = created["accountSid"].as_str().expect("sid").to_string();
    let auth = created["authToken"].as_str().expect("token").to_string();
    let app = admin(
        &client,
        reqwest::Method::POST,
        format!("{base}/admin/accounts/{sid}/applications"),
        json!({"name": "cc"}),
    )
    .await;
    let app_id = app["appId"].as_str().expect("appId").to_string();
    let cti = format!("{base}/v1/Accounts/{sid}/Applications/{app_id}");
    insert_agents(&url, &app_id, agents).await;
    let numbers: Vec<String> = (0..agents).map(|i| format!("a{i:05}")).collect();

    // Tokens, minted as a backend would, 64 at a time.
    let tokens: Vec<String> = futures_util::stream::iter(numbers.clone())
        .map(|no| {
            let (client, cti, sid, auth) = (client.clone(), cti.clone(), sid.clone(), auth.clone());
            async move {
                let answer: Value = client
                    .post(format!("{cti}/Agents/{no}/Tokens"))
                    .basic_auth(&sid, Some(&auth))
                    .json(&json!({"ttl": 3600}))
                    .send()
                    .await
                    .expect("token")
                    .json()
                    .await
                    .expect("json");
                answer["token"].as_str().expect("token").to_string()
            }
        })
        .buffered(64)
        .collect()
        .await;

    // The anchor: this server's /healthz rate right now (these VMs vary run to run).
    let anchor_until = Instant::now() + Duration::from_secs(2);
    let probes: Vec<_> = (0..32)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/healthz"));
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < anchor_until {
                    client.get(&url).send().await.expect("healthz");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut healthz = 0;
    for p in probes {
        healthz += p.await.expect("probe");
    }
    println!(
        "anchor: /healthz {:.0} requests/s (32 concurrent)",
        healthz as f64 / 2.0
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_mb(pid);
    let cpu_before = cpu_secs(pid);
    let storm = Instant::now();
    let sockets: Vec<Socket> = futures_util::stream::iter(numbers.iter().zip(&tokens))
        .map(|(no, token)| sign_in(&base, &app_id, no, token))
        .buffered(concurrency)
        .collect()
        .await;
    let storm_secs = storm.elapsed().as_secs_f64();
    let storm_cpu = cpu_secs(pid) - cpu_before;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_mb(pid);
    println!(
        "login storm: {agents} agents (token auth + login, {concurrency} opening at once) in {storm_secs:.2} s = {:.0} logins/s; server CPU {:.2} ms per login",
        agents as f64 / storm_secs,
        storm_cpu * 1000.0 / agents as f64
    );
    println!(
        "server RSS: {rss_before:.0} MB before, {rss_after:.0} MB with {agents} sessions ({:.1} KB per session), peak {:.0} MB",
        (rss_after - rss_before) * 1024.0 / agents as f64,
        peak_rss_mb(pid)
    );

    // Every socket is read all along (its pings answered); a statusEvent's latency is
    // measured from the request that caused it.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    for (socket, no) in sockets.into_iter().zip(numbers.clone()) {
        let (sent, latencies) = (sent.clone(), latencies.clone());
        tokio::spawn(async move {
            let (_, mut read) = socket.split();
            while let Some(Ok(message)) = read.next().await {
                if let Message::Text(t) = message
                    && t.contains("\"statusEvent\"")
                    && let Some(at) = sent.lock().unwrap().remove(&no)
                {
                    latencies
                        .lock()
                        .unwrap()
                        .push(at.elapsed().as_micros() as u64);
                }
            }
        });
    }
    let idle_cpu = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_ms_per_s = (cpu_secs(pid) - idle_cpu) * 1000.0 / 5.0;
    println!("server CPU with {agents} idle sessions: {idle_ms_per_s:.1} ms per second");

    let total = (rate * secs) as usize;
    let cpu_before = cpu_secs(pid);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let no = numbers[(i * 7919) % agents].clone();
        let cmd = if (i / agents).is_multiple_of(2) {
            json!({"cmd": "pause", "params": {"pauseCause": "b"}})
        } else {
            json!({"cmd": "ready"})
        };
        let (client, cti, sid, auth, sent) = (
            client.clone(),
            cti.clone(),
            sid.clone(),
            auth.clone(),
            sent.clone(),
        );
        requests.push(tokio::spawn(async move {
            sent.lock().unwrap().insert(no.clone(), Instant::now());
            let answer: Value = client
                .post(format!("{cti}/Agents/{no}/Commands"))
                .basic_auth(&sid, Some(&auth))
                .json(&cmd)
                .send()
                .await
                .expect("command")
                .json()
                .await
                .expect("json");
            assert_eq!(answer["statusCode"], "00000", "{answer}");
        }));
    }
    for r in requests {
        r.await.expect("request");
    }
    let offered_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_secs(pid) - cpu_before;
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    println!(
        "state changes: {total} in {offered_secs:.1} s ({:.0}/s); events received {}; request → statusEvent frame p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server CPU {:.3} ms per change",
        total as f64 / offered_secs,
        lat.len(),
        percentile(&lat, 0.5) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0,
        cpu * 1000.0 / total as f64
    );
    println!("server peak RSS: {:.0} MB", peak_rss_mb(pid));
}

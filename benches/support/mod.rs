//! What the benchmarks that drive a server over HTTP share (each bench uses a part).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// POSTs `body` to `url` as the account `(sid, token)`; the answer's `field` must be `ok`
/// (`statuscode` `0`, `statusCode` `00000`).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    (sid, token): (&str, &str),
    body: &serde_json::Value,
    (field, ok): (&str, &str),
) {
    let answer: serde_json::Value = client
        .post(url)
        .basic_auth(sid, Some(token))
        .json(body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer[field], ok, "{answer}");
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(command: &mut Command) -> Proc {
        let child = command
            .env("VOICEPAAS_LOG", "warn")
            .env_remove("VOICEPAAS_CONFIG")
            .stdout(Stdio::null())
            .spawn()
            .expect("start voicepaas");
        Proc(child)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A standalone `voicepaas sandbox` on a free port, its recordings under `dir`, its clock
/// at `speed` (the default when `None`): the process and its Event Socket port. The
/// binary is this build's, or `SANDBOX_BIN` (to measure another build's sandbox).
pub fn start_sandbox(dir: &std::path::Path, speed: Option<u64>) -> (Proc, u16) {
    let port = free_port();
    let bin =
        std::env::var("SANDBOX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_voicepaas").into());
    let mut command = Command::new(bin);
    command
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .env("VOICEPAAS_RECORDINGS_DIR", dir.join("recordings"));
    if let Some(speed) = speed {
        command.env("VOICEPAAS_SANDBOX_SPEED", speed.to_string());
    }
    (Proc::spawn(&mut command), port)
}

/// Peak resident memory (VmHWM) of process `pid`, in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU seconds (user + system) of a `/proc/…/stat` line.
pub fn stat_cpu_secs(stat: &str) -> f64 {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// The admin API of the server at `base`: a JSON request.
pub async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: serde_json::Value,
) -> serde_json::Value {
    client
        .request(method, url)
        .bearer_auth("bench")
        .json(&body)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("admin json")
}

/// Starts `voicepaas serve` (binary `bin`) on `url` and waits until it is ready.
pub async fn start_server(
    bin: &str,
    url: &str,
    media_port: u16,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("VOICEPAAS_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "VOICEPAAS_MEDIA",
            format!("esl://:ClueCon@127.0.0.1:{media_port}"),
        )
        .env("VOICEPAAS_PROMPTS_DIR", dir.join("prompts"))
        .env("VOICEPAAS_RECORDINGS_DIR", dir.join("recordings"))
        .env("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true")
        .env("VOICEPAAS_ADMIN_TOKEN", "bench");
    for (k, v) in extra {
        command.env(k, v);
    }
    let server = Proc::spawn(&mut command);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, base)
}

/// An account with limits no load reaches and one application made of `app`:
/// (accountSid, authToken, appId).
pub async fn load_account(
    client: &reqwest::Client,
    base: &str,
    app: serde_json::Value,
) -> (String, String, String) {
    let created = admin(
        client,
        reqwest::Method::POST,
        format!("{base}/admin/accounts"),
        serde_json::json!({"name": "load"}),
    )
    .await;
    let sid = created["accountSid"]
        .as_str()
        .expect("accountSid")
        .to_string();
    let token = created["authToken"]
        .as_str()
        .expect("authToken")
        .to_string();
    let limits = serde_json::json!({"cps": 10_000, "maxConcurrentCalls": 1_000_000, "maxQueuedCalls": 100_000_000});
    admin(
        client,
        reqwest::Method::PATCH,
        format!("{base}/admin/accounts/{sid}"),
        limits,
    )
    .await;
    let created = admin(
        client,
        reqwest::Method::POST,
        format!("{base}/admin/accounts/{sid}/applications"),
        app,
    )
    .await;
    let app_id = created["appId"].as_str().expect("appId").to_string();
    (sid, token, app_id)
}

//! Complete notice calls through `voicepaas serve` and a `voicepaas sandbox` (separate
//! processes) at full speed: sustained calls per second, concurrent calls, time from
//! originate to CDR, and the server's peak RSS.
//!
//! `cargo bench --bench calls_load` (env: LOAD_CALLS, default 30000; LOAD_RATE calls
//! per second offered, default 1000; LOAD_CALL_SECS, sandbox seconds per call, default
//! 10; DATABASE_URL, default a temporary SQLite file).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use voicepaas::domain::application::AppSettings;
use voicepaas::domain::limits::AccountPatch;
use voicepaas::store::Store;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    fn spawn(command: &mut Command) -> Proc {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Peak resident memory (VmHWM) of process `pid`, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env_u64("LOAD_CALLS", 30_000);
    let rate = env_u64("LOAD_RATE", 1000).max(10);
    let call_secs = env_u64("LOAD_CALL_SECS", 10).clamp(2, 21);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/load.db", dir.path().display()));
    // The sandbox and the server run as processes of their own, so the server's memory
    // is measured alone.
    let media_port = free_port();
    let _sandbox = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_voicepaas"))
            .args(["sandbox", "--listen", &format!("127.0.0.1:{media_port}")])
            .env("VOICEPAAS_RECORDINGS_DIR", dir.path().join("recordings")),
    );
    let port = free_port();
    let server = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_voicepaas"))
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("VOICEPAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "VOICEPAAS_MEDIA",
                format!("esl://:ClueCon@127.0.0.1:{media_port}"),
            )
            .env("VOICEPAAS_PROMPTS_DIR", dir.path().join("prompts")),
    );
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

    let store = Store::open(&url).await.expect("store");
    let (account, token) = store.create_account("load").await.expect("account");
    let limits = AccountPatch {
        cps: Some(10_000),
        max_concurrent_calls: Some(1_000_000),
        max_queued_calls: Some(100_000_000),
        ..Default::default()
    };
    store
        .update_account(&account.sid, &limits)
        .await
        .expect("limits");
    let app_record = store
        .create_app(
            &account.sid,
            &AppSettings {
                name: Some("load".into()),
                ..Default::default()
            },
        )
        .await
        .expect("app");
    // One ring second, then `call_secs - 1` one-second items.
    let contents: Vec<_> = (1..call_secs)
        .map(|_| json!({"type": "digits", "content": "1"}))
        .collect();
    let url_batch = format!("{base}/Accounts/{}/BatchVoiceNotices", account.sid);

    let tick = Duration::from_millis(100);
    let per_tick = (rate / 10) as usize;
    let started = Instant::now();
    let sampler_store = store.clone();
    let sid = account.sid.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            let live = sampler_store.live_legs(&sid).await.unwrap_or(0);
            let done = sampler_store.count_cdrs().await.unwrap_or(0);
            samples.push((started.elapsed().as_secs_f64(), live, done));
            if done as u64 >= calls {
                return samples;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let mut sent = 0u64;
    let mut next = Instant::now();
    while sent < calls {
        let n = per_tick.min((calls - sent) as usize);
        let to: Vec<String> = (0..n as u64)
            .map(|i| format!("138{:08}0", sent + i))
            .collect();
        let body = json!({"appid": app_record.app_id, "to": to.join(","), "contents": contents, "times": 1});
        let answer: serde_json::Value = client
            .post(&url_batch)
            .basic_auth(&account.sid, Some(&token))
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(answer["statuscode"], "0", "{answer}");
        sent += n as u64;
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    let offered_secs = started.elapsed().as_secs_f64();
    let samples = sampler.await.expect("sampler");
    let total_secs = started.elapsed().as_secs_f64();

    // Sustained rate: calls completed per second while the 10th to the 90th percent of
    // them completed (steady state, without the ramp-up and the tail).
    let when = |fraction: f64| {
        samples
            .iter()
            .find(|s| s.2 as f64 >= calls as f64 * fraction)
            .map_or((0.0, 0), |s| (s.0, s.2))
    };
    let ((t0, d0), (t1, d1)) = (when(0.1), when(0.9));
    let sustained = (d1 - d0) as f64 / (t1 - t0).max(0.001);
    let peak_live = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let timings = store.call_timings(&account.sid).await.expect("timings");
    let mut whole: Vec<i64> = timings.iter().map(|t| t.cdr_at - t.start_at).collect();
    let mut after_end: Vec<i64> = timings.iter().map(|t| t.cdr_at - t.end_at).collect();
    whole.sort_unstable();
    after_end.sort_unstable();
    println!(
        "calls: {calls} offered at {rate}/s over {offered_secs:.1} s; all CDRs written after {total_secs:.1} s"
    );
    println!("sustained: {sustained:.0} calls/s completed (from 10 % to 90 % of the calls done)");
    println!("concurrent: peak {peak_live} live calls");
    println!(
        "originate → CDR: p50 {} ms, p99 {} ms (a call lasts {call_secs} s)",
        percentile(&whole, 0.5),
        percentile(&whole, 0.99)
    );
    println!(
        "hangup → CDR written: p50 {} ms, p99 {} ms",
        percentile(&after_end, 0.5),
        percentile(&after_end, 0.99)
    );
    println!(
        "peak RSS of the server: {:.0} MB",
        peak_rss_mb(server.0.id())
    );
}

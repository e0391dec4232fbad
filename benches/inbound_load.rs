//! Dial-in callers through `voicepaas serve` and a `voicepaas sandbox` (separate
//! processes): agents' contract §9 under load.
//!
//! `cargo bench --bench inbound_load` (env: INBOUND_MODE `latency` or `rate`, default
//! `rate`; AGENTS, default 500; QUEUES, default 20; CALLERS, default 2000 for `latency`,
//! 9000 for `rate`; RATE new callers per second, default 300; SPEED the sandbox clock,
//! default 1 for `latency`, 50 for `rate`; DATABASE_URL, default a temporary SQLite file).
//!
//! * `latency`: every agent logs in paused; CALLERS callers dial in (welcome prompt, then
//!   one of the queues) and wait; then the agents become ready, 50 per second, each
//!   taking a caller. The server's own histogram `acd_ready_to_offer_seconds` (from the
//!   notice of an agent's change to its offer's originate sent to the media server) gives
//!   the time from "ready" to the offer, with the queues still full.
//! * `rate`: every agent is ready; callers dial in at RATE per second (welcome → queue →
//!   offer → talk until the caller hangs up, 60 sandbox seconds → wrapup 0 → ready); the
//!   run reports the callers' rate, how many conversations ended with their CDR, and the
//!   same histogram.
//!
//! The anchor printed last is the same server's `/healthz` rate (one connection).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{admin, cpu_secs, env_u64, load_account, start_sandbox, start_server};

/// The account's CTI API.
struct Cti {
    client: reqwest::Client,
    base: String,
    sid: String,
    token: String,
    app: String,
}

impl Cti {
    async fn call(&self, method: reqwest::Method, rest: &str, body: Value) -> Value {
        let url = format!(
            "{}/v1/Accounts/{}/Applications/{}/{rest}",
            self.base, self.sid, self.app
        );
        let answer = self
            .client
            .request(method, url)
            .basic_auth(&self.sid, Some(&self.token))
            .json(&body)
            .send()
            .await
            .expect("request");
        answer.json().await.expect("json")
    }

    async fn command(&self, agent_no: &str, cmd: &str, params: Value) {
        let body = json!({"cmd": cmd, "params": params});
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("Agents/{agent_no}/Commands"),
                body,
            )
            .await;
        assert_eq!(answer["statusCode"], "00000", "{cmd} {agent_no}: {answer}");
    }
}

/// The histogram's count and its upper bounds with their cumulative counts.
async fn offers(client: &reqwest::Client, base: &str) -> (u64, Vec<(f64, u64)>) {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut buckets = Vec::new();
    let mut count = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("voicepaas_acd_ready_to_offer_seconds_bucket{le=\"") {
            let (le, n) = rest.split_once("\"} ").expect("bucket");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            buckets.push((le, n.trim().parse().expect("count")));
        } else if let Some(n) = line.strip_prefix("voicepaas_acd_ready_to_offer_seconds_count ") {
            count = n.trim().parse().expect("count");
        }
    }
    (count, buckets)
}

/// The smallest bucket bound holding fraction `p` of the samples, in ms.
fn bound_ms(buckets: &[(f64, u64)], count: u64, p: f64) -> f64 {
    let want = (count as f64 * p).ceil() as u64;
    buckets
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(f64::INFINITY, |(le, _)| le * 1000.0)
}

/// Conversations that ended with byeType `bye` (3: the caller talked with an agent and
/// hung up; 7: it hung up before an agent took it).
async fn with_bye(url: &str, bye: &str) -> i64 {
    let sql = format!(r#"SELECT COUNT(*) FROM cdrs WHERE body LIKE '%"byeType":"{bye}"%'"#);
    let sql = sql.as_str();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("sqlite");
        sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("count")
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("postgres");
        sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("count")
    }
}

async fn healthz_rate(client: &reqwest::Client, base: &str) -> f64 {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let latency = std::env::var("INBOUND_MODE").is_ok_and(|m| m == "latency");
    let agents = env_u64("AGENTS", 500) as usize;
    let queues = env_u64("QUEUES", 20) as usize;
    let callers = env_u64("CALLERS", if latency { 2000 } else { 9000 }) as usize;
    let rate = env_u64("RATE", 300).max(1);
    let speed = env_u64("SPEED", if latency { 1 } else { 50 });
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/load.db", dir.path().display()));
    let (_sandbox, media_port) = start_sandbox(dir.path(), Some(speed));
    let bin = env!("CARGO_BIN_EXE_voicepaas");
    let (server, base) = start_server(bin, &url, media_port, dir.path(), &[]).await;
    let pid = server.0.id();
    let client = reqwest::Client::new();
    let (sid, token, app) = load_account(&client, &base, json!({"name": "load"})).await;
    let cti = Cti {
        client: client.clone(),
        base: base.clone(),
        sid: sid.clone(),
        token,
        app,
    };

    // The welcome prompt, the queues and their numbers.
    let wav = voicepaas::domain::prompt::build_wav(8000, &[0; 8000]);
    let put = client
        .put(format!(
            "{base}/Accounts/{sid}/Applications/{}/Prompts/welcome.wav",
            cti.app
        ))
        .basic_auth(&sid, Some(&cti.token))
        .body(wav)
        .send()
        .await
        .expect("prompt");
    assert!(put.status().is_success());
    let mut queue_sids = Vec::new();
    for q in 0..queues {
        let body = json!({"name": format!("q{q}"), "maxWaitSeconds": 0, "ringTimeout": 30});
        let answer = cti.call(reqwest::Method::POST, "Queues", body).await;
        let queue = answer["queue"]["queueSid"]
            .as_str()
            .expect("queueSid")
            .to_string();
        let number = format!("40080{q:05}");
        admin(
            &client,
            reqwest::Method::PUT,
            format!("{base}/admin/numbers/{number}"),
            json!({"accountSid": sid}),
        )
        .await;
        let route =
            json!({"welcomePrompt": "welcome.wav", "route": {"type": "queue", "queueSid": queue}});
        let answer = cti
            .call(reqwest::Method::PUT, &format!("Numbers/{number}"), route)
            .await;
        assert_eq!(answer["statusCode"], "00000", "{answer}");
        queue_sids.push(queue);
    }
    // Each agent in two queues, at different skill levels.
    let setup = Instant::now();
    for a in 0..agents {
        let member = json!([
            {"queueSid": queue_sids[a % queues], "skillLevel": 1 + a % 10},
            {"queueSid": queue_sids[(a + 7) % queues], "skillLevel": 1 + (a / 10) % 10},
        ]);
        let body = json!({"agentNo": format!("{}", 10_000 + a), "pwd": "s3cret!", "name": "load",
                          "sipNumber": format!("8{:07}", a), "wrapupTime": 0, "queues": member});
        let answer = cti.call(reqwest::Method::POST, "Agents", body).await;
        assert_eq!(answer["statusCode"], "00000", "{answer}");
    }
    let paused = json!({"workStatus": if latency { "2" } else { "1" }});
    for a in 0..agents {
        cti.command(&format!("{}", 10_000 + a), "login", paused.clone())
            .await;
    }
    println!(
        "setup: {agents} agents in {queues} queues, {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let dial = |i: usize| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let body =
                json!({"from": format!("139{i:08}"), "to": format!("40080{:05}", i % queues)});
            let answer = client
                .post(format!("{base}/admin/sandbox/inbound"))
                .bearer_auth("bench")
                .json(&body)
                .send()
                .await
                .expect("inbound");
            assert_eq!(answer.status().as_u16(), 201);
        }
    };
    let (cpu_from, started) = (cpu_secs(pid), Instant::now());
    let tick = Duration::from_millis(100);
    let per_tick = (rate as usize / 10).max(1);
    let mut sent = 0;
    while sent < callers {
        let due = started + tick * (sent / per_tick) as u32;
        tokio::time::sleep_until(due.into()).await;
        let batch: Vec<_> = (sent..(sent + per_tick).min(callers)).map(dial).collect();
        sent += batch.len();
        futures_util::future::join_all(batch).await;
    }
    let dialled_in = started.elapsed().as_secs_f64();
    println!(
        "callers: {callers} dialled in {dialled_in:.1} s ({:.0}/s)",
        callers as f64 / dialled_in
    );

    if latency {
        // Everybody waits: then the agents become ready, 50 a second.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let live = cti
            .call(
                reqwest::Method::GET,
                &format!("Queues/{}/Live", queue_sids[0]),
                json!(null),
            )
            .await;
        println!(
            "waiting in q0 before the agents are ready: {}",
            live["queue"]["waitingCount"]
        );
        let readied = Instant::now();
        for a in 0..agents {
            let due = readied + Duration::from_millis(20) * a as u32;
            tokio::time::sleep_until(due.into()).await;
            cti.command(&format!("{}", 10_000 + a), "ready", json!({}))
                .await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    } else {
        // Until every caller's conversation has its CDR (or nothing moves for 30 s).
        let store = voicepaas::store::Store::open(&url).await.expect("store");
        let (mut last, mut moved) = (0, Instant::now());
        loop {
            let done = store.count_cdrs().await.expect("count") as usize;
            if done >= callers {
                break;
            }
            if done != last {
                (last, moved) = (done, Instant::now());
            }
            if moved.elapsed() > Duration::from_secs(30) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = started.elapsed().as_secs_f64();
        let done = store.count_cdrs().await.expect("count");
        println!(
            "conversations ended with a CDR: {done} of {callers} in {took:.1} s ({:.0}/s end to end)",
            done as f64 / took
        );
        for bye in ["3", "7", "8", "10"] {
            let n = with_bye(&url, bye).await;
            println!("  byeType {bye}: {n}");
        }
        println!(
            "last CDR {:.1} s after the last caller dialled in",
            took - dialled_in
        );
        println!(
            "CPU: {:.2} ms per caller (server process)",
            (cpu_secs(pid) - cpu_from) * 1000.0 / callers as f64
        );
    }
    let (count, buckets) = offers(&client, &base).await;
    println!(
        "ready → offer's originate: {count} offers, p50 ≤ {} ms, p99 ≤ {} ms, p99.9 ≤ {} ms",
        bound_ms(&buckets, count, 0.5),
        bound_ms(&buckets, count, 0.99),
        bound_ms(&buckets, count, 0.999)
    );
    println!(
        "anchor: /healthz {:.0} requests/s (one connection, same server)",
        healthz_rate(&client, &base).await
    );
}

//! Complete calls through `voicepaas serve` and a `voicepaas sandbox` (separate processes)
//! at full speed: sustained calls per second, concurrent calls, time from originate to
//! CDR, the server's peak RSS, and the server's CPU: per orchestrated call, and per second
//! while idle before the load. The sandbox's CPU per call is printed beside the server's:
//! the media side of the same calls, measured in the same run (these machines differ by
//! up to 3× from one to the next).
//!
//! `cargo bench --bench calls_load` (env: LOAD_KIND notice|captcha|click2call, default
//! notice; LOAD_CALLS, default 30000; LOAD_RATE calls per second offered, default 1000;
//! LOAD_CALL_SECS, sandbox seconds per notice, default 10; LOAD_IDLE_SECS, seconds of idle
//! measured first, default 10; DATABASE_URL, default a temporary SQLite file;
//! VOICEPAAS_BIN, the server binary, default this build's — to run another build's
//! server under the same load; SANDBOX_BIN, the same for the sandbox).
//!
//! `LOAD_SIZE=1` (notices only) also measures the database: every call's result callback
//! goes to a local receiver; once all are delivered the size of the database is reported,
//! then the server is restarted with a retention of a few milliseconds, its start-up
//! purge deletes the delivered callbacks, the database is compacted and measured again:
//! what the platform keeps for good per call.

use std::time::{Duration, Instant};

use serde_json::json;

mod support;
use support::{
    cpu_secs, env_u64, load_account, peak_rss_mb, post, start_sandbox, start_server, stat_cpu_secs,
};

/// The server's database, read directly (not migrated: the server may be another build).
#[derive(Clone)]
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Db {
        if url.starts_with("sqlite:") {
            Db::Sqlite(sqlx::SqlitePool::connect(url).await.expect("sqlite"))
        } else {
            Db::Postgres(sqlx::PgPool::connect(url).await.expect("postgres"))
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap_or(0),
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap_or(0),
        }
    }

    /// (dialled, ended, CDR written) of every leg with a CDR, Unix ms.
    async fn timings(&self) -> Vec<(i64, i64, i64)> {
        let sql = "SELECT l.start_at, l.end_at, c.created_at FROM cdrs c JOIN calls l ON l.id = c.id OR l.conversation_id = c.id \
                   WHERE l.start_at IS NOT NULL AND l.end_at IS NOT NULL AND l.leg_seq = 0";
        match self {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap_or_default(),
            Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap_or_default(),
        }
    }
}

impl Db {
    /// Bytes the database's pages hold (SQLite: pages in use; PostgreSQL: the platform's
    /// tables with their indexes and TOAST), and rows per table.
    async fn size(&self) -> (i64, Vec<(&'static str, i64)>) {
        const TABLES: [&str; 7] = [
            "calls",
            "cdrs",
            "cdr_numbers",
            "outbox",
            "delivery_attempts",
            "conversations",
            "idempotency_keys",
        ];
        let mut rows = Vec::new();
        for table in TABLES {
            rows.push((
                table,
                self.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            ));
        }
        let bytes = match self {
            Db::Sqlite(_) => {
                let pages = self.count("SELECT page_count - freelist_count FROM pragma_page_count(), pragma_freelist_count()").await;
                pages * self.count("SELECT page_size FROM pragma_page_size()").await
            }
            Db::Postgres(_) => {
                let list = TABLES
                    .map(|t| format!("pg_total_relation_size('{t}')"))
                    .join(" + ");
                self.count(&format!("SELECT ({list})::BIGINT")).await
            }
        };
        (bytes, rows)
    }

    /// Gives freed space back (what a long-running database reaches as it reuses it).
    async fn compact(&self) {
        let sql = match self {
            Db::Sqlite(_) => "VACUUM",
            Db::Postgres(_) => "VACUUM FULL",
        };
        match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .expect("compact the database");
    }
}

/// Prints the database's size after `calls` calls.
async fn report_size(db: &Db, calls: u64, what: &str) {
    let (bytes, rows) = db.size().await;
    let rows: Vec<String> = rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "database {what}: {:.1} MB, {:.0} bytes per call; rows: {}",
        bytes as f64 / 1e6,
        bytes as f64 / calls.max(1) as f64,
        rows.join(", ")
    );
}

/// A webhook receiver answering 200 to everything, on a port of its own.
fn receiver() -> u16 {
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(
            |_body: actix_web::web::Bytes| async { actix_web::HttpResponse::Ok().body("ok") },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind the receiver");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    port
}

/// Waits until `sql` counts zero rows.
async fn until_none(db: &Db, sql: &str) {
    while db.count(sql).await > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Live legs and CDRs written.
async fn progress(db: &Db) -> (i64, i64) {
    let live = db
        .count("SELECT COUNT(*) FROM calls WHERE state IN ('placing', 'initiated', 'ringing', 'answered')")
        .await;
    (live, db.count("SELECT COUNT(*) FROM cdrs").await)
}

/// CPU seconds used so far by the threads of process `pid`, summed by thread name.
fn cpu_by_thread(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by;
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let name = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("?", |(n, _)| n)
            .to_string();
        *by.entry(name).or_default() += stat_cpu_secs(&stat);
    }
    by
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let kind = std::env::var("LOAD_KIND").unwrap_or_else(|_| "notice".into());
    let calls = env_u64("LOAD_CALLS", 30_000);
    let rate = env_u64("LOAD_RATE", 1000).max(10);
    let call_secs = env_u64("LOAD_CALL_SECS", 10).clamp(2, 21);
    let idle_secs = env_u64("LOAD_IDLE_SECS", 10);
    let bin =
        std::env::var("VOICEPAAS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_voicepaas").into());
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/load.db", dir.path().display()));
    // The sandbox and the server run as processes of their own, so the server's memory
    // and CPU are measured alone.
    let (sandbox, media_port) = start_sandbox(dir.path(), None);
    let sandbox_pid = sandbox.0.id();
    let (server, base) = start_server(&bin, &url, media_port, dir.path(), &[]).await;
    let pid = server.0.id();
    let client = reqwest::Client::new();
    let size = std::env::var("LOAD_SIZE").is_ok_and(|v| v == "1");
    assert!(!size || kind == "notice", "LOAD_SIZE measures notices");

    let db = Db::connect(&url).await;
    let app_body = if size {
        json!({"name": "load", "notifyUrl": format!("http://127.0.0.1:{}/result", receiver())})
    } else {
        json!({"name": "load"})
    };
    let (sid, token, app_id) = load_account(&client, &base, app_body).await;

    // Idle: what the server spends per second with nothing to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_from = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_ms_per_sec = (cpu_secs(pid) - idle_from) * 1000.0 / idle_secs.max(1) as f64;

    // One ring second, then `call_secs - 1` one-second items.
    let contents: Vec<_> = (1..call_secs)
        .map(|_| json!({"type": "digits", "content": "1"}))
        .collect();
    let tick = Duration::from_millis(100);
    let per_tick = (rate / 10) as usize;
    let started = Instant::now();
    let cpu_from = cpu_secs(pid);
    let sandbox_cpu_from = cpu_secs(sandbox_pid);
    let threads_from = cpu_by_thread(pid);
    let sampler_db = db.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        loop {
            let (live, done) = progress(&sampler_db).await;
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
        let n = per_tick.min((calls - sent) as usize) as u64;
        let numbers: Vec<String> = (sent..sent + n).map(|i| format!("138{i:08}0")).collect();
        match kind.as_str() {
            "notice" => {
                let body = json!({"appid": app_id, "to": numbers.join(","), "contents": contents, "times": 1});
                let url = format!("{base}/Accounts/{}/BatchVoiceNotices", sid);
                post(&client, &url, (&sid, &token), &body, ("statuscode", "0")).await;
            }
            "captcha" | "click2call" => {
                let posts = numbers.iter().map(|to| {
                    let (url, body, field, ok) = if kind == "captcha" {
                        (
                            format!("{base}/Accounts/{}/VoiceCaptchas", sid),
                            json!({"appid": app_id, "to": to, "code": "1234"}),
                            "statuscode",
                            "0",
                        )
                    } else {
                        (
                            format!("{base}/v1/Accounts/{}/Applications/{}/ctc/Conversations", sid, app_id),
                            json!({"action": "click2call", "caller": to, "callee": format!("139{}", &to[3..]), "maxDuration": call_secs}),
                            "statusCode",
                            "00000",
                        )
                    };
                    let (client, sid, token) = (client.clone(), sid.clone(), token.clone());
                    async move { post(&client, &url, (&sid, &token), &body, (field, ok)).await }
                });
                futures_util::future::join_all(posts).await;
            }
            other => panic!("LOAD_KIND {other:?}: notice, captcha or click2call"),
        }
        sent += n;
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    let offered_secs = started.elapsed().as_secs_f64();
    let samples = sampler.await.expect("sampler");
    let total_secs = started.elapsed().as_secs_f64();
    let cpu_per_call_ms = (cpu_secs(pid) - cpu_from) * 1000.0 / calls as f64;
    let sandbox_per_call_ms = (cpu_secs(sandbox_pid) - sandbox_cpu_from) * 1000.0 / calls as f64;
    let threads: Vec<String> = cpu_by_thread(pid)
        .into_iter()
        .map(|(name, secs)| {
            let per_call =
                (secs - threads_from.get(&name).copied().unwrap_or(0.0)) * 1000.0 / calls as f64;
            format!("{name} {per_call:.3}")
        })
        .collect();

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
    let timings = db.timings().await;
    let mut whole: Vec<i64> = timings.iter().map(|(start, _, cdr)| cdr - start).collect();
    let mut after_end: Vec<i64> = timings.iter().map(|(_, end, cdr)| cdr - end).collect();
    whole.sort_unstable();
    after_end.sort_unstable();
    println!("server: {bin}");
    println!(
        "{kind} calls: {calls} offered at {rate}/s over {offered_secs:.1} s; all CDRs written after {total_secs:.1} s"
    );
    println!("idle: {idle_ms_per_sec:.1} ms of CPU per second");
    println!("CPU: {cpu_per_call_ms:.3} ms per call (server process, accepting included)");
    println!("CPU by thread (ms per call): {}", threads.join(", "));
    println!(
        "sandbox CPU: {sandbox_per_call_ms:.3} ms per call (the media server's side of the same calls); server ÷ sandbox: {:.2}",
        cpu_per_call_ms / sandbox_per_call_ms.max(0.001)
    );
    println!("sustained: {sustained:.0} calls/s completed (from 10 % to 90 % of the calls done)");
    println!("concurrent: peak {peak_live} live legs");
    println!(
        "originate → CDR: p50 {} ms, p99 {} ms",
        percentile(&whole, 0.5),
        percentile(&whole, 0.99)
    );
    println!(
        "hangup → CDR written: p50 {} ms, p99 {} ms",
        percentile(&after_end, 0.5),
        percentile(&after_end, 0.99)
    );
    println!("peak RSS of the server: {:.0} MB", peak_rss_mb(pid));
    if size {
        until_none(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await;
        println!(
            "every result callback delivered after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        report_size(&db, calls, "with every callback delivered").await;
        drop(server);
        // A retention of under a millisecond: the purge at start-up deletes every
        // delivered callback, 5,000 rows at a time.
        let (second, _) = start_server(
            &bin,
            &url,
            media_port,
            dir.path(),
            &[("VOICEPAAS_DELIVERY_RETENTION_DAYS", "0.00000001")],
        )
        .await;
        until_none(&db, "SELECT COUNT(*) FROM outbox").await;
        drop(second);
        db.compact().await;
        report_size(&db, calls, "after the retention purge, compacted").await;
    }
}

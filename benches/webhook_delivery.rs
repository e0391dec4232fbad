//! Webhook deliveries per second: `WEBHOOK_ROWS` callbacks (default 50,000, each its own
//! ordering key) put in the outbox at once and sent by the dispatcher to a local receiver
//! (actix-web, keep-alive, answers 200), each signed and its attempt recorded.
//!
//! `cargo bench --bench webhook_delivery` (SQLite in a temporary directory), or with
//! `DATABASE_URL=postgres://…` (a schema of its own is created).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use voicepaas::config::Settings;
use voicepaas::domain::application::AppSettings;
use voicepaas::store::Store;
use voicepaas::store::journal::OutboxRow;
use voicepaas::webhooks::dispatcher::Dispatcher;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows: usize = std::env::var("WEBHOOK_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("temp dir");
    // On PostgreSQL: a schema of its own, dropped at the end.
    let mut own_schema = None;
    let url = match std::env::var("DATABASE_URL") {
        Ok(base) => {
            let schema = format!("webhookbench_{}", std::process::id());
            let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            own_schema = Some((admin, schema.clone()));
            format!("{base}{sep}options[search_path]={schema}")
        }
        Err(_) => format!("sqlite://{}/hooks.db", dir.path().display()),
    };
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        // Reads the body as a real receiver must (to check the signature); actix closes a
        // connection whose request body was left unread, so skipping it would measure
        // one TCP connection per delivery.
        App::new().default_service(web::to(move |_body: web::Bytes| {
            counter.fetch_add(1, Ordering::Relaxed);
            async { HttpResponse::Ok().body("ok") }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());

    let store = Store::open(&url).await.expect("store");
    let (account, _) = store.create_account("bench").await.unwrap();
    let app = store
        .create_app(
            &account.sid,
            &AppSettings {
                name: Some("bench".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let target = format!("http://127.0.0.1:{port}/hook");
    let body =
        json!({"requestid": "RQ1", "callid": "CA1", "result": "0", "userdata": "x".repeat(64)});
    let batch: Vec<OutboxRow> = (0..rows)
        .map(|i| {
            OutboxRow::new(
                &account.sid,
                &app.app_id,
                "result",
                &target,
                &body,
                &format!("key{i}"),
            )
        })
        .collect();
    for chunk in batch.chunks(5000) {
        store.queue_callbacks(chunk).await.expect("queue");
    }
    let values: HashMap<String, String> = [
        ("DATABASE_URL", url.as_str()),
        ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "true"),
        ("VOICEPAAS_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::from_values(&values).expect("settings");
    let started = Instant::now();
    Dispatcher::start(store.clone(), &settings).expect("dispatcher");
    while received.load(Ordering::Relaxed) < rows as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{rows} deliveries in {secs:.2} s: {:.0} deliveries/s ({})",
        rows as f64 / secs,
        store.backend()
    );
    if let Some((admin, schema)) = own_schema {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .expect("drop the benchmark's schema");
    }
}

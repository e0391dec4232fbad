//! Real processes for tests that need them: `voicepaas serve` and `voicepaas sandbox`
//! started from the built binary, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// Sends SIGTERM (the graceful stop).
    pub fn terminate(&self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
    }

    /// Waits for the process to exit, failing the test after 30 s (the grace a container
    /// platform gives); its exit status and how long the wait took.
    pub async fn exited(&mut self) -> (std::process::ExitStatus, Duration) {
        let waiting = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return (status, waiting.elapsed());
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(30),
                "did not exit within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `voicepaas sandbox` on a port of its own, at `speed`.
pub fn sandbox(port: u16, speed: &str, dir: &std::path::Path) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_voicepaas"))
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .env("VOICEPAAS_SANDBOX_SPEED", speed)
        .env("VOICEPAAS_RECORDINGS_DIR", dir.join("recordings"))
        .env("VOICEPAAS_LOG", "warn")
        .env_remove("VOICEPAAS_CONFIG")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the sandbox");
    Proc(child)
}

/// `voicepaas serve` on `db`, using the sandbox at `media_port`; waits until ready.
pub async fn server(
    db: &TestDb,
    media_port: u16,
    dir: &std::path::Path,
    grace: &str,
) -> (Proc, String) {
    server_with(
        db,
        media_port,
        dir,
        &[("VOICEPAAS_MEDIA_GRACE_SECS", grace)],
    )
    .await
}

/// [`server`] with other settings (`env`) over the defaults.
pub async fn server_with(
    db: &TestDb,
    media_port: u16,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Proc, String) {
    let media = format!("esl://:ClueCon@127.0.0.1:{media_port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_voicepaas"));
    command
        .env("VOICEPAAS_MEDIA", media)
        .env("VOICEPAAS_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    serve(db, dir, command).await
}

/// Starts `command` as `voicepaas serve` on `db` and a free port; waits until ready.
pub async fn serve(db: &TestDb, dir: &std::path::Path, mut command: Command) -> (Proc, String) {
    let port = free_port();
    let child = Proc(
        command
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("VOICEPAAS_LISTEN", format!("127.0.0.1:{port}"))
            .env("VOICEPAAS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("VOICEPAAS_PROMPTS_DIR", dir.join("prompts"))
            .env("VOICEPAAS_RECORDINGS_DIR", dir.join("recordings"))
            .env_remove("VOICEPAAS_CONFIG")
            .spawn()
            .expect("start the server"),
    );
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("{address}/readyz")).send().await
            && r.status().is_success()
        {
            return (child, address);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not become ready");
}

/// An account (all calls at once up to `concurrent`) and an application with every
/// callback URL, on the server at `address`.
pub async fn customer(address: &str, concurrent: u32) -> TestApp {
    let mut app = TestApp {
        address: address.to_string(),
        client: reqwest::Client::new(),
        sid: String::new(),
        token: String::new(),
        app_id: String::new(),
        _files: tempfile::tempdir().unwrap(),
    };
    let (sid, token) = app.create_account("crash test").await;
    app.sid = sid.clone();
    app.token = token;
    let created = app.create_app(&sid, json!({"name": "x", "notifyUrl": "https://example.com/n", "statusUrl": "https://example.com/s", "cdrUrl": "https://example.com/c"})).await;
    app.app_id = created["appId"].as_str().unwrap().to_string();
    app.set_limits(json!({"cps": 1000, "maxConcurrentCalls": concurrent}))
        .await;
    app
}

/// Waits until every id has its CDR (up to `limit`), and returns the CDRs.
pub async fn all_cdrs(
    store: &voicepaas::store::Store,
    ids: &[String],
    limit: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let mut found = Vec::new();
        for id in ids {
            match store.cdr_body(id).await.unwrap() {
                Some(body) => found.push(serde_json::from_str(&body).unwrap()),
                None => break,
            }
        }
        if found.len() == ids.len() {
            return found;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {} calls have a CDR after {limit:?}",
            found.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

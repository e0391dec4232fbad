//! Test harness: a fresh database per test (a temporary SQLite file, or a new schema in
//! the PostgreSQL of `TEST_DATABASE_URL`), the real server on a random port, and an
//! account with one application created through the operator API.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Value, json};
use voicepaas::config::Settings;
use voicepaas::startup::Application;
use voicepaas::store::Store;

/// The operator token every test server is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Declares one test per backend: `NAME::sqlite` always runs, `NAME::postgres` runs when
/// `TEST_DATABASE_URL` is set (and fails if it is set but unreachable).
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: TestDb) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::helpers::*;

            async fn run($db: TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(TestDb::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = TestDb::postgres(concat!(module_path!(), "::postgres")).await {
                    run(db).await
                }
            }
        }
    };
}

/// A database made for one test, dropped after it.
pub struct TestDb {
    /// What `DATABASE_URL` should say.
    pub url: String,
    /// `"sqlite"` or `"postgres"`.
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

/// Whether a test's outside tool (`what`) is `ready`. When it is not: a failure in CI
/// (`.ci/run` installs every tool), else a SKIPPED line for `test` on the real stderr,
/// past the test harness's capture, so the skip shows.
pub fn tool_ready(ready: bool, what: &str, test: &str) -> bool {
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but {what} is missing (.ci/run installs it)"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED (no {what}): {test}");
    }
    ready
}

/// Whether the browser tests can run here: `node` with `tests/console/node_modules`
/// (playwright-core) and `/usr/bin/chromium` (`.ci/run` installs them); without them the
/// test `test` prints SKIPPED, unless CI is set.
pub fn browser_ready(test: &str) -> bool {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let ready = here.join("node_modules/playwright-core").exists()
        && std::path::Path::new("/usr/bin/chromium").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok();
    tool_ready(ready, "node, playwright-core or chromium", test)
}

impl TestDb {
    /// A temporary SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/voicepaas.db", dir.path().display());
        Self {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            schema: None,
        }
    }

    /// A fresh schema in `TEST_DATABASE_URL`, or `None` (and a line on stderr) when unset.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
            // Written to the real stderr, past the test harness's capture, so the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (TEST_DATABASE_URL unset): {test}"
            );
            return None;
        };
        let schema = format!(
            "t_{}",
            voicepaas::domain::credentials::hex(
                &voicepaas::domain::credentials::random_bytes::<8>()
            )
        );
        let admin = sqlx::PgPool::connect(&base).await.unwrap_or_else(|e| {
            panic!("TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
        });
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        Some(Self {
            url,
            backend: "postgres",
            _dir: None,
            schema: Some((base, schema)),
        })
    }

    /// A PostgreSQL database the test made itself (e.g. its own instance), used as it is.
    pub fn at_postgres(url: String) -> Self {
        Self {
            url,
            backend: "postgres",
            _dir: None,
            schema: None,
        }
    }

    /// Runs one SQL statement on this database directly (test set-up behind the API).
    pub async fn exec(&self, sql: &str) {
        if self.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect(sql);
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect(sql);
            pool.close().await;
        }
    }

    /// The first column of the first row of `sql`, as text (`CAST` it in the query).
    pub async fn text(&self, sql: &str) -> Option<String> {
        if self.backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&self.url).await.expect("connect");
            let v = sqlx::query_scalar(sql)
                .fetch_optional(&pool)
                .await
                .expect(sql);
            pool.close().await;
            v
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.expect("connect");
            let v = sqlx::query_scalar(sql)
                .fetch_optional(&pool)
                .await
                .expect(sql);
            pool.close().await;
            v
        }
    }

    /// A store on this database (migrated), for assertions behind the API.
    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// Starts the server on this database with `overrides` of the default test settings.
    pub async fn spawn(&self, overrides: &[(&str, &str)]) -> TestApp {
        self.spawn_observed(overrides).await.0
    }

    /// [`TestDb::spawn`], with the in-process sandbox's Event Socket address (an observer
    /// connects there with the password `ClueCon`).
    pub async fn spawn_observed(
        &self,
        overrides: &[(&str, &str)],
    ) -> (TestApp, Option<std::net::SocketAddr>) {
        let files = tempfile::tempdir().expect("temp dir");
        let prompts = files.path().join("prompts").display().to_string();
        let recordings = files.path().join("recordings").display().to_string();
        let mut values: HashMap<String, String> = [
            ("VOICEPAAS_PROMPTS_DIR", prompts.as_str()),
            ("VOICEPAAS_RECORDINGS_DIR", recordings.as_str()),
            ("VOICEPAAS_LISTEN", "127.0.0.1:0"),
            ("DATABASE_URL", self.url.as_str()),
            ("VOICEPAAS_ADMIN_TOKEN", ADMIN_TOKEN),
            ("VOICEPAAS_NODE_ID", "424"),
            ("VOICEPAAS_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in overrides {
            values.insert(k.to_string(), v.to_string());
        }
        values.retain(|_, v| !v.is_empty());
        let settings = Settings::from_values(&values).expect("test settings");
        let app = Application::build(settings).await.expect("server starts");
        let media = app.sandbox_addr();
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let mut test_app = TestApp {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            sid: String::new(),
            token: String::new(),
            app_id: String::new(),
            _files: files,
        };
        if values.contains_key("VOICEPAAS_ADMIN_TOKEN") {
            let (sid, token) = test_app.create_account("test account").await;
            test_app.app_id = test_app.create_app(&sid, json!({"name": "test app"})).await["appId"]
                .as_str()
                .expect("appId")
                .to_string();
            test_app.sid = sid;
            test_app.token = token;
        }
        (test_app, media)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.schema.take() {
            // Drop runs inside the test's runtime; a thread of its own may block on another.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                            .execute(&pool)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running server and the account/application a test acts as.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client (no redirects).
    pub client: reqwest::Client,
    /// AccountSid of the test account.
    pub sid: String,
    /// Its auth token.
    pub token: String,
    /// Its application.
    pub app_id: String,
    /// Prompts and recordings of this server.
    pub _files: tempfile::TempDir,
}

/// Every state a stored leg can be in, from acceptance to its end.
pub const LEG_STATES: &[&str] = &[
    "queued",
    "placing",
    "initiated",
    "ringing",
    "answered",
    "completed",
];

/// Status and parsed JSON body of a response.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body as JSON (`Null` if it was not JSON).
    pub body: Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Self {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    /// `statuscode` (notices) or `statusCode` (click-to-call).
    pub fn code(&self) -> &str {
        self.body
            .get("statuscode")
            .or_else(|| self.body.get("statusCode"))
            .and_then(Value::as_str)
            .unwrap_or("<none>")
    }

    /// `statusmsg` or `statusMsg`.
    pub fn msg(&self) -> &str {
        self.body
            .get("statusmsg")
            .or_else(|| self.body.get("statusMsg"))
            .and_then(Value::as_str)
            .unwrap_or("<none>")
    }
}

impl TestApp {
    /// `url` relative to the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POSTs JSON with the test account's Basic credentials.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_as(path, body, &self.sid, &self.token, &[]).await
    }

    /// POSTs JSON with the given credentials and extra headers.
    pub async fn post_as(
        &self,
        path: &str,
        body: &Value,
        sid: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .client
            .post(self.url(path))
            .basic_auth(sid, Some(token))
            .json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// POSTs raw bytes with a content type and the test account's credentials.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let request = self
            .client
            .post(self.url(path))
            .basic_auth(&self.sid, Some(&self.token))
            .header("content-type", content_type);
        Answer::from(request.body(body).send().await.expect("request")).await
    }

    /// Any request with the test account's credentials.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = self
            .client
            .request(method, self.url(path))
            .basic_auth(&self.sid, Some(&self.token));
        if let Some(body) = body {
            request = request.header("content-type", "audio/wav").body(body);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// An operator request.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// Creates an account through the operator API: `(sid, token)`.
    pub async fn create_account(&self, name: &str) -> (String, String) {
        let a = self
            .admin(
                reqwest::Method::POST,
                "/admin/accounts",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        (
            a.body["accountSid"].as_str().expect("sid").into(),
            a.body["authToken"].as_str().expect("token").into(),
        )
    }

    /// Creates an application through the operator API; returns the whole answer body.
    pub async fn create_app(&self, sid: &str, body: Value) -> Value {
        let a = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/accounts/{sid}/applications"),
                Some(body),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    /// Changes the test account's limits.
    pub async fn set_limits(&self, limits: Value) {
        let a = self
            .admin(
                reqwest::Method::PATCH,
                &format!("/admin/accounts/{}", self.sid),
                Some(limits),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }

    /// Limits the account to one live call and fills it with a notice that rings until
    /// its answer timeout (45 s), so the calls accepted next stay queued.
    pub async fn occupy_line(&self, store: &Store) {
        self.set_limits(json!({"maxConcurrentCalls": 1})).await;
        let a = self
            .post(
                &self.account_path("VoiceNotices"),
                &self.notice("13800009991"),
            )
            .await;
        assert_eq!(a.code(), "0", "{}", a.body);
        let request = a.body["requestid"].as_str().expect("requestid").to_string();
        for _ in 0..200 {
            let calls = store.calls_of_request(&request).await.expect("calls");
            if calls[0].state != "queued" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the blocking call was never placed");
    }

    /// Path of an agent-API endpoint of the test application (`rest` after the app).
    pub fn cti_path(&self, rest: &str) -> String {
        format!(
            "/v1/Accounts/{}/Applications/{}/{rest}",
            self.sid, self.app_id
        )
    }

    /// An agent-API request with JSON (or no) body and the test account's credentials.
    pub async fn cti(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> Answer {
        self.cti_in(&self.app_id, method, rest, body).await
    }

    /// [`TestApp::cti`] on another application `app_id` of the test account.
    pub async fn cti_in(
        &self,
        app_id: &str,
        method: reqwest::Method,
        rest: &str,
        body: Option<Value>,
    ) -> Answer {
        let path = format!("/v1/Accounts/{}/Applications/{app_id}/{rest}", self.sid);
        let mut request = self
            .client
            .request(method, self.url(&path))
            .basic_auth(&self.sid, Some(&self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::from(request.send().await.expect("request")).await
    }

    /// Path of an account endpoint of the test account.
    pub fn account_path(&self, rest: &str) -> String {
        format!("/Accounts/{}/{rest}", self.sid)
    }

    /// Path of the click-to-call collection of the test application.
    pub fn ctc_path(&self) -> String {
        format!(
            "/v1/Accounts/{}/Applications/{}/ctc/Conversations",
            self.sid, self.app_id
        )
    }

    /// A valid notice body for the test application.
    pub fn notice(&self, to: &str) -> Value {
        json!({"appid": self.app_id, "to": to, "contents": [{"type": "digits", "content": "123"}]})
    }

    /// Uploads a one-second 8 kHz prompt.
    pub async fn upload_prompt(&self, name: &str) {
        let wav = voicepaas::domain::prompt::build_wav(8000, &[0; 8000]);
        let a = self
            .send(
                reqwest::Method::PUT,
                &format!(
                    "/Accounts/{}/Applications/{}/Prompts/{name}",
                    self.sid, self.app_id
                ),
                Some(wav),
            )
            .await;
        assert_eq!(a.code(), "0", "{}", a.body);
    }
}

/// Applies `patch` to a JSON object: `null` removes a key, anything else sets it.
pub fn patched(mut body: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().expect("patch object") {
        if v.is_null() {
            body.as_object_mut().expect("object").remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// Asserts `id` is an id of the contract with `prefix` made by node 424.
pub fn assert_id(id: &Value, prefix: &str) {
    let id = id.as_str().unwrap_or_else(|| panic!("{prefix} id missing"));
    assert_eq!(id.len(), 34, "{id}");
    assert!(id.starts_with(&format!("{prefix}00424")), "{id}");
    assert!(id[2..].bytes().all(|b| b.is_ascii_digit()), "{id}");
}

/// Waits (up to 30 s) for the CDR of call or conversation `id` and returns it.
pub async fn wait_cdr(store: &Store, id: &str) -> Value {
    for _ in 0..1500 {
        if let Some(body) = store.cdr_body(id).await.expect("cdr") {
            return serde_json::from_str(&body).expect("cdr json");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no CDR for {id} within 30 s");
}

/// The callbacks queued for ordering key `key`, as (kind, parsed body).
pub async fn callbacks(store: &Store, key: &str) -> Vec<(String, Value)> {
    store
        .outbox_of(key)
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| {
            (
                e.kind,
                serde_json::from_str(&e.body).expect("callback json"),
            )
        })
        .collect()
}

/// Waits (up to 4 s) until the first callback of ordering key `key` has left `pending`, or
/// has reached `state`; the caller asserts on what it finds.
pub async fn settle_delivery(store: &Store, key: &str, state: &str) {
    for _ in 0..200 {
        let now = store.outbox_of(key).await.expect("outbox")[0].state.clone();
        if now == state || now != "pending" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

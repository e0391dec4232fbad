//! Subcommands of the `voicepaas` binary: `serve`, `migrate`, `account …`, `app …`,
//! `agent …`, `number …`. The account, app, agent and number commands work directly on the database named by
//! `DATABASE_URL` and print JSON.

mod agent;
mod number;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::domain::Fields;
use crate::domain::application::{AppSettings, MAX_NAME_BYTES};
use crate::domain::limits::AccountPatch;
use crate::media::sandbox::Sandbox;
use crate::startup::Application;
use crate::store::Store;
use crate::webhooks::guard::check_targets;

/// voicepaas: self-hostable cloud voice API (notices, captchas, click-to-call).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage the agents of an application.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Grant, revoke and list inbound numbers (DIDs).
    #[command(subcommand)]
    Number(number::NumberCommand),
    /// Run the sandbox media server alone (FreeSWITCH's Event Socket protocol, API.md §12).
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8021")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account; prints its AccountSid and auth token (shown only once).
    Create {
        /// A label for operators.
        #[arg(long)]
        name: String,
    },
    /// List accounts.
    List,
    /// Disable an account: its requests then fail authentication.
    Disable {
        /// The AccountSid.
        sid: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an application; prints its appId and signing secret.
    Create {
        /// Owner AccountSid.
        #[arg(long)]
        account: String,
        /// A label.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: AppFlags,
    },
    /// List the applications of an account.
    List {
        /// Owner AccountSid.
        #[arg(long)]
        account: String,
    },
    /// Change an application's settings.
    Update {
        /// Owner AccountSid.
        #[arg(long)]
        account: String,
        /// The appId.
        #[arg(long)]
        app: String,
        /// A new label.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: AppFlags,
    },
}

/// Application settings as flags; validated by the same rules as the operator API.
#[derive(Debug, Args)]
struct AppFlags {
    /// Result callbacks of notices and captchas ("" clears).
    #[arg(long)]
    notify_url: Option<String>,
    /// Click-to-call status callbacks ("" clears).
    #[arg(long)]
    status_url: Option<String>,
    /// Click-to-call CDR callbacks ("" clears).
    #[arg(long)]
    cdr_url: Option<String>,
    /// Batched CDR feed ("" clears).
    #[arg(long)]
    cdr_feed_url: Option<String>,
    /// CDRs per feed batch (1-1000).
    #[arg(long)]
    cdr_batch_size: Option<i64>,
    /// Longest wait for a partial feed batch, ms.
    #[arg(long)]
    cdr_batch_window_ms: Option<i64>,
    /// A caller id the app may display (repeat for several; none = any).
    #[arg(long = "allowed-caller-id")]
    allowed_caller_ids: Vec<String>,
}

impl AppFlags {
    fn parse(&self, name: Option<&str>, creating: bool) -> Result<AppSettings, String> {
        let mut body = Map::new();
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                body.insert(key.to_string(), v);
            }
        };
        set("name", name.map(Value::from));
        set("notifyUrl", self.notify_url.clone().map(Value::from));
        set("statusUrl", self.status_url.clone().map(Value::from));
        set("cdrUrl", self.cdr_url.clone().map(Value::from));
        set("cdrFeedUrl", self.cdr_feed_url.clone().map(Value::from));
        set("cdrBatchSize", self.cdr_batch_size.map(Value::from));
        set(
            "cdrBatchWindowMs",
            self.cdr_batch_window_ms.map(Value::from),
        );
        set(
            "allowedCallerIds",
            (!self.allowed_caller_ids.is_empty())
                .then(|| Value::from(self.allowed_caller_ids.clone())),
        );
        AppSettings::parse(Fields(&body), creating).map_err(|e| e.0)
    }
}

/// Runs the parsed command line; the process exit code says how it went.
pub fn main(cli: Cli) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("voicepaas: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.log_filter, settings.log_json);
    let runtime = match runtime_workers(&cli.command, &settings) {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("voicepaas: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voicepaas: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How many threads the async runtime has; one means a current-thread runtime on the main
/// thread. `serve` on SQLite: one for calls, the matchmaker, the journal and the Event
/// Socket (the HTTP workers have their own threads, the database work runs on SQLite's),
/// as a second worker mostly wakes to steal a task the first would have run a moment
/// later, which costs a quarter of a call's CPU. `serve` on PostgreSQL, whose protocol runs
/// on these threads, and every other command (the standalone sandbox plays every call of
/// its media server): one per core. `TOKIO_WORKER_THREADS` overrides both.
fn runtime_workers(command: &Command, settings: &Settings) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    match std::env::var("TOKIO_WORKER_THREADS").map(|n| n.trim().parse::<usize>()) {
        Ok(Ok(n)) if n > 0 => n,
        _ if matches!(command, Command::Serve) && !settings.uses_postgres() => 1,
        _ => cores,
    }
}

fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn run(command: Command, settings: Settings) -> Result<(), String> {
    let open_store = || async {
        Store::open(settings.database_url.expose())
            .await
            .map_err(|e| e.to_string())
    };
    match command {
        Command::Serve => {
            let app = Application::build(settings.clone())
                .await
                .map_err(|e| e.to_string())?;
            let database = if settings.uses_postgres() {
                "postgres"
            } else {
                "sqlite"
            };
            tracing::info!(port = app.port(), listen = %settings.listen, database, "voicepaas serving");
            app.run_until_stopped().await.map_err(|e| e.to_string())
        }
        Command::Sandbox { listen } => {
            let sandbox = Sandbox::start_with(listen, &settings)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(addr = %sandbox.addr(), speed = settings.sandbox_speed, "sandbox media server listening");
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
        }
        Command::Migrate => {
            println!("migrations applied ({})", open_store().await?.backend());
            Ok(())
        }
        Command::Account(command) => account(&open_store().await?, command).await,
        Command::Agent(command) => agent::run(&open_store().await?, &settings, command)
            .await
            .map_err(|e| e.to_string()),
        Command::Number(command) => number::run(&open_store().await?, &settings, command)
            .await
            .map_err(|e| e.to_string()),
        Command::App(command) => {
            app(
                &open_store().await?,
                command,
                settings.allow_private_webhooks,
            )
            .await
        }
    }
}

async fn account(store: &Store, command: AccountCommand) -> Result<(), String> {
    let failed = |e: crate::store::StoreError| e.to_string();
    match command {
        AccountCommand::Create { name } => {
            crate::domain::check_label("name", &name, MAX_NAME_BYTES).map_err(|e| e.0)?;
            let (account, token) = store.create_account(&name).await.map_err(failed)?;
            print(&json!({"accountSid": account.sid, "authToken": token}));
        }
        // The operator API's shape (`GET /admin/accounts`).
        AccountCommand::List => {
            print(&json!({"accounts": store.list_accounts().await.map_err(failed)?}))
        }
        AccountCommand::Disable { sid } => {
            let patch = AccountPatch {
                enabled: Some(false),
                ..AccountPatch::default()
            };
            let account = store.update_account(&sid, &patch).await.map_err(failed)?;
            print(&json!(
                account.ok_or_else(|| format!("account {sid} not found"))?
            ));
        }
    }
    Ok(())
}

async fn app(store: &Store, command: AppCommand, allow_private: bool) -> Result<(), String> {
    let failed = |e: crate::store::StoreError| e.to_string();
    match command {
        AppCommand::Create {
            account,
            name,
            settings,
        } => {
            let settings = settings.parse(Some(&name), true)?;
            check_targets(settings.urls(), allow_private)
                .await
                .map_err(|e| e.to_string())?;
            store
                .find_account(&account)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("account {account} not found"))?;
            let app = store
                .create_app(&account, &settings)
                .await
                .map_err(failed)?;
            let mut shown = app.to_json();
            shown["signingSecret"] = app.signing_secret.expose().into();
            print(&shown);
        }
        AppCommand::List { account } => {
            let apps = store.list_apps(&account).await.map_err(failed)?;
            let apps: Vec<Value> = apps.iter().map(|a| a.to_json()).collect();
            print(&json!({"applications": apps}));
        }
        AppCommand::Update {
            account,
            app,
            name,
            settings,
        } => {
            let settings = settings.parse(name.as_deref(), false)?;
            check_targets(settings.urls(), allow_private)
                .await
                .map_err(|e| e.to_string())?;
            let updated = store
                .update_app(&account, &app, &settings)
                .await
                .map_err(failed)?;
            print(
                &updated
                    .ok_or_else(|| format!("application {app} not found in account {account}"))?
                    .to_json(),
            );
        }
    }
    Ok(())
}

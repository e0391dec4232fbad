//! Building the server from settings: open the store, bind the listener (port 0 works,
//! so tests can learn the port), mount the routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::api::{self, AppState};
use crate::config::{MediaSetting, Settings};
use crate::domain::IdGenerator;
use crate::media::pool::MediaPool;
use crate::media::sandbox::Sandbox;
use crate::orchestrator::Orchestrator;
use crate::store::{Store, StoreError};
use crate::webhooks::dispatcher::Dispatcher;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The webhook dispatcher's HTTP client could not be built.
    #[error("webhook client: {0}")]
    Webhooks(#[from] reqwest::Error),
    /// The prompts directory could not be prepared.
    #[error("cannot prepare the prompts directory {dir}: {source}")]
    Prompts {
        /// `VOICEPAAS_PROMPTS_DIR`.
        dir: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How long a stopping server waits for HTTP requests in flight.
const REQUESTS_FINISH_WITHIN: u64 = 15;
/// How long a stopping server then waits for webhook deliveries in flight (the two stay
/// under the 30 s a container platform gives before SIGKILL).
const DELIVERIES_FINISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A built, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    sandbox: Option<Sandbox>,
    dispatcher: Dispatcher,
    orchestrator: Orchestrator,
    /// Agent sessions (their sockets close at a stop).
    agents: std::sync::Arc<crate::agents::Agents>,
    /// The periodic retention purge.
    retention: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens the store (applying migrations), starts the in-process sandbox when
    /// `VOICEPAAS_MEDIA=sandbox`, and binds `settings.listen`.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let store = Store::open(settings.database_url.expose()).await?;
        let sandbox = match settings.media {
            MediaSetting::Sandbox => {
                let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let sandbox = Sandbox::start_with(any_port, &settings)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: "sandbox 127.0.0.1:0".into(),
                        source,
                    })?;
                tracing::info!(addr = %sandbox.addr(), speed = settings.sandbox_speed, "sandbox media server listening");
                Some(sandbox)
            }
            MediaSetting::Nodes(_) => None,
        };
        let listener = TcpListener::bind(settings.listen).map_err(|source| StartError::Bind {
            addr: settings.listen.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: settings.listen.to_string(),
                source,
            })?
            .port();
        let media =
            Arc::new(MediaPool::connect(&settings, sandbox.as_ref().map(Sandbox::addr)).await);
        let ids = Arc::new(IdGenerator::new(settings.node_id));
        let (acd, acd_inputs) = crate::acd::hub::AcdHandle::new();
        let orchestrator = Orchestrator::start(
            store.clone(),
            media.clone(),
            settings.clone(),
            ids.clone(),
            acd.clone(),
        )
        .await
        .map_err(|source| StartError::Prompts {
            dir: settings.prompts_dir.display().to_string(),
            source,
        })?;
        store.fill_missing_hosts().await?;
        let dispatcher = Dispatcher::start(store.clone(), &settings)?;
        let retention = tokio::spawn(crate::store::retention::purge_periodically(
            store.clone(),
            crate::store::retention::Retention::of(&settings),
        ));
        let agents = crate::agents::Agents::start(
            store.clone(),
            settings.clone(),
            ids.clone(),
            Some(orchestrator.clone()),
        )
        .await;
        agents.bus().watch(acd.clone());
        tokio::spawn(crate::acd::devices::follow(
            media.clone(),
            settings.sip_domain.clone(),
            store.clone(),
            acd.clone(),
        ));
        tokio::spawn(crate::acd::hub::run(
            (acd, acd_inputs),
            agents.clone(),
            orchestrator.clone(),
        ));
        let state = web::Data::new(AppState {
            store,
            ids,
            settings,
            media,
            orchestrator: orchestrator.clone(),
            agents: agents.clone(),
        });
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(api::observe::observe))
                .configure(api::configure)
        })
        .workers(workers)
        .shutdown_timeout(REQUESTS_FINISH_WITHIN)
        .listen(listener)
        .map_err(|source| StartError::Bind {
            addr: "listener".into(),
            source,
        })?
        .run();
        Ok(Self {
            port,
            server,
            sandbox,
            dispatcher,
            orchestrator,
            agents,
            retention,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The in-process sandbox's Event Socket address (`VOICEPAAS_MEDIA=sandbox`), where
    /// an observer may connect as to a FreeSWITCH node.
    pub fn sandbox_addr(&self) -> Option<std::net::SocketAddr> {
        self.sandbox.as_ref().map(Sandbox::addr)
    }

    /// Serves until the process is told to stop (SIGINT/SIGTERM), then stops gracefully:
    /// no new connections, requests in flight finish (up to 15 s), webhook deliveries in
    /// flight finish or are handed back (up to 10 s), no more calls are placed and the
    /// lease is given up so another replica re-attaches the live calls.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // No call is placed once the stop is asked for: calls accepted while requests
        // drain are left queued for the next process.
        let orchestrator = self.orchestrator.clone();
        let agents = self.agents.clone();
        let placing = tokio::spawn(async move {
            stop_signal().await;
            agents.store().stopping();
            orchestrator.stop_placing();
            // Agent sockets close with 1001 so their clients reconnect to another replica
            // (and the HTTP server, which waits for open connections, can stop).
            agents.stop();
        });
        let result = self.server.await;
        placing.abort();
        self.retention.abort();
        tracing::info!("stopping: HTTP closed");
        self.dispatcher.stop(DELIVERIES_FINISH_WITHIN).await;
        self.orchestrator.stop().await;
        tracing::info!("stopped; live calls are left to the other replicas");
        drop(self.sandbox);
        result
    }
}

/// SIGTERM or SIGINT (actix-web stops the HTTP server on the same signals).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

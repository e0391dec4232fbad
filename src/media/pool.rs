//! The media pool: one Event Socket client per media server (the in-process sandbox, or
//! the FreeSWITCH nodes of `VOICEPAAS_MEDIA`). A node is up while its client is
//! connected; the client reconnects by itself. `/readyz` and call acceptance ask
//! [`MediaPool::up`]: new calls are refused (-5 / 10005) only when no node is up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{MediaSetting, Settings};
use crate::esl::{EslClient, EslOptions, Incoming};

/// How long start-up waits for the in-process sandbox's first connection (it is local and
/// comes up at once), and for a FreeSWITCH node's (which may be down: it is retried).
const FIRST_CONNECT_SANDBOX: Duration = Duration::from_secs(5);
const FIRST_CONNECT_NODE: Duration = Duration::from_secs(1);

/// One media server.
pub struct MediaNode {
    /// `host:port`, for logs and `/readyz`.
    pub name: String,
    /// Its Event Socket client.
    pub client: EslClient,
}

/// Every media server of this process.
pub struct MediaPool {
    nodes: Vec<MediaNode>,
}

impl MediaPool {
    /// Connects to the configured media servers (`sandbox` is the in-process one at
    /// `sandbox_addr`), waiting briefly for each first connection.
    pub async fn connect(settings: &Settings, sandbox_addr: Option<SocketAddr>) -> MediaPool {
        let targets: Vec<EslOptions> = match (&settings.media, sandbox_addr) {
            (MediaSetting::Sandbox, Some(addr)) => {
                vec![EslOptions::new(
                    addr.ip().to_string(),
                    addr.port(),
                    settings.sandbox_password.expose(),
                )]
            }
            (MediaSetting::Sandbox, None) => Vec::new(),
            (MediaSetting::Nodes(nodes), _) => nodes
                .iter()
                .map(|n| EslOptions::new(n.host.clone(), n.port, n.password.expose()))
                .collect(),
        };
        let wait = if matches!(settings.media, MediaSetting::Sandbox) {
            FIRST_CONNECT_SANDBOX
        } else {
            FIRST_CONNECT_NODE
        };
        let mut nodes = Vec::with_capacity(targets.len());
        for options in targets {
            let name = format!("{}:{}", options.host, options.port);
            let (client, mut incoming) = EslClient::start(options);
            match tokio::time::timeout(wait, incoming.recv()).await {
                Ok(Some(Incoming::Connected)) => {
                    tracing::info!(node = %name, "media server connected")
                }
                _ => {
                    tracing::warn!(node = %name, "media server not reachable yet; retrying in the background")
                }
            }
            tokio::spawn(watch(name.clone(), incoming));
            nodes.push(MediaNode { name, client });
        }
        MediaPool { nodes }
    }

    /// How many nodes are connected, and how many there are.
    pub fn up(&self) -> (usize, usize) {
        (
            self.nodes
                .iter()
                .filter(|n| n.client.is_connected())
                .count(),
            self.nodes.len(),
        )
    }

    /// Whether at least one node is connected.
    pub fn any_up(&self) -> bool {
        self.nodes.iter().any(|n| n.client.is_connected())
    }
}

/// Follows a node's connection notices. No call subscribes to channel events yet, so
/// nothing else arrives; reading the stream keeps the client from ever blocking on it.
async fn watch(name: String, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(notice) = incoming.recv().await {
        match notice {
            Incoming::Disconnected(why) => {
                tracing::warn!(node = %name, reason = %why, "media server down")
            }
            Incoming::Connected | Incoming::Reconnected(_) => {
                tracing::info!(node = %name, "media server up")
            }
            Incoming::Event(_) => {}
        }
    }
}

//! The sandbox media server (API.md §12): a TCP server speaking FreeSWITCH's Event Socket
//! protocol, so tests, the default `serve` and production run the same client code. Calls
//! behave by the callee number's last four digits ([`outcome`]); durations and timers run
//! on the sandbox clock (`VOICEPAAS_SANDBOX_SPEED`). Standalone:
//! `voicepaas sandbox --listen 127.0.0.1:8021`.

mod channel;
pub mod clock;
mod conference;
pub mod outcome;
mod registrar;
mod session;
mod switch;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use switch::Switch;

/// Default password, as in FreeSWITCH (`VOICEPAAS_SANDBOX_PASSWORD` changes it).
pub const DEFAULT_PASSWORD: &str = "ClueCon";

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    switch: std::sync::Arc<Switch>,
    stop: watch::Sender<bool>,
    cut: watch::Sender<bool>,
}

impl Sandbox {
    /// Listens on `listen` (port 0 for any) and serves until stopped or dropped.
    pub async fn start(
        listen: SocketAddr,
        password: &str,
        speed: f64,
        recordings: PathBuf,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let switch = Switch::new(clock::SandboxClock::new(speed), recordings);
        let (stop, mut stopped) = watch::channel(false);
        let (cut, _) = watch::channel(false);
        let password = password.to_string();
        tokio::spawn(switch.clone().heartbeat(stop.subscribe()));
        let (accept_switch, accept_cut) = (switch.clone(), cut.clone());
        tokio::spawn(async move {
            let switch = accept_switch;
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            tokio::spawn(session::serve(switch.clone(), stream, password.clone(), accept_cut.subscribe()));
                        }
                        Err(e) => tracing::warn!(error = %e, "sandbox accept failed"),
                    },
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Self {
            addr,
            switch,
            stop,
            cut,
        })
    }

    /// Listens on `listen` with the password, clock speed and recordings folder of `settings`.
    pub async fn start_with(
        listen: SocketAddr,
        settings: &crate::config::Settings,
    ) -> std::io::Result<Self> {
        Self::start(
            listen,
            settings.sandbox_password.expose(),
            settings.sandbox_speed,
            settings.recordings_dir.clone(),
        )
        .await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open Event Socket connection; calls go on (a network blip: the
    /// media server still has the channels when the client comes back).
    pub fn drop_connections(&self) {
        let _ = self.cut.send(true);
    }

    /// Shuts down like a media server going away: stops listening, closes every
    /// connection and hangs up every call.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        self.drop_connections();
        let switch = self.switch.clone();
        tokio::spawn(async move { switch.api("hupall SYSTEM_SHUTDOWN").await });
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.drop_connections();
    }
}

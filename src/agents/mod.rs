//! Agent sessions (agents' contract §4–§6): the pure state machine of §6 ([`machine`]),
//! the commands of §7 ([`commands`]), the statusEvents they cause ([`events`]), the
//! timers of wrapup and of lost sockets ([`timers`]) and the notices that carry events to
//! whichever process holds an agent's socket ([`bus`]). A session lives in the database,
//! so any replica may take an agent's command or hold its socket.

pub mod bus;
pub mod commands;
pub mod error;
pub mod events;
pub mod machine;
mod timers;

use std::sync::Arc;

use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::domain::IdGenerator;
use crate::domain::time::now_ms;
use crate::store::agent_sessions::{SessionState, SessionWrite};
use crate::store::{Store, StoreError};
use bus::Bus;
use error::CommandError;
use machine::{Input, Session, step};

/// The agent sessions of this process: shared by the HTTP handlers and socket tasks.
pub struct Agents {
    store: Store,
    bus: Arc<Bus>,
    settings: Settings,
    ids: Arc<IdGenerator>,
    /// This process, as the holder of its sockets.
    holder: String,
    /// A session timer was set: the timer loop looks again.
    timer_set: Notify,
    stop: watch::Sender<bool>,
}

/// A session as read for a decision: its sid, the machine's session and its last seq.
pub struct Current<'a> {
    /// `AG…`.
    pub sid: &'a str,
    /// The machine's session.
    pub session: &'a Session,
    /// Its latest seq.
    pub last_seq: i64,
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The session after it (`None`: offline).
    pub session: Option<Session>,
    /// The session's sid (the one that ended, if it ended); `""` if there was none.
    pub sid: String,
    /// Its latest seq.
    pub last_seq: i64,
}

impl Agents {
    /// Starts the agent machinery: on PostgreSQL the listener of other replicas' notices,
    /// and the loop of session timers and lost sockets.
    pub async fn start(store: Store, settings: Settings, ids: Arc<IdGenerator>) -> Arc<Self> {
        let (stop, stopped) = watch::channel(false);
        let agents = Arc::new(Self {
            store: store.clone(),
            bus: Arc::new(Bus::default()),
            settings,
            ids,
            holder: uuid::Uuid::new_v4().simple().to_string(),
            timer_set: Notify::new(),
            stop,
        });
        // Vouched for before any socket is accepted, so no replica takes this process's
        // first sockets for those of a dead one.
        if let Err(e) = store.touch_sockets(&agents.holder).await {
            tracing::warn!(error = %e, "agent sockets: cannot vouch for this process yet");
        }
        if let Some(pool) = store.postgres_pool() {
            tokio::spawn(bus::listen(pool, agents.bus.clone(), stopped.clone()));
        }
        tokio::spawn(timers::run(agents.clone(), stopped));
        agents
    }

    /// Stops the loops and tells every socket task to close (1001).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Resolves when the process is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The registry socket tasks subscribe to.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Storage.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This process, as the holder of sockets.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Changes an agent's session under its lock: `decide` sees the current session and
    /// says which input to apply (`None`: none) and what to answer; the machine's events
    /// are stored with their seqs and the socket's holder is told.
    pub async fn change<T>(
        &self,
        app_id: &str,
        agent_no: &str,
        decide: impl Fn(Option<Current<'_>>) -> Result<(Option<Input>, T), CommandError>,
    ) -> Result<(T, Changed), CommandError> {
        let now = now_ms();
        let new_sid = self.ids.agent_session(chrono::Utc::now()).to_string();
        let tz = self.settings.timezone;
        let result = self
            .store
            .change_session(app_id, agent_no, &new_sid, |stored| {
                let parsed = stored
                    .map(|s| {
                        serde_json::from_str::<Session>(&s.session).map_err(|e| {
                            StoreError::Corrupt(format!("agent session {}: {e}", s.session_sid))
                        })
                    })
                    .transpose()?;
                let current = stored.zip(parsed.as_ref()).map(|(s, session)| Current {
                    sid: &s.session_sid,
                    session,
                    last_seq: s.last_seq,
                });
                let (input, answer) = decide(current)?;
                let sid = stored.map_or(new_sid.as_str(), |s| s.session_sid.as_str());
                let outcome = match input {
                    Some(input) => step(parsed.clone(), input, now),
                    None => machine::Outcome {
                        session: parsed.clone(),
                        events: vec![],
                    },
                };
                let events = outcome
                    .events
                    .iter()
                    .map(|e| {
                        (
                            "statusEvent",
                            events::status_data(e, app_id, agent_no, sid, now, tz).to_string(),
                        )
                    })
                    .collect();
                let session = outcome.session.as_ref().map(|s| SessionState {
                    json: serde_json::to_string(s).unwrap_or_default(),
                    agent_state: s.state.as_str(),
                    due_at: s.due_at(),
                });
                Ok::<_, CommandError>((SessionWrite { session, events }, (answer, outcome.session)))
            })
            .await?;
        let ((answer, session), committed) = result?;
        if let Some(notice) = &committed.notice {
            self.bus.deliver(notice);
        }
        if session.as_ref().is_some_and(|s| s.due_at().is_some()) {
            self.timer_set.notify_one();
        }
        Ok((
            answer,
            Changed {
                session,
                sid: committed.session_sid.unwrap_or_default(),
                last_seq: committed.last_seq,
            },
        ))
    }
}

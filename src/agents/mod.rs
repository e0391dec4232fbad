//! Agent sessions (agents' contract §4–§6): the pure state machine of §6 ([`machine`]),
//! the commands of §7 ([`commands`]), the statusEvents they cause ([`events`]), the
//! timers of wrapup and of lost sockets ([`timers`]) and the notices that carry events to
//! whichever process holds an agent's socket ([`bus`]). A session lives in the database,
//! so any replica may take an agent's command or hold its socket.

pub mod bus;
mod calls;
pub mod commands;
pub mod csta;
pub mod error;
pub mod events;
pub mod machine;
mod monitoring;
mod offers;
pub mod push;
mod snapshots;
mod supervision;
mod timers;
mod transfer;

use std::sync::Arc;

use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::domain::IdGenerator;
use crate::domain::time::now_ms;
use crate::orchestrator::Orchestrator;
use crate::store::agent_calls::NewAgentCall;
use crate::store::agent_sessions::{SessionState, SessionWrite, StoredSession};
use crate::store::journal::SessionChange;
use crate::store::session_writer::{Decide, Outcome};
use crate::store::{Store, StoreError};
use bus::Bus;
use error::CommandError;
use machine::{Input, Session, step};

/// Where and when a session steps: what its statusEvents carry.
struct Stepped<'a> {
    app_id: &'a str,
    agent_no: &'a str,
    sid: &'a str,
    now: i64,
    tz: chrono_tz::Tz,
}

impl Stepped<'_> {
    /// The write of `input` applied to `session` (none: unchanged), after `call_events`
    /// (callEvent data, already JSON), and the session after it.
    fn step(
        &self,
        session: Option<Session>,
        input: Option<Input>,
        call_events: Vec<(String, String)>,
    ) -> (SessionWrite, Option<Session>) {
        let outcome = match input {
            Some(input) => step(session, input, self.now),
            None => machine::Outcome {
                session,
                events: vec![],
            },
        };
        let status = outcome.events.iter().map(|e| {
            let data =
                events::status_data(e, self.app_id, self.agent_no, self.sid, self.now, self.tz);
            ("statusEvent", data.to_string(), String::new())
        });
        let events = call_events
            .into_iter()
            .map(|(data, channel)| ("callEvent", data, channel))
            .chain(status)
            .collect();
        let state = outcome.session.as_ref().map(|s| SessionState {
            json: serde_json::to_string(s).unwrap_or_default(),
            agent_state: s.state.as_str(),
            due_at: s.due_at(),
        });
        (
            SessionWrite {
                session: state,
                events,
                call: None,
            },
            outcome.session,
        )
    }
}

/// What a call does to its agent's session, for the journal to apply in the call's own
/// transaction: its callEvents, then `input` to the machine with the statusEvents it
/// causes. An agent no longer logged in gets nothing.
pub fn call_change(
    app_id: String,
    agent_no: String,
    call_events: Vec<(String, String)>,
    input: Option<Input>,
    tz: chrono_tz::Tz,
) -> SessionChange {
    SessionChange(Arc::new(move |stored| {
        let stored = stored?;
        let session = match serde_json::from_str::<Session>(&stored.session) {
            Ok(session) => session,
            Err(e) => {
                tracing::error!(session = %stored.session_sid, error = %e, "agent session unreadable; its call events are dropped");
                return None;
            }
        };
        let at = Stepped {
            app_id: &app_id,
            agent_no: &agent_no,
            sid: &stored.session_sid,
            now: now_ms(),
            tz,
        };
        Some(at.step(Some(session), input.clone(), call_events.clone()).0)
    }))
}

/// The agent sessions of this process: shared by the HTTP handlers and socket tasks.
pub struct Agents {
    store: Store,
    bus: Arc<Bus>,
    settings: Settings,
    ids: Arc<IdGenerator>,
    /// Drives agents' conversations (`None` in a process that places no calls: the CLI).
    orchestrator: Option<Orchestrator>,
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
    pub async fn start(
        store: Store,
        settings: Settings,
        ids: Arc<IdGenerator>,
        orchestrator: Option<Orchestrator>,
    ) -> Arc<Self> {
        let (stop, stopped) = watch::channel(false);
        let bus = Arc::new(Bus::default());
        let sink = bus.clone();
        store.set_agent_sink(Box::new(move |notice| sink.deliver(notice)));
        let agents = Arc::new(Self {
            store: store.clone(),
            bus,
            settings,
            ids,
            orchestrator,
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
        tokio::spawn(snapshots::run(agents.clone()));
        if let Some(orchestrator) = agents.orchestrator() {
            let mut dials = orchestrator.phone_dials();
            let dialer = agents.clone();
            tokio::spawn(async move {
                while let Some(call) = dials.recv().await {
                    let dialer = dialer.clone();
                    tokio::spawn(async move { dialer.phone_dial(call).await });
                }
            });
        }
        let (moves, to_complete) = tokio::sync::mpsc::unbounded_channel();
        agents.bus.complete_moves_with(moves);
        tokio::spawn(monitoring::complete_moves(agents.clone(), to_complete));
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

    /// The orchestrator that drives agents' conversations, if this process has one.
    pub fn orchestrator(&self) -> Option<&Orchestrator> {
        self.orchestrator.as_ref()
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This process, as the holder of sockets.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The agent's live session, read without a lock.
    pub(super) async fn session_of(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Option<Session>, CommandError> {
        Ok(self
            .store()
            .live_session(app_id, agent_no)
            .await?
            .and_then(|s| serde_json::from_str::<Session>(&s.session).ok()))
    }

    /// The agent's live session, once the §6 table allows command `name` in its state
    /// (read without a lock: the command's change checks again under it).
    pub(super) async fn allowed(
        &self,
        app_id: &str,
        agent_no: &str,
        name: machine::CommandName,
    ) -> Result<Option<Session>, CommandError> {
        let session = self.session_of(app_id, agent_no).await?;
        let state = session
            .as_ref()
            .map_or(machine::AgentState::Offline, |s| s.state);
        machine::check(name, state)?;
        Ok(session)
    }

    /// Changes an agent's session under its lock: `decide` sees the current session and
    /// says which input to apply (`None`: none) and what to answer; the machine's events
    /// are stored with their seqs and the socket's holder is told. Changes of many agents
    /// arriving together are committed together.
    pub async fn change<T: Send + 'static>(
        &self,
        app_id: &str,
        agent_no: &str,
        decide: impl Fn(Option<Current<'_>>) -> Result<(Option<Input>, T), CommandError>
        + Send
        + Sync
        + 'static,
    ) -> Result<(T, Changed), CommandError> {
        self.change_with_call(app_id, agent_no, move |current| {
            let (input, answer) = decide(current)?;
            Ok((input, None, answer))
        })
        .await
    }

    /// [`Agents::change`] that may also write a conversation the change starts (callOut),
    /// in the same transaction; refused with 10008 when the account has no room for it.
    pub async fn change_with_call<T: Send + 'static>(
        &self,
        app_id: &str,
        agent_no: &str,
        decide: impl Fn(
            Option<Current<'_>>,
        ) -> Result<(Option<Input>, Option<NewAgentCall>, T), CommandError>
        + Send
        + Sync
        + 'static,
    ) -> Result<(T, Changed), CommandError> {
        type Slot<T> = Arc<std::sync::Mutex<Option<Result<(T, Option<Session>), CommandError>>>>;
        let now = now_ms();
        let new_sid = self.ids.agent_session(chrono::Utc::now()).to_string();
        let tz = self.settings.timezone;
        // The decision's answer (or why it refused) comes back through here: the store
        // decides in its writer, maybe more than once (a batch retried), the last counts.
        let slot: Slot<T> = Arc::default();
        let kept = slot.clone();
        let (app, agent, sid_if_new) = (app_id.to_string(), agent_no.to_string(), new_sid.clone());
        let decided = move |stored: Option<&StoredSession>| {
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
            let (input, call, answer) = decide(current)?;
            let sid = stored.map_or(sid_if_new.as_str(), |s| s.session_sid.as_str());
            let at = Stepped {
                app_id: &app,
                agent_no: &agent,
                sid,
                now,
                tz,
            };
            let (mut write, session) = at.step(parsed.clone(), input, Vec::new());
            write.call = call;
            Ok::<_, CommandError>((write, (answer, session)))
        };
        let decide: Decide = Box::new(move |stored| {
            let (write, answer) = match decided(stored) {
                Ok((write, answer)) => (Some(write), Ok(answer)),
                Err(e) => (None, Err(e)),
            };
            *kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
            write
        });
        let outcome = self
            .store
            .change_session(app_id, agent_no, &new_sid, decide)
            .await?;
        let decided = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let committed = match (outcome, decided) {
            (Outcome::Written(committed), Some(Ok(answer))) => (committed, answer),
            (Outcome::NoRoom, _) => return Err(CommandError::AtCapacity),
            (_, Some(Err(e))) => return Err(e),
            (_, _) => {
                return Err(CommandError::Unavailable(StoreError::Corrupt(
                    "an agent change came back without its decision".into(),
                )));
            }
        };
        let (committed, (answer, session)) = committed;
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

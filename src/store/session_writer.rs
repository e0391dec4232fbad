//! Agent session changes committed in groups (as the journal does for calls): changes
//! arriving together from any number of commands, sockets and timers are decided and
//! written in one transaction, each under its session's lock and in arrival order, their
//! rows together in a few statements ([`super::session_rows`]). A batch that fails
//! is retried one change at a time (a first login that met a concurrent one decides
//! again).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::domain::time::now_ms;

use super::agent_calls::insert_agent_call;
use super::agent_sessions::{Committed, SessionWrite, StoredSession, lock_sessions};
use super::session_rows::{Held, SessionRows};
use super::{Pool, StoreError, Tx, WriteGate, WriterQueue};

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Changes waiting for a writer before callers wait for room.
const QUEUE_DEPTH: usize = 8192;
/// Times a change that met a concurrent first login is decided again.
const UNIQUE_RETRIES: usize = 3;

/// What to write, decided from the session as it is (`None`: nothing, the change was
/// refused; the decider keeps why). Commands, sockets and timers decide through the
/// session writer, calls through their journal writes.
pub type DecideFn = dyn Fn(Option<&StoredSession>) -> Option<SessionWrite> + Send + Sync;

/// A decision sent to the session writer.
pub type Decide = Box<DecideFn>;

/// What became of a change.
#[derive(Debug)]
pub enum Outcome {
    /// Written.
    Written(Committed),
    /// Its decision refused it: nothing was written.
    Refused,
    /// It starts a call and the account has no room under `maxConcurrentCalls`: nothing
    /// was written.
    NoRoom,
}

struct Job {
    app_id: String,
    agent_no: String,
    new_sid: String,
    decide: Decide,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The queue changes are submitted to.
#[derive(Clone)]
pub(crate) struct SessionWriter {
    tx: mpsc::Sender<Job>,
}

/// What a group of changes did.
#[derive(Debug)]
pub(crate) struct Applied {
    /// What became of each change, in order.
    pub outcomes: Vec<Outcome>,
    /// Their events added callbacks to the outbox (an `eventUrl` push).
    pub pushed: bool,
}

impl std::fmt::Debug for SessionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionWriter")
    }
}

impl SessionWriter {
    /// Starts the writer task(s); `pushed` is told when events were pushed to the outbox.
    pub(crate) fn start(pool: Pool, gate: WriteGate, pushed: Arc<Notify>) -> Self {
        let tx = super::start_writers(&pool, QUEUE_DEPTH, |rx| {
            writer(pool.clone(), gate.clone(), pushed.clone(), rx)
        });
        Self { tx }
    }

    /// Changes agent `agent_no`'s session of application `app_id` as `decide` says (a new
    /// session gets `new_sid`).
    pub(crate) async fn change(
        &self,
        app_id: &str,
        agent_no: &str,
        new_sid: &str,
        decide: Decide,
    ) -> Result<Outcome, StoreError> {
        super::submit(&self.tx, |reply| Job {
            app_id: app_id.to_string(),
            agent_no: agent_no.to_string(),
            new_sid: new_sid.to_string(),
            decide,
            reply,
        })
        .await
    }
}

async fn writer(pool: Pool, gate: WriteGate, pushed: Arc<Notify>, rx: WriterQueue<Job>) {
    loop {
        let Some(batch) = super::next_batch(&mut *rx.lock().await, MAX_BATCH).await else {
            return;
        };
        match write(&pool, &gate, &batch).await {
            Ok(applied) => {
                if applied.pushed {
                    pushed.notify_one();
                }
                let outcomes = applied.outcomes;
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            // A statement refused (a first login that met a concurrent one, a deadlock):
            // each change again on its own.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, batch = batch.len(), "session batch refused; retrying one by one");
                for job in batch {
                    let result = alone(&pool, &gate, &job).await.map(|applied| {
                        if applied.pushed {
                            pushed.notify_one();
                        }
                        applied
                            .outcomes
                            .into_iter()
                            .next()
                            .unwrap_or(Outcome::Refused)
                    });
                    let _ = job.reply.send(result);
                }
            }
            // The database is out of reach: every change of the batch is told at once.
            Err(e) => {
                let why = e.to_string();
                let mut first = Some(e);
                for job in batch {
                    let e = first
                        .take()
                        .unwrap_or_else(|| sqlx::Error::Io(std::io::Error::other(why.clone())));
                    let _ = job.reply.send(Err(StoreError::Db(e)));
                }
            }
        }
    }
}

/// One change in a transaction of its own, decided again if it met a concurrent first
/// login.
async fn alone(pool: &Pool, gate: &WriteGate, job: &Job) -> Result<Applied, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write(pool, gate, std::slice::from_ref(job)).await {
            Ok(applied) => return Ok(applied),
            Err(sqlx::Error::Database(db))
                if db.is_unique_violation() && attempts < UNIQUE_RETRIES =>
            {
                continue;
            }
            Err(e) => return Err(StoreError::Db(e)),
        }
    }
}

async fn write(pool: &Pool, gate: &WriteGate, jobs: &[Job]) -> Result<Applied, sqlx::Error> {
    let mut tx = gate.begin(pool).await?;
    let changes: Vec<Change<'_>> = jobs
        .iter()
        .map(|job| Change {
            app_id: &job.app_id,
            agent_no: &job.agent_no,
            new_sid: &job.new_sid,
            decide: &*job.decide,
        })
        .collect();
    let applied = apply_changes(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(applied)
}

/// One change of an agent's session, as a transaction applies it.
pub(crate) struct Change<'a> {
    /// The agent's application.
    pub app_id: &'a str,
    /// The agent.
    pub agent_no: &'a str,
    /// The sid a session it starts gets.
    pub new_sid: &'a str,
    /// What to write, decided from the session as it is then.
    pub decide: &'a DecideFn,
}

/// `changes` in `tx`, in order: every session they touch read and locked at once, then
/// each change decided on its session as the changes before it left it (a call it starts
/// written at once), and all their rows written together at the end.
pub(crate) async fn apply_changes(
    tx: &mut Tx<'_>,
    changes: &[Change<'_>],
) -> Result<Applied, sqlx::Error> {
    let mut agents: Vec<(&str, &str)> = changes.iter().map(|c| (c.app_id, c.agent_no)).collect();
    agents.sort_unstable();
    agents.dedup();
    let mut sessions: HashMap<(String, String), Held> = lock_sessions(tx, &agents).await?;
    let mut rows = SessionRows::new(now_ms());
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        let key = (change.app_id.to_string(), change.agent_no.to_string());
        let current = sessions.remove(&key);
        let (outcome, after) = apply_one(tx, &mut rows, change, current).await?;
        if let Some(after) = after {
            sessions.insert(key, after);
        }
        outcomes.push(outcome);
    }
    let pushed = rows.write(tx).await?;
    Ok(Applied { outcomes, pushed })
}

/// One change on `current`, its rows added to `rows`: what became of it, and the session
/// it leaves (`current` itself when it was refused).
async fn apply_one(
    tx: &mut Tx<'_>,
    rows: &mut SessionRows,
    change: &Change<'_>,
    current: Option<Held>,
) -> Result<(Outcome, Option<Held>), sqlx::Error> {
    let Some(write) = (change.decide)(current.as_ref().map(|(stored, _)| stored)) else {
        return Ok((Outcome::Refused, current));
    };
    if let Some(call) = &write.call
        && !insert_agent_call(tx, call).await?
    {
        return Ok((Outcome::NoRoom, current));
    }
    let names = (change.app_id, change.agent_no, change.new_sid);
    let (committed, after) = rows.add(names, current, &write);
    Ok((Outcome::Written(committed), after))
}

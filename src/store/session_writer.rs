//! Agent session changes committed in groups (as the journal does for calls): changes
//! arriving together from any number of commands, sockets and timers are decided and
//! written in one transaction, each under its session's lock and in arrival order, so a
//! change costs its own statements and not a transaction of its own. A batch that fails
//! is retried one change at a time (a first login that met a concurrent one decides
//! again).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::agent_calls::insert_agent_call;
use super::agent_sessions::{Committed, SessionWrite, StoredSession, apply_session, lock_session};
use super::{Pool, StoreError, Tx, WriteGate};

/// Most changes committed in one transaction.
const MAX_BATCH: usize = 256;
/// Changes waiting for a writer before callers wait for room.
const QUEUE_DEPTH: usize = 8192;
/// Writer tasks on PostgreSQL (SQLite has one writer).
const POSTGRES_WRITERS: usize = 2;
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

impl std::fmt::Debug for SessionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionWriter")
    }
}

impl SessionWriter {
    /// Starts the writer task(s).
    pub(crate) fn start(pool: Pool, gate: WriteGate) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        let writers = match pool {
            Pool::Sqlite(_) => 1,
            Pool::Postgres(_) => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(writer(pool.clone(), gate.clone(), rx.clone()));
        }
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
        let (reply, answer) = oneshot::channel();
        let job = Job {
            app_id: app_id.to_string(),
            agent_no: agent_no.to_string(),
            new_sid: new_sid.to_string(),
            decide,
            reply,
        };
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn writer(pool: Pool, gate: WriteGate, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let Some(batch) = super::next_batch(&mut *rx.lock().await, MAX_BATCH).await else {
            return;
        };
        match write(&pool, &gate, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            // A statement refused (a first login that met a concurrent one, a deadlock):
            // each change again on its own.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, batch = batch.len(), "session batch refused; retrying one by one");
                for job in batch {
                    let result = alone(&pool, &gate, &job).await;
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
async fn alone(pool: &Pool, gate: &WriteGate, job: &Job) -> Result<Outcome, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write(pool, gate, std::slice::from_ref(job)).await {
            Ok(mut outcomes) => return Ok(outcomes.remove(0)),
            Err(sqlx::Error::Database(db))
                if db.is_unique_violation() && attempts < UNIQUE_RETRIES =>
            {
                continue;
            }
            Err(e) => return Err(StoreError::Db(e)),
        }
    }
}

async fn write(pool: &Pool, gate: &WriteGate, jobs: &[Job]) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut tx = super::journal::begin(pool, gate).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (app, agent) = (&job.app_id, &job.agent_no);
        outcomes.push(apply_change(&mut tx, app, agent, &job.new_sid, &*job.decide).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One change in `tx`: the session locked, decided, written (with the call it starts).
pub(crate) async fn apply_change(
    tx: &mut Tx<'_>,
    app_id: &str,
    agent_no: &str,
    new_sid: &str,
    decide: &DecideFn,
) -> Result<Outcome, sqlx::Error> {
    let current = lock_session(tx, app_id, agent_no).await?;
    let Some(write) = decide(current.as_ref()) else {
        return Ok(Outcome::Refused);
    };
    if let Some(call) = &write.call
        && !insert_agent_call(tx, call).await?
    {
        return Ok(Outcome::NoRoom);
    }
    let committed = apply_session(tx, app_id, agent_no, new_sid, current, &write).await?;
    Ok(Outcome::Written(committed))
}

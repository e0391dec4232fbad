//! Storage on SQLite (the default, embedded) and PostgreSQL (production, many replicas),
//! with sqlx. One repository API over both: each query is written once where both
//! backends accept it (`$1` placeholders work on both) and per backend where they differ.
//! Instants are stored as Unix milliseconds, so the same Rust types decode on both.
//!
//! Accepting a request goes through [`accept`], the group-commit writer.

pub mod accept;
pub mod accounts;
pub mod acd;
pub mod agent_calls;
pub mod agent_sessions;
pub mod agents;
pub mod applications;
mod bulk;
mod cache;
pub mod caller_id_pools;
pub mod calls;
pub mod cdrs;
pub mod conversations;
pub mod cti;
pub mod deliveries;
mod event_push;
pub mod idempotency;
pub mod inbound;
mod inbound_opener;
pub mod journal;
pub mod monitors;
pub mod numbers;
mod open;
pub mod placing;
pub mod prompts;
pub mod queues;
pub mod retention;
mod session_rows;
pub mod session_writer;
mod stats;
pub mod text;
mod values;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::{PgPool, SqlitePool};

use crate::domain::credentials::TokenHasher;

/// An error of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The accept writer has stopped (the process is shutting down).
    #[error("the write queue is closed")]
    Closed,
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The database location could not be prepared.
    #[error("{0}")]
    Setup(String),
}

impl StoreError {
    /// Whether the same statement may succeed later: the database is unreachable, busy
    /// or broke off a transaction for concurrency reasons, rather than refusing it.
    pub fn is_transient(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // PostgreSQL: serialization failure, deadlock, connection and shutdown
                // classes; SQLite: busy, locked.
                ["40001", "40P01", "57P01", "57P02", "57P03"].contains(&code.as_ref())
                    || code.starts_with("08")
                    || ["5", "6", "517", "262"].contains(&code.as_ref())
            }
            _ => false,
        }
    }

    /// The request's fault, when the database refused a value's characters: the message
    /// to answer with (a parameter error). Values are checked before they reach the
    /// database; this is the net under that check, so no odd character becomes a 5xx.
    pub fn unstorable_param(&self) -> Option<String> {
        self.is_unstorable_text().then(|| {
            tracing::warn!(error = %self, "a request value reached the database unchecked");
            "a parameter holds characters that cannot be stored".to_string()
        })
    }

    /// Whether the database refused a value's characters (PostgreSQL: U+0000 in text, or a
    /// character its encoding lacks): the request's fault, not the platform's.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("22021" | "22P05")))
    }
}

/// The connection pool of one backend.
#[derive(Clone, Debug)]
pub enum Pool {
    /// SQLite (WAL), the default.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs the same sqlx expression on whichever backend `$store` uses; the expression is
/// type-checked once per backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] for a statement that writes: on SQLite it waits for this process's turn
/// at the [`WriteGate`] first, so it queues behind the other writers instead of meeting
/// the database's lock and sleeping in SQLite's busy handler, and runs on the gate's
/// connection.
macro_rules! on_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(readers) => {
                let _turn = $store.gate.turn().await;
                let $pool = $store.gate.writer().unwrap_or(readers);
                $body
            }
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_write;

/// The storage of one voicepaas process: pool, caches and the accept writer.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    hasher: TokenHasher,
    cache: Arc<cache::Directory>,
    accept: accept::AcceptQueue,
    journal: journal::Journal,
    sessions: session_writer::SessionWriter,
    opener: inbound_opener::InboundOpener,
    gate: WriteGate,
    /// Told when callbacks may have been added to the outbox by this process.
    outbox_written: Arc<tokio::sync::Notify>,
    /// Set once the process stops (see [`Store::stopping`]).
    stopping: Arc<AtomicBool>,
}

/// SQLite has one writer at a time: the writers of this process (the accept writer, the
/// journal, claims, cancels) take turns here, in order, instead of meeting SQLite's
/// busy handler, which sleeps, and write through the gate's one connection. Only that
/// connection writes, so its page cache stays valid from one transaction to the next
/// (SQLite drops a connection's whole cache when another connection has written since).
/// PostgreSQL needs no gate.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteGate(Option<SqliteGate>);

/// The turns and the connection of SQLite's writers.
#[derive(Clone, Debug)]
struct SqliteGate {
    turns: Arc<tokio::sync::Mutex<()>>,
    writer: sqlx::SqlitePool,
}

/// A writer's turn at the gate; the next writer goes when it is dropped.
pub(crate) type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

impl WriteGate {
    /// The gate of SQLite's writers, writing through `writer` (a pool of one connection).
    pub(crate) fn sqlite(writer: sqlx::SqlitePool) -> Self {
        Self(Some(SqliteGate {
            turns: Arc::new(tokio::sync::Mutex::new(())),
            writer,
        }))
    }

    /// Waits for this writer's turn (at once on PostgreSQL).
    pub(crate) async fn turn(&self) -> Option<WriteTurn> {
        match &self.0 {
            Some(g) => Some(g.turns.clone().lock_owned().await),
            None => None,
        }
    }

    /// The connection SQLite's writers use (`None` on PostgreSQL); to be used during a
    /// [`WriteGate::turn`].
    pub(crate) fn writer(&self) -> Option<&sqlx::SqlitePool> {
        self.0.as_ref().map(|g| &g.writer)
    }

    /// Begins a write transaction on `pool`: on SQLite at this writer's turn, on the
    /// gate's connection, with `BEGIN IMMEDIATE` (so a read-then-write transaction never
    /// fails to upgrade its lock).
    pub(crate) async fn begin(&self, pool: &Pool) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match pool {
            Pool::Sqlite(p) => {
                let turn = self.turn().await;
                let p = self.writer().unwrap_or(p);
                Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?, turn)
            }
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

impl Store {
    /// Connects to `database_url`, applies pending migrations and starts the accept writer.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let stopping = Arc::new(AtomicBool::new(false));
        let (pool, gate) = open::connect(database_url, stopping.clone()).await?;
        open::migrate(&pool).await?;
        let hasher = TokenHasher::new(&open::token_key(&pool).await?);
        let accept = accept::AcceptQueue::start(&pool, gate.clone());
        let outbox_written = Arc::new(tokio::sync::Notify::new());
        let journal = journal::Journal::start(pool.clone(), gate.clone(), outbox_written.clone());
        let sessions = session_writer::SessionWriter::start(
            pool.clone(),
            gate.clone(),
            outbox_written.clone(),
        );
        let opener = inbound_opener::InboundOpener::start(pool.clone(), gate.clone());
        Ok(Self {
            pool,
            hasher,
            cache: Arc::new(cache::Directory::default()),
            accept,
            journal,
            sessions,
            opener,
            gate,
            outbox_written,
            stopping,
        })
    }

    /// Says the process is stopping. Each HTTP worker runs its own runtime and stops once
    /// idle, and a PostgreSQL connection opened on a stopped runtime fails at its next
    /// use; from now on every connection is checked as it is taken from the pool, so the
    /// requests still in flight get a live one.
    pub fn stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves when this process may have added callbacks to the outbox (the webhook
    /// dispatcher also polls, for other replicas).
    pub async fn outbox_written(&self) {
        self.outbox_written.notified().await;
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// The PostgreSQL pool, when that is the backend (for `LISTEN`).
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p.clone()),
            Pool::Sqlite(_) => None,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// An open transaction on either backend. A SQLite write transaction holds the
/// process's write gate until it ends.
pub(crate) enum Tx<'c> {
    Sqlite(
        sqlx::Transaction<'c, sqlx::Sqlite>,
        #[expect(
            dead_code,
            reason = "held for its drop: the gate opens when the transaction ends"
        )]
        Option<WriteTurn>,
    ),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

/// Runs the same sqlx expression inside whichever transaction `$tx` holds; `$conn` is
/// the connection to execute on.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Tx<'_> {
    /// Commits the transaction.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t, _) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }

    /// `" FOR UPDATE SKIP LOCKED"` on PostgreSQL, so replicas claiming work pass over rows
    /// another one holds; SQLite's single writer needs nothing.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "",
            Tx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The SQL function of the larger of two values (`MAX` on SQLite, `GREATEST` on
    /// PostgreSQL).
    pub(crate) fn greatest(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "MAX",
            Tx::Postgres(_) => "GREATEST",
        }
    }

    /// `" FOR SHARE"` where the backend has row locks (PostgreSQL): a row read so another
    /// row can name it stays until the transaction ends.
    pub(crate) fn for_share(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "",
            Tx::Postgres(_) => " FOR SHARE",
        }
    }

    /// `" FOR UPDATE"` where the backend has row locks (PostgreSQL); SQLite's single
    /// writer (BEGIN IMMEDIATE) already serializes.
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        }
    }
}

impl Store {
    /// `column` is one of the strings of the JSON array bound as text (`$n`): a list of any
    /// length in one parameter, looked up by index on either backend (on PostgreSQL as an
    /// array, so the plan does not hang on the estimate of a set-returning function).
    pub(crate) fn in_json_texts(&self, column: &str, n: usize) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("{column} IN (SELECT value FROM json_each(${n}))"),
            Pool::Postgres(_) => {
                format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
            }
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite, so a read-then-write
    /// transaction never fails to upgrade its lock).
    pub(crate) async fn begin_write(&self) -> Result<Tx<'static>, sqlx::Error> {
        self.gate.begin(&self.pool).await
    }
}

/// A batch writer's shared queue: its tasks take turns to take batches from it.
pub(crate) type WriterQueue<J> = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<J>>>;

/// Starts a batch writer: a queue of `depth` jobs and the task(s) `task` makes to empty it
/// (one on SQLite, which has one writer; `POSTGRES_WRITERS` on PostgreSQL).
pub(crate) fn start_writers<J, Fut>(
    pool: &Pool,
    depth: usize,
    task: impl Fn(WriterQueue<J>) -> Fut,
) -> tokio::sync::mpsc::Sender<J>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const POSTGRES_WRITERS: usize = 2;
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let writers = match pool {
        Pool::Sqlite(_) => 1,
        Pool::Postgres(_) => POSTGRES_WRITERS,
    };
    for _ in 0..writers {
        tokio::spawn(task(rx.clone()));
    }
    tx
}

/// Hands a batch writer the job `job` makes around its reply channel and waits for the
/// answer (`StoreError::Closed` when the writer is gone).
pub(crate) async fn submit<J, R, E: From<StoreError>>(
    tx: &tokio::sync::mpsc::Sender<J>,
    job: impl FnOnce(tokio::sync::oneshot::Sender<Result<R, E>>) -> J,
) -> Result<R, E> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(job(reply)).await.map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

/// The next batch of a writer's queue: the first job waited for, then whatever else is
/// already queued, up to `max` (`None`: the queue is closed).
pub(crate) async fn next_batch<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    max: usize,
) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

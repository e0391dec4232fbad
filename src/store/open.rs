//! Connecting to either backend, migrations and the installation's token key.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Pool, StoreError, WriteGate, on_pool};
use crate::domain::credentials::{hex, random_bytes};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Read connections of the SQLite pool (the writers share one of their own, at the
/// [`WriteGate`]).
const SQLITE_READERS: u32 = 4;
/// How long a PostgreSQL connection may sit idle in the pool and still be used without
/// checking it first.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Connections of the PostgreSQL pool.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Opens the pool and the writers' gate for `url`. Once `stopping` is set, every
/// PostgreSQL connection is checked before use (see [`super::Store::stopping`]).
pub(super) async fn connect(
    url: &str,
    stopping: Arc<AtomicBool>,
) -> Result<(Pool, WriteGate), StoreError> {
    if url.starts_with("sqlite:") {
        prepare_sqlite_dir(url)?;
        // FULL makes every commit durable on disk; group commit pays it once per batch.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // A SQLite connection is a file handle on this machine: nothing can close it
        // behind the pool's back, so it is not pinged (a round trip to its thread) as it
        // is taken.
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok((Pool::Sqlite(pool), WriteGate::sqlite(writer)))
    } else {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx checks every connection as it returns to the pool; one taken again soon
            // after needs no second check (a round trip per statement saved), one idle for
            // a while is checked before use, as the database may have gone away meanwhile,
            // and so is every one once the process stops, as one opened on a stopped HTTP
            // worker's runtime is dead.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let check = meta.idle_for >= IDLE_CHECK || stopping.load(Ordering::Relaxed);
                Box::pin(async move {
                    if check {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        Ok((Pool::Postgres(pool), WriteGate::default()))
    }
}

/// Creates the folder of a SQLite database file so a fresh machine needs no setup.
fn prepare_sqlite_dir(url: &str) -> Result<(), StoreError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Applies the migrations of the pool's backend.
pub async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    match pool {
        Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
        Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
    }
    Ok(())
}

/// The installation's key for hashing auth tokens, made on first use.
pub async fn token_key(pool: &Pool) -> Result<Vec<u8>, StoreError> {
    let store = Holder { pool };
    let fresh = hex(&random_bytes::<32>());
    on_pool!(store, |p| {
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ('token_hmac', $1) ON CONFLICT (name) DO NOTHING")
            .bind(&fresh)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
    })?;
    let key: String = on_pool!(store, |p| sqlx::query_scalar(
        "SELECT value FROM server_keys WHERE name = 'token_hmac'"
    )
    .fetch_one(p)
    .await)?;
    Ok(key.into_bytes())
}

/// Lets [`on_pool!`] work on a bare pool before the store exists.
struct Holder<'a> {
    pool: &'a Pool,
}

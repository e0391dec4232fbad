//! Caller-id pools of an application (agents' contract §3.4). Writes of one application's
//! pools take turns on its application row, so "one default at most" holds with several
//! replicas.

use serde_json::{Value, json};

use super::{Store, StoreError, Tx, on_pool, on_tx};
use crate::cdr::format_time;
use crate::domain::caller_id_pool::PoolSpec;
use crate::domain::time::now_ms;

/// One pool as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolRecord {
    /// `CP…`.
    pub pool_sid: String,
    /// Its application.
    pub app_id: String,
    /// A label.
    pub name: String,
    /// Its numbers (a JSON array when stored).
    #[sqlx(try_from = "String")]
    pub numbers: PoolNumbers,
    /// Whether it is the application's default pool.
    pub is_default: bool,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

/// The numbers of a pool, read back from their JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNumbers(pub Vec<String>);

impl TryFrom<String> for PoolNumbers {
    type Error = serde_json::Error;

    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&json).map(Self)
    }
}

impl PoolRecord {
    /// The contract's shape.
    pub fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        json!({
            "poolSid": self.pool_sid,
            "name": self.name,
            "numbers": self.numbers.0,
            "default": self.is_default,
            "createdAt": format_time(self.created_at, tz),
            "updatedAt": format_time(self.updated_at, tz),
        })
    }
}

/// What deleting a pool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolDeletion {
    /// It is gone.
    Deleted,
    /// There was no such pool.
    NotFound,
    /// An agent names it (this agentNo, the first of them).
    InUseBy(String),
}

const POOL_COLUMNS: &str = "pool_sid, app_id, name, numbers, is_default, created_at, updated_at";

/// Waits for the application's turn for pool writes (PostgreSQL; SQLite's one writer
/// already serializes).
async fn lock_app(tx: &mut Tx<'_>, app_id: &str) -> Result<(), sqlx::Error> {
    let sql = format!(
        "SELECT app_id FROM applications WHERE app_id = $1{}",
        tx.for_update()
    );
    on_tx!(tx, |c| sqlx::query_scalar::<_, String>(&sql)
        .bind(app_id)
        .fetch_optional(c)
        .await)?;
    Ok(())
}

async fn clear_default(tx: &mut Tx<'_>, app_id: &str, keep: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| {
        sqlx::query(
        "UPDATE caller_id_pools SET is_default = FALSE WHERE app_id = $1 AND pool_sid <> $2 AND is_default"
    )
    .bind(app_id)
    .bind(keep)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

fn numbers_json(spec: &PoolSpec) -> Option<String> {
    spec.numbers
        .as_ref()
        .map(|n| serde_json::to_string(n).unwrap_or_else(|_| "[]".into()))
}

impl Store {
    /// Creates pool `pool_sid` of `app_id` (`spec` has name and numbers).
    pub async fn create_pool(
        &self,
        app_id: &str,
        pool_sid: &str,
        spec: &PoolSpec,
    ) -> Result<PoolRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app_id).await?;
        if spec.default == Some(true) {
            clear_default(&mut tx, app_id, pool_sid).await?;
        }
        let now = now_ms();
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO caller_id_pools (pool_sid, app_id, name, numbers, is_default, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)"
        )
        .bind(pool_sid)
        .bind(app_id)
        .bind(spec.name.as_deref().unwrap_or_default())
        .bind(numbers_json(spec).unwrap_or_else(|| "[]".into()))
        .bind(spec.default.unwrap_or(false))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        self.find_pool(app_id, pool_sid)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("pool {pool_sid} vanished")))
    }

    /// Applies `spec` to a pool; `None` if there is no such pool.
    pub async fn update_pool(
        &self,
        app_id: &str,
        pool_sid: &str,
        spec: &PoolSpec,
    ) -> Result<Option<PoolRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app_id).await?;
        if spec.default == Some(true) {
            clear_default(&mut tx, app_id, pool_sid).await?;
        }
        let done = on_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE caller_id_pools SET name = COALESCE($3, name), numbers = COALESCE($4, numbers), \
             is_default = COALESCE($5, is_default), updated_at = $6 WHERE app_id = $1 AND pool_sid = $2"
        )
        .bind(app_id)
        .bind(pool_sid)
        .bind(spec.name.as_deref())
        .bind(numbers_json(spec))
        .bind(spec.default)
        .bind(now_ms())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        if done == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        self.find_pool(app_id, pool_sid).await
    }

    /// Pool `pool_sid` if it belongs to `app_id`.
    pub async fn find_pool(
        &self,
        app_id: &str,
        pool_sid: &str,
    ) -> Result<Option<PoolRecord>, StoreError> {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM caller_id_pools WHERE app_id = $1 AND pool_sid = $2"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(pool_sid)
            .fetch_optional(p)
            .await)?)
    }

    /// Up to `limit` pools of `app_id` after poolSid `after`, by poolSid.
    pub async fn list_pools(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PoolRecord>, StoreError> {
        let sql = format!(
            "SELECT {POOL_COLUMNS} FROM caller_id_pools WHERE app_id = $1 AND pool_sid > $2 ORDER BY pool_sid LIMIT $3"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    /// Deletes a pool unless an agent names it.
    pub async fn delete_pool(
        &self,
        app_id: &str,
        pool_sid: &str,
    ) -> Result<PoolDeletion, StoreError> {
        let mut tx = self.begin_write().await?;
        // Taken first, so an agent write naming the pool (which share-locks it) finishes
        // before the check below reads the agents.
        let sql = format!(
            "SELECT pool_sid FROM caller_id_pools WHERE app_id = $1 AND pool_sid = $2{}",
            tx.for_update()
        );
        let found: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(app_id)
            .bind(pool_sid)
            .fetch_optional(c)
            .await)?;
        if found.is_none() {
            return Ok(PoolDeletion::NotFound);
        }
        let user: Option<String> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "SELECT agent_no FROM agents WHERE caller_id_pool_sid = $1 AND app_id = $2 ORDER BY agent_no LIMIT 1"
        )
        .bind(pool_sid)
        .bind(app_id)
        .fetch_optional(c)
        .await
        })?;
        if let Some(agent_no) = user {
            return Ok(PoolDeletion::InUseBy(agent_no));
        }
        on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM caller_id_pools WHERE pool_sid = $1"
        )
        .bind(pool_sid)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(PoolDeletion::Deleted)
    }
}

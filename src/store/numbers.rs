//! Inbound numbers (agents' contract §3.3): the operator's grants of DIDs to accounts and
//! the customer's routing of a granted DID by one application. One row per number; a
//! grant moved to another account or revoked takes the route with it.

use serde_json::{Value, json};

use super::queues::{QueueWriteError, queues_in_app};
use super::{Store, StoreError, on_pool, on_tx, on_write};
use crate::cdr::format_time;
use crate::domain::Fields;
use crate::domain::number::NumberRouting;
use crate::domain::time::now_ms;

/// One operator grant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Grant {
    /// The DID.
    pub number: String,
    /// The account it is granted to.
    pub account_sid: String,
    /// When, Unix ms.
    pub granted_at: i64,
    /// The application routing it, if any.
    pub app_id: Option<String>,
}

impl Grant {
    /// The operator API's shape.
    pub fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        json!({
            "number": self.number,
            "accountSid": self.account_sid,
            "grantedAt": format_time(self.granted_at, tz),
            "appSid": self.app_id.as_deref().unwrap_or_default(),
        })
    }
}

/// A number routed by an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRecord {
    /// The DID.
    pub number: String,
    /// The account it is granted to.
    pub account_sid: String,
    /// The application routing it.
    pub app_id: String,
    /// How.
    pub routing: NumberRouting,
    /// When the route was first written, Unix ms.
    pub created_at: i64,
    /// Its last change, Unix ms.
    pub updated_at: i64,
}

impl NumberRecord {
    /// The contract's shape.
    pub fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        let mut out = json!({"number": self.number});
        if let (Value::Object(out), Value::Object(fields)) = (&mut out, self.routing.to_json()) {
            out.extend(fields);
            out.insert("createdAt".into(), format_time(self.created_at, tz).into());
            out.insert("updatedAt".into(), format_time(self.updated_at, tz).into());
        }
        out
    }
}

/// Why a route was not written.
#[derive(Debug, thiserror::Error)]
pub enum NumberWriteError {
    /// The number is not granted to the account (20005).
    #[error("number not granted to this account")]
    NotGranted,
    /// Another application of the account routes it (20004).
    #[error("number routed by another application")]
    OtherApplication,
    /// The route names a queue the application does not have (20003).
    #[error("queue not found")]
    QueueNotFound,
    /// The route names an agent the application does not have (20001).
    #[error("agent not found")]
    AgentNotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for NumberWriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<QueueWriteError> for NumberWriteError {
    fn from(e: QueueWriteError) -> Self {
        match e {
            QueueWriteError::QueueNotFound => Self::QueueNotFound,
            QueueWriteError::Store(e) => Self::Store(e),
        }
    }
}

type RoutedRow = (String, String, String, String, String, String, i64, i64);

const ROUTED_COLUMNS: &str =
    "number, account_sid, app_id, name, welcome_prompt, route, routed_at, updated_at";

fn routed(row: RoutedRow) -> Result<NumberRecord, StoreError> {
    let (number, account_sid, app_id, name, welcome, route, created_at, updated_at) = row;
    let body = json!({
        "name": name,
        "welcomePrompt": welcome,
        "route": serde_json::from_str::<Value>(&route).unwrap_or(Value::Null),
    });
    let routing = body
        .as_object()
        .map(|o| NumberRouting::parse(Fields(o)))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("route of {number}: {e}")))?
        .ok_or_else(|| StoreError::Corrupt(format!("route of {number}")))?;
    Ok(NumberRecord {
        number,
        account_sid,
        app_id,
        routing,
        created_at,
        updated_at,
    })
}

impl Store {
    /// Grants `number` to `account_sid`; `true` if it was not granted to that account
    /// before. Moving it from another account drops that account's route.
    pub async fn grant_number(&self, number: &str, account_sid: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT account_sid FROM did_numbers WHERE number = $1{}",
            tx.for_update()
        );
        let holder: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(number)
            .fetch_optional(c)
            .await)?;
        if holder.as_deref() == Some(account_sid) {
            return Ok(false);
        }
        on_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM did_numbers WHERE number = $1"
        )
        .bind(number)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO did_numbers (number, account_sid, granted_at) VALUES ($1, $2, $3)"
        )
        .bind(number)
        .bind(account_sid)
        .bind(now_ms())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes the grant of `number` (and its route); `false` if it was not granted.
    pub async fn revoke_number(&self, number: &str) -> Result<bool, StoreError> {
        let done = on_write!(self, |p| sqlx::query(
            "DELETE FROM did_numbers WHERE number = $1"
        )
        .bind(number)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// The grant of `number`, if any.
    pub async fn find_grant(&self, number: &str) -> Result<Option<Grant>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT number, account_sid, granted_at, app_id FROM did_numbers WHERE number = $1"
        )
        .bind(number)
        .fetch_optional(p)
        .await)?)
    }

    /// Up to `limit` grants after number `after` (of `account_sid` if given), by number.
    pub async fn list_grants(
        &self,
        account_sid: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Grant>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_as(
            "SELECT number, account_sid, granted_at, app_id FROM did_numbers \
             WHERE ($1 IS NULL OR account_sid = $1) AND number > $2 ORDER BY number LIMIT $3"
        )
        .bind(account_sid)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Writes `routing` as application `app_id`'s route of `number`; `true` when the
    /// application did not route it before.
    pub async fn route_number(
        &self,
        account_sid: &str,
        app_id: &str,
        number: &str,
        routing: &NumberRouting,
    ) -> Result<bool, NumberWriteError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT account_sid, app_id FROM did_numbers WHERE number = $1{}",
            tx.for_update()
        );
        let row: Option<(String, Option<String>)> = on_tx!(&mut tx, |c| sqlx::query_as(&sql)
            .bind(number)
            .fetch_optional(c)
            .await)?;
        let routed_by = match row {
            Some((holder, routed_by)) if holder == account_sid => routed_by,
            _ => return Err(NumberWriteError::NotGranted),
        };
        if routed_by.as_deref().is_some_and(|a| a != app_id) {
            return Err(NumberWriteError::OtherApplication);
        }
        let names = routing.names();
        queues_in_app(&mut tx, app_id, names.queues).await?;
        for agent_no in names.agents {
            let found: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "SELECT agent_no FROM agents WHERE app_id = $1 AND agent_no = $2"
            )
            .bind(app_id)
            .bind(agent_no.as_str())
            .fetch_optional(c)
            .await)?;
            if found.is_none() {
                return Err(NumberWriteError::AgentNotFound);
            }
        }
        let json = routing.to_json();
        let now = now_ms();
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE did_numbers SET app_id = $2, name = $3, welcome_prompt = $4, route = $5, \
             routed_at = COALESCE(routed_at, $6), updated_at = $6 WHERE number = $1"
        )
        .bind(number)
        .bind(app_id)
        .bind(&routing.name)
        .bind(json["welcomePrompt"].as_str().unwrap_or_default())
        .bind(json["route"].to_string())
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(routed_by.is_none())
    }

    /// Application `app_id`'s route of `number`, if it routes it.
    pub async fn find_number(
        &self,
        app_id: &str,
        number: &str,
    ) -> Result<Option<NumberRecord>, StoreError> {
        let sql =
            format!("SELECT {ROUTED_COLUMNS} FROM did_numbers WHERE app_id = $1 AND number = $2");
        let row: Option<RoutedRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(number)
            .fetch_optional(p)
            .await)?;
        row.map(routed).transpose()
    }

    /// The route of `did`, if an application of the account it is granted to routes it.
    pub async fn did_route(&self, did: &str) -> Result<Option<NumberRecord>, StoreError> {
        let sql = format!(
            "SELECT {ROUTED_COLUMNS} FROM did_numbers WHERE number = $1 AND app_id IS NOT NULL"
        );
        let row: Option<RoutedRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(did)
            .fetch_optional(p)
            .await)?;
        row.map(routed).transpose()
    }

    /// Up to `limit` numbers routed by `app_id` after `after`, by number.
    pub async fn list_numbers(
        &self,
        app_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NumberRecord>, StoreError> {
        let sql = format!(
            "SELECT {ROUTED_COLUMNS} FROM did_numbers WHERE app_id = $1 AND number > $2 ORDER BY number LIMIT $3"
        );
        let rows: Vec<RoutedRow> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(routed).collect()
    }

    /// Removes application `app_id`'s route of `number` (the grant stays); `false` if it
    /// did not route it.
    pub async fn unroute_number(&self, app_id: &str, number: &str) -> Result<bool, StoreError> {
        let done = on_write!(self, |p| {
            sqlx::query(
            "UPDATE did_numbers SET app_id = NULL, name = '', welcome_prompt = '', route = NULL, \
             routed_at = NULL, updated_at = NULL WHERE app_id = $1 AND number = $2"
        )
        .bind(app_id)
        .bind(number)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }
}

//! Accounts: creation, limits, enable/disable, token rotation and authentication.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Store, StoreError, Tx, on_pool, on_tx, on_write};
use crate::domain::credentials::{is_hex32, new_account_sid, new_auth_token};

/// A token hash no token has: what an unknown sid's token is checked against.
const UNKNOWN_ACCOUNT_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
use crate::domain::limits::AccountPatch;
use crate::domain::time::now_ms;

/// One account as stored (the token only as its hash).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    /// The AccountSid (32 hex digits).
    #[serde(rename = "accountSid")]
    pub sid: String,
    /// A label for operators.
    pub name: String,
    /// HMAC of the auth token.
    #[serde(skip)]
    pub token_hash: String,
    /// Disabled accounts fail authentication.
    pub enabled: bool,
    /// Calls started per second.
    pub cps: i64,
    /// Calls live at once.
    pub max_concurrent_calls: i64,
    /// Calls waiting in the queue before new requests get -6.
    pub max_queued_calls: i64,
    /// Seconds a callee is rung before the leg counts as not answered.
    pub answer_timeout: i64,
    /// Creation time, Unix ms.
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "sid, name, token_hash, enabled, cps, max_concurrent_calls, max_queued_calls, answer_timeout, created_at";

impl Store {
    /// Creates an account; returns it and its auth token (shown once, stored hashed).
    pub async fn create_account(&self, name: &str) -> Result<(AccountRecord, String), StoreError> {
        let token = new_auth_token();
        let sid = new_account_sid();
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO accounts (sid, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&sid)
            .bind(name)
            .bind(self.hasher.hash(&token))
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        let account = self
            .find_account(&sid)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("account {sid} vanished")))?;
        Ok((account, token))
    }

    /// Every account, oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, sid");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await)?)
    }

    /// One account, read from the database (a sid that is not 32 hex digits is no
    /// account's, and is not looked up).
    pub async fn find_account(&self, sid: &str) -> Result<Option<AccountRecord>, StoreError> {
        if !is_hex32(sid) {
            return Ok(None);
        }
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE sid = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(sid)
            .fetch_optional(p)
            .await)?)
    }

    /// Applies `patch`; `None` if the account does not exist.
    pub async fn update_account(
        &self,
        sid: &str,
        patch: &AccountPatch,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let done = on_write!(self, |p| {
            sqlx::query(
                "UPDATE accounts SET cps = COALESCE($2, cps), max_concurrent_calls = COALESCE($3, max_concurrent_calls), \
                 max_queued_calls = COALESCE($4, max_queued_calls), answer_timeout = COALESCE($5, answer_timeout), \
                 enabled = COALESCE($6, enabled) WHERE sid = $1",
            )
            .bind(sid)
            .bind(patch.cps)
            .bind(patch.max_concurrent_calls)
            .bind(patch.max_queued_calls)
            .bind(patch.answer_timeout)
            .bind(patch.enabled)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.cache.accounts.forget(&sid.to_string());
        if done == 0 {
            return Ok(None);
        }
        self.find_account(sid).await
    }

    /// Replaces the account's auth token; returns the new one (`None` if no such account).
    pub async fn rotate_token(&self, sid: &str) -> Result<Option<String>, StoreError> {
        let token = new_auth_token();
        let done = on_write!(self, |p| {
            sqlx::query("UPDATE accounts SET token_hash = $2 WHERE sid = $1")
                .bind(sid)
                .bind(self.hasher.hash(&token))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.cache.accounts.forget(&sid.to_string());
        Ok((done == 1).then_some(token))
    }

    /// The enabled account `sid` if `token` is its auth token (constant-time check).
    pub async fn authenticate(
        &self,
        sid: &str,
        token: &str,
    ) -> Result<Option<Arc<AccountRecord>>, StoreError> {
        // An unknown sid costs what a known one does (one MAC), and at most one database
        // read per second: a sid that is not one, or was just looked up in vain, is not
        // looked up again.
        let key = sid.to_string();
        let known = if !is_hex32(sid) || self.cache.missing_accounts.get(&key).is_some() {
            None
        } else {
            let found = self
                .cache
                .accounts
                .get_or_load(&key, || self.find_account(sid))
                .await?;
            if found.is_none() {
                self.cache.missing_accounts.put(key, Arc::new(()));
            }
            found
        };
        let Some(account) = known else {
            self.hasher.verify(token, UNKNOWN_ACCOUNT_HASH);
            return Ok(None);
        };
        Ok((account.enabled && self.hasher.verify(token, &account.token_hash)).then_some(account))
    }
}

/// Changes each account's count of live legs by its delta (never below 0), in `tx`.
pub(crate) async fn count_live(
    tx: &mut Tx<'_>,
    live: &BTreeMap<&str, i64>,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE accounts SET live_calls = {}(live_calls + $2, 0) WHERE sid = $1",
        tx.greatest()
    );
    for (account, delta) in live.iter().filter(|(_, d)| **d != 0) {
        on_tx!(&mut *tx, |c| sqlx::query(&sql)
            .bind(account)
            .bind(delta)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

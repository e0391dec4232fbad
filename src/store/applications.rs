//! Applications of an account: callback URLs, feed settings, allowed caller ids and the
//! signing secret of their webhooks.

use std::collections::HashSet;
use std::sync::Arc;

use super::cti::{CtiSettings, apply_cti};
use super::{Store, StoreError, on_pool, on_tx};
use crate::config::Secret;
use crate::domain::application::AppSettings;
use crate::domain::credentials::{new_app_id, new_signing_secret};
use crate::domain::time::now_ms;

/// One application as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApplicationRecord {
    /// The appid (32 hex digits).
    pub app_id: String,
    /// Owner.
    pub account_sid: String,
    /// A label.
    pub name: String,
    /// Result callbacks of notices and captchas.
    pub notify_url: Option<String>,
    /// Click-to-call status callbacks.
    pub status_url: Option<String>,
    /// Click-to-call CDR callbacks.
    pub cdr_url: Option<String>,
    /// Batched CDR feed.
    pub cdr_feed_url: Option<String>,
    /// CDRs per feed batch.
    pub cdr_batch_size: i64,
    /// Longest wait before a partial feed batch is sent.
    pub cdr_batch_window_ms: i64,
    /// Caller ids the app may show; empty = any. Parsed once, when the row is read.
    #[sqlx(try_from = "String")]
    pub allowed_caller_ids: CallerIds,
    /// `whsec_…` secret of its webhook signatures (never in `Debug` output).
    #[sqlx(try_from = "String")]
    pub signing_secret: Secret,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last update, Unix ms.
    pub updated_at: i64,
    /// Its CTI settings.
    #[sqlx(flatten)]
    pub cti: CtiSettings,
}

/// An application's allowed caller ids: the stored JSON array, and the numbers in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIds {
    json: String,
    numbers: HashSet<String>,
}

impl TryFrom<String> for CallerIds {
    type Error = serde_json::Error;

    fn try_from(json: String) -> Result<Self, Self::Error> {
        let numbers = serde_json::from_str::<Vec<String>>(&json)?
            .into_iter()
            .collect();
        Ok(Self { json, numbers })
    }
}

impl CallerIds {
    /// The stored JSON array.
    pub fn as_str(&self) -> &str {
        &self.json
    }
}

impl ApplicationRecord {
    /// Whether the application may show `number` as caller id.
    pub fn may_display(&self, number: &str) -> bool {
        let allowed = &self.allowed_caller_ids.numbers;
        allowed.is_empty() || allowed.contains(number)
    }

    /// The shape the operator API and the CLI show (the signing secret only on create).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "appId": self.app_id,
            "accountSid": self.account_sid,
            "name": self.name,
            "notifyUrl": self.notify_url,
            "statusUrl": self.status_url,
            "cdrUrl": self.cdr_url,
            "cdrFeedUrl": self.cdr_feed_url,
            "cdrBatchSize": self.cdr_batch_size,
            "cdrBatchWindowMs": self.cdr_batch_window_ms,
            "allowedCallerIds": serde_json::from_str::<serde_json::Value>(self.allowed_caller_ids.as_str()).unwrap_or_default(),
            "ctiSettings": self.cti.to_json(),
        })
    }
}

impl ApplicationRecord {
    /// Where its agent events are pushed (agents' contract §5), if it has an `eventUrl`.
    pub fn push_target(&self) -> Option<crate::agents::push::PushTarget> {
        let url = self.cti.event_url.as_deref().filter(|u| !u.is_empty())?;
        Some(crate::agents::push::PushTarget {
            account_sid: self.account_sid.clone(),
            app_id: self.app_id.clone(),
            url: url.to_string(),
            format: self.cti.event_format.0,
        })
    }
}

const APP_COLUMNS: &str = "app_id, account_sid, name, notify_url, status_url, cdr_url, cdr_feed_url, cdr_batch_size, \
                           cdr_batch_window_ms, allowed_caller_ids, signing_secret, created_at, updated_at, cti_event_url, \
                           cti_event_format, cti_encrypt_number, cti_record_agent_calls, cti_agent_ring_timeout, \
                           cti_max_call_duration, cti_music_on_hold, cti_allowed_origins";

fn caller_ids_json(settings: &AppSettings) -> Option<String> {
    settings
        .allowed_caller_ids
        .as_ref()
        .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
}

fn url_text(value: &Option<Option<crate::domain::webhook_url::WebhookUrl>>) -> Option<String> {
    value
        .as_ref()
        .and_then(|v| v.as_ref().map(|u| u.as_str().to_string()))
}

impl Store {
    /// Creates an application of `account_sid` (which must exist).
    pub async fn create_app(
        &self,
        account_sid: &str,
        settings: &AppSettings,
    ) -> Result<ApplicationRecord, StoreError> {
        let app_id = new_app_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO applications (app_id, account_sid, name, notify_url, status_url, cdr_url, cdr_feed_url, \
                 cdr_batch_size, cdr_batch_window_ms, allowed_caller_ids, signing_secret, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, 100), COALESCE($9, 1000), COALESCE($10, '[]'), $11, $12, $12)",
            )
            .bind(&app_id)
            .bind(account_sid)
            .bind(settings.name.as_deref().unwrap_or_default())
            .bind(url_text(&settings.notify_url))
            .bind(url_text(&settings.status_url))
            .bind(url_text(&settings.cdr_url))
            .bind(url_text(&settings.cdr_feed_url))
            .bind(settings.cdr_batch_size)
            .bind(settings.cdr_batch_window_ms)
            .bind(caller_ids_json(settings))
            .bind(new_signing_secret())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        apply_cti(&mut tx, &app_id, &settings.cti).await?;
        tx.commit().await?;
        self.load_app(&app_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("application {app_id} vanished")))
    }

    /// Applies `settings` to an application of `account_sid`; `None` if there is none.
    pub async fn update_app(
        &self,
        account_sid: &str,
        app_id: &str,
        settings: &AppSettings,
    ) -> Result<Option<ApplicationRecord>, StoreError> {
        // For each URL: $n+1 says whether to touch it, $n is the new value (NULL clears).
        let mut tx = self.begin_write().await?;
        let done = on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE applications SET name = COALESCE($3, name), \
                 notify_url = CASE WHEN $4 THEN $5 ELSE notify_url END, \
                 status_url = CASE WHEN $6 THEN $7 ELSE status_url END, \
                 cdr_url = CASE WHEN $8 THEN $9 ELSE cdr_url END, \
                 cdr_feed_url = CASE WHEN $10 THEN $11 ELSE cdr_feed_url END, \
                 cdr_batch_size = COALESCE($12, cdr_batch_size), cdr_batch_window_ms = COALESCE($13, cdr_batch_window_ms), \
                 allowed_caller_ids = COALESCE($14, allowed_caller_ids), updated_at = $15 \
                 WHERE app_id = $1 AND account_sid = $2",
            )
            .bind(app_id)
            .bind(account_sid)
            .bind(settings.name.as_deref())
            .bind(settings.notify_url.is_some())
            .bind(url_text(&settings.notify_url))
            .bind(settings.status_url.is_some())
            .bind(url_text(&settings.status_url))
            .bind(settings.cdr_url.is_some())
            .bind(url_text(&settings.cdr_url))
            .bind(settings.cdr_feed_url.is_some())
            .bind(url_text(&settings.cdr_feed_url))
            .bind(settings.cdr_batch_size)
            .bind(settings.cdr_batch_window_ms)
            .bind(caller_ids_json(settings))
            .bind(now_ms())
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        if done == 1 {
            apply_cti(&mut tx, app_id, &settings.cti).await?;
        }
        tx.commit().await?;
        self.cache.applications.forget(&app_id.to_string());
        if done == 0 {
            return Ok(None);
        }
        self.load_app(app_id).await
    }

    /// The applications of `account_sid`, oldest first.
    pub async fn list_apps(&self, account_sid: &str) -> Result<Vec<ApplicationRecord>, StoreError> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM applications WHERE account_sid = $1 ORDER BY created_at, app_id"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(account_sid)
            .fetch_all(p)
            .await)?)
    }

    /// The application `app_id` if it belongs to `account_sid` (cached briefly).
    pub async fn find_app(
        &self,
        account_sid: &str,
        app_id: &str,
    ) -> Result<Option<Arc<ApplicationRecord>>, StoreError> {
        let Some(app) = self
            .cache
            .applications
            .get_or_load(&app_id.to_string(), || self.load_app(app_id))
            .await?
        else {
            return Ok(None);
        };
        Ok((app.account_sid == account_sid).then_some(app))
    }

    /// The application `app_id` of any account (cached briefly): agent sockets name only
    /// the application.
    pub async fn find_app_by_id(
        &self,
        app_id: &str,
    ) -> Result<Option<Arc<ApplicationRecord>>, StoreError> {
        if !crate::domain::credentials::is_hex32(app_id) {
            return Ok(None);
        }
        self.cache
            .applications
            .get_or_load(&app_id.to_string(), || self.load_app(app_id))
            .await
    }

    pub(crate) async fn load_app(
        &self,
        app_id: &str,
    ) -> Result<Option<ApplicationRecord>, StoreError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM applications WHERE app_id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(app_id)
            .fetch_optional(p)
            .await)?)
    }
}

//! An application's CTI settings (agents' contract §3.5), stored as columns of its row.

use serde_json::{Value, json};

use super::{Store, StoreError, Tx, on_tx};
use crate::domain::cti::{CtiPatch, EventFormat};
use crate::domain::time::now_ms;

/// The CTI settings of one application as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CtiSettings {
    /// Where agent events are pushed; none = not pushed.
    #[sqlx(rename = "cti_event_url")]
    pub event_url: Option<String>,
    /// Format of the pushed events.
    #[sqlx(rename = "cti_event_format", try_from = "String")]
    pub event_format: StoredEventFormat,
    /// Mask users' numbers on agent sockets.
    #[sqlx(rename = "cti_encrypt_number")]
    pub encrypt_number: bool,
    /// Record agent conversations.
    #[sqlx(rename = "cti_record_agent_calls")]
    pub record_agent_calls: bool,
    /// Seconds an agent leg rings.
    #[sqlx(rename = "cti_agent_ring_timeout")]
    pub agent_ring_timeout: i64,
    /// Longest talk in seconds; 0 = none.
    #[sqlx(rename = "cti_max_call_duration")]
    pub max_call_duration: i64,
    /// Hold music prompt; `""` = built in.
    #[sqlx(rename = "cti_music_on_hold")]
    pub music_on_hold: String,
    /// Web origins allowed to open agent sockets; empty = any.
    #[sqlx(rename = "cti_allowed_origins", try_from = "String")]
    pub allowed_origins: Origins,
}

/// The stored event format, read back as the enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEventFormat(pub EventFormat);

impl TryFrom<String> for StoredEventFormat {
    type Error = StoreError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        EventFormat::from_word(&s)
            .map(Self)
            .ok_or_else(|| StoreError::Corrupt(format!("event format {s:?}")))
    }
}

/// The stored allowed origins (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

impl TryFrom<String> for Origins {
    type Error = serde_json::Error;

    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&json).map(Self)
    }
}

impl CtiSettings {
    /// The contract's shape (management bodies use JSON numbers and booleans).
    pub fn to_json(&self) -> Value {
        json!({
            "eventUrl": self.event_url.clone().unwrap_or_default(),
            "eventFormat": self.event_format.0.as_str(),
            "encryptNumber": self.encrypt_number,
            "recordAgentCalls": self.record_agent_calls,
            "agentRingTimeout": self.agent_ring_timeout,
            "maxCallDuration": self.max_call_duration,
            "musicOnHold": self.music_on_hold,
            "allowedOrigins": self.allowed_origins.0,
        })
    }
}

/// Applies `patch` to application `app_id` inside `tx`; whether the application exists.
pub(crate) async fn apply_cti(
    tx: &mut Tx<'_>,
    app_id: &str,
    patch: &CtiPatch,
) -> Result<bool, sqlx::Error> {
    let event_url = patch
        .event_url
        .as_ref()
        .and_then(|u| u.as_ref().map(|u| u.as_str().to_string()));
    let music = patch.music_on_hold.as_ref().map(|m| {
        m.as_ref()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default()
    });
    let origins = patch
        .allowed_origins
        .as_ref()
        .map(|o| serde_json::to_string(o).unwrap_or_else(|_| "[]".into()));
    let done = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE applications SET cti_event_url = CASE WHEN $2 THEN $3 ELSE cti_event_url END, \
             cti_event_format = COALESCE($4, cti_event_format), cti_encrypt_number = COALESCE($5, cti_encrypt_number), \
             cti_record_agent_calls = COALESCE($6, cti_record_agent_calls), \
             cti_agent_ring_timeout = COALESCE($7, cti_agent_ring_timeout), \
             cti_max_call_duration = COALESCE($8, cti_max_call_duration), \
             cti_music_on_hold = COALESCE($9, cti_music_on_hold), cti_allowed_origins = COALESCE($10, cti_allowed_origins), \
             updated_at = $11 WHERE app_id = $1",
        )
        .bind(app_id)
        .bind(patch.event_url.is_some())
        .bind(event_url)
        .bind(patch.event_format.map(EventFormat::as_str))
        .bind(patch.encrypt_number)
        .bind(patch.record_agent_calls)
        .bind(patch.agent_ring_timeout)
        .bind(patch.max_call_duration)
        .bind(music)
        .bind(origins)
        .bind(now_ms())
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

impl Store {
    /// Applies `patch` to the CTI settings of application `app_id`; the new settings, or
    /// `None` if the application is gone.
    pub async fn update_cti(
        &self,
        app_id: &str,
        patch: &CtiPatch,
    ) -> Result<Option<CtiSettings>, StoreError> {
        let mut tx = self.begin_write().await?;
        let found = apply_cti(&mut tx, app_id, patch).await?;
        tx.commit().await?;
        self.cache.applications.forget(&app_id.to_string());
        if !found {
            return Ok(None);
        }
        Ok(self.load_app(app_id).await?.map(|app| app.cti))
    }
}

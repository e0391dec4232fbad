//! Uploaded prompts (voice files) of an application, kept in the database so every
//! replica and the media layer can read them.

use std::collections::HashSet;

use super::{Store, StoreError, on_pool, on_write};
use crate::domain::prompt::WavInfo;
use crate::domain::time::now_ms;

/// A prompt without its audio.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptMeta {
    /// File name (`….wav`).
    pub name: String,
    /// Bytes of the WAV file.
    #[serde(rename = "size")]
    pub size_bytes: i64,
    /// 8000 or 16000.
    pub sample_rate: i64,
    /// Length of the audio.
    pub duration_ms: i64,
    /// Upload time, Unix ms.
    #[serde(skip)]
    pub created_at: i64,
}

impl Store {
    /// Stores (or replaces) prompt `name` of `app_id`.
    pub async fn put_prompt(
        &self,
        app_id: &str,
        name: &str,
        wav: &[u8],
        info: WavInfo,
    ) -> Result<PromptMeta, StoreError> {
        let now = now_ms();
        on_write!(self, |p| {
            sqlx::query(
                "INSERT INTO prompts (app_id, name, audio, size_bytes, sample_rate, duration_ms, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id, name) DO UPDATE SET audio = excluded.audio, \
                 size_bytes = excluded.size_bytes, sample_rate = excluded.sample_rate, duration_ms = excluded.duration_ms, \
                 created_at = excluded.created_at",
            )
            .bind(app_id)
            .bind(name)
            .bind(wav)
            .bind(wav.len() as i64)
            .bind(i64::from(info.sample_rate))
            .bind(info.duration_ms as i64)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.cache.prompt_names.forget(&app_id.to_string());
        Ok(PromptMeta {
            name: name.to_string(),
            size_bytes: wav.len() as i64,
            sample_rate: i64::from(info.sample_rate),
            duration_ms: info.duration_ms as i64,
            created_at: now,
        })
    }

    /// The prompts of `app_id`, by name.
    pub async fn list_prompts(&self, app_id: &str) -> Result<Vec<PromptMeta>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as("SELECT name, size_bytes, sample_rate, duration_ms, created_at FROM prompts WHERE app_id = $1 ORDER BY name")
                .bind(app_id)
                .fetch_all(p)
                .await
        })?)
    }

    /// Removes prompt `name` of `app_id`; whether it existed.
    pub async fn delete_prompt(&self, app_id: &str, name: &str) -> Result<bool, StoreError> {
        let done = on_write!(self, |p| {
            sqlx::query("DELETE FROM prompts WHERE app_id = $1 AND name = $2")
                .bind(app_id)
                .bind(name)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.cache.prompt_names.forget(&app_id.to_string());
        Ok(done == 1)
    }

    /// Whether prompt `name` of `app_id` exists. Known names are cached briefly; a name
    /// not in the cache is looked up, so a prompt uploaded through another replica is
    /// usable at once.
    pub async fn prompt_exists(&self, app_id: &str, name: &str) -> Result<bool, StoreError> {
        let names = self
            .cache
            .prompt_names
            .get_or_load(&app_id.to_string(), || self.prompt_names(app_id))
            .await?;
        if names.is_some_and(|n| n.contains(name)) {
            return Ok(true);
        }
        let found: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT size_bytes FROM prompts WHERE app_id = $1 AND name = $2")
                .bind(app_id)
                .bind(name)
                .fetch_optional(p)
                .await
        })?;
        if found.is_some() {
            self.cache.prompt_names.forget(&app_id.to_string());
        }
        Ok(found.is_some())
    }

    async fn prompt_names(&self, app_id: &str) -> Result<Option<HashSet<String>>, StoreError> {
        let names: Vec<String> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT name FROM prompts WHERE app_id = $1"
        )
        .bind(app_id)
        .fetch_all(p)
        .await)?;
        Ok(Some(names.into_iter().collect()))
    }

    /// When prompt `name` of `app_id` was last stored (its version), if it exists.
    pub async fn prompt_version(
        &self,
        app_id: &str,
        name: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT created_at FROM prompts WHERE app_id = $1 AND name = $2"
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(p)
        .await)?)
    }

    /// The WAV bytes of prompt `name` of `app_id`, if it exists.
    pub async fn prompt_audio(
        &self,
        app_id: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT audio FROM prompts WHERE app_id = $1 AND name = $2"
        )
        .bind(app_id)
        .bind(name)
        .fetch_optional(p)
        .await)?)
    }
}

//! Inbound calls (agents' contract §9, §11.1): the claim that makes exactly one replica
//! handle a parked DID channel, and the route it follows.

use super::numbers::NumberRecord;
use super::{Store, StoreError, on_pool};
use crate::domain::time::now_ms;
use crate::media::pool::ParkedCall;

/// How long claims are kept (they only matter while the channel parks).
pub const CLAIM_TTL_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Claims `call` for process `claimed_by`: `true` for exactly one claimant of a
    /// channel, whichever replicas ask.
    pub async fn claim_inbound(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
    ) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO inbound_claims (channel_uuid, node, did, caller, claimed_by, claimed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel_uuid) DO NOTHING"
        )
        .bind(&call.uuid)
        .bind(&call.node)
        .bind(&call.did)
        .bind(&call.caller)
        .bind(claimed_by)
        .bind(now_ms())
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(inserted == 1)
    }

    /// The route of `did`, if an application of the account it is granted to routes it.
    pub async fn did_route(&self, did: &str) -> Result<Option<NumberRecord>, StoreError> {
        let app_id: Option<Option<String>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT app_id FROM did_numbers WHERE number = $1"
        )
        .bind(did)
        .fetch_optional(p)
        .await)?;
        match app_id.flatten() {
            Some(app_id) => self.find_number(&app_id, did).await,
            None => Ok(None),
        }
    }

    /// Deletes claims older than a day; at most `limit`.
    pub async fn purge_inbound_claims(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query(
            "DELETE FROM inbound_claims WHERE channel_uuid IN \
             (SELECT channel_uuid FROM inbound_claims WHERE claimed_at < $1 LIMIT $2)"
        )
        .bind(now - CLAIM_TTL_MS)
        .bind(limit)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }
}

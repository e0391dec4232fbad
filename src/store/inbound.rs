//! Inbound calls (agents' contract §9, §11.1): the claim that makes exactly one replica
//! handle a parked DID channel (its route: [`Store::did_route`]).

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

//! Inbound calls (agents' contract §9, §11.1): the claim that makes exactly one replica
//! handle a parked DID channel (its route: [`Store::did_route`]).

use super::placing::CallRecord;
use super::{Store, StoreError, Tx, on_pool, on_tx};
use crate::domain::time::now_ms;
use crate::media::pool::ParkedCall;

/// How long claims are kept (they only matter while the channel parks).
pub const CLAIM_TTL_MS: i64 = 24 * 3600 * 1000;

/// An inbound conversation opened on a claimed channel: its conversation row and its
/// user leg (the caller's channel, answered by the platform next).
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// `CV…`.
    pub conversation_id: String,
    /// The user leg, `CA…` (the sandbox's callSid when it gave one).
    pub leg_id: String,
    /// `RQ…`.
    pub request_id: String,
    /// The account the number is granted to.
    pub account_sid: String,
    /// The application routing it.
    pub app_id: String,
    /// The conversation's plan (JSON).
    pub params: String,
    /// The claiming process's lease epoch.
    pub epoch: i64,
    /// Unix ms (the media server's clock).
    pub created_at: i64,
}

impl NewInbound {
    /// Its user leg as the orchestrator drives it.
    pub fn user_leg(&self, call: &ParkedCall) -> CallRecord {
        CallRecord {
            id: self.leg_id.clone(),
            request_id: self.request_id.clone(),
            account_sid: self.account_sid.clone(),
            app_id: self.app_id.clone(),
            kind: crate::domain::CallKind::Agent.as_str().into(),
            conversation_id: Some(self.conversation_id.clone()),
            leg_seq: 0,
            state: "initiated".into(),
            to_number: call.did.clone(),
            from_number: Some(call.caller.clone()),
            params: self.params.clone(),
            node: Some(call.node.clone()),
            start_at: Some(self.created_at),
            created_at: self.created_at,
            channel_uuid: Some(call.uuid.clone()),
            ..CallRecord::default()
        }
    }
}

/// Inserts the claim of `call`: `true` for exactly one claimant of a channel.
async fn insert_claim(
    tx: &mut Tx<'_>,
    call: &ParkedCall,
    claimed_by: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = on_tx!(tx, |c| sqlx::query(
        "INSERT INTO inbound_claims (channel_uuid, node, did, caller, claimed_by, claimed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel_uuid) DO NOTHING"
    )
    .bind(&call.uuid)
    .bind(&call.node)
    .bind(&call.did)
    .bind(&call.caller)
    .bind(claimed_by)
    .bind(now_ms())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(inserted == 1)
}

impl Store {
    /// Claims `call` for process `claimed_by` and opens its conversation, in one
    /// transaction: `false` (nothing written) when another replica claimed it. A dial-in
    /// counts toward its account's live calls but is never refused for it.
    pub async fn open_inbound(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
        new: &NewInbound,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = insert_claim(&mut tx, call, claimed_by).await?;
        if !claimed {
            return Ok(false);
        }
        on_tx!(&mut tx, |c| sqlx::query(
            "UPDATE accounts SET live_calls = live_calls + 1 WHERE sid = $1"
        )
        .bind(&new.account_sid)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO conversations (id, request_id, account_sid, app_id, state, created_at) \
             VALUES ($1, $2, $3, $4, 'dialing', $5)"
        )
        .bind(&new.conversation_id)
        .bind(&new.request_id)
        .bind(&new.account_sid)
        .bind(&new.app_id)
        .bind(new.created_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        let leg = new.user_leg(call);
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO calls (id, request_id, account_sid, app_id, kind, conversation_id, leg_seq, state, to_number, \
             from_number, params, epoch, node, start_at, created_at, updated_at, channel_uuid) \
             VALUES ($1, $2, $3, $4, 'agent', $5, 0, 'initiated', $6, $7, $8, $9, $10, $11, $11, $11, $12)"
        )
        .bind(&leg.id)
        .bind(&leg.request_id)
        .bind(&leg.account_sid)
        .bind(&leg.app_id)
        .bind(&new.conversation_id)
        .bind(&leg.to_number)
        .bind(&leg.from_number)
        .bind(&leg.params)
        .bind(new.epoch)
        .bind(&call.node)
        .bind(new.created_at)
        .bind(&call.uuid)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims `call` for process `claimed_by`: `true` for exactly one claimant of a
    /// channel, whichever replicas ask.
    pub async fn claim_inbound(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = insert_claim(&mut tx, call, claimed_by).await?;
        tx.commit().await?;
        Ok(claimed)
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

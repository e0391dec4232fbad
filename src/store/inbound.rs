//! Inbound calls (agents' contract §9, §11.1): the claim that makes exactly one replica
//! handle a parked DID channel (its route: [`Store::did_route`]).

use super::inbound_opener::Opening;
use super::placing::CallRecord;
use super::{Store, StoreError, on_write};
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
    /// The caller leg's `initiated` for the application's `eventUrl`, if it has one.
    pub arrival: Option<crate::agents::push::EventPush>,
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

impl Store {
    /// Claims `call` for process `claimed_by` and opens its conversation, in one
    /// transaction (shared with the other channels parking at the same moment): `false`
    /// (nothing written) when another replica claimed it. A dial-in counts toward its
    /// account's live calls but is never refused for it.
    pub async fn open_inbound(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
        new: &NewInbound,
    ) -> Result<bool, StoreError> {
        self.claim(call, claimed_by, Some(new.clone())).await
    }

    /// Claims `call` for process `claimed_by`: `true` for exactly one claimant of a
    /// channel, whichever replicas ask.
    pub async fn claim_inbound(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
    ) -> Result<bool, StoreError> {
        self.claim(call, claimed_by, None).await
    }

    /// Claims `call`, opening `new` with it when given.
    async fn claim(
        &self,
        call: &ParkedCall,
        claimed_by: &str,
        new: Option<NewInbound>,
    ) -> Result<bool, StoreError> {
        let opening = Opening {
            call: call.clone(),
            claimed_by: claimed_by.to_string(),
            new,
        };
        self.opener.open(opening).await
    }

    /// Deletes claims older than a day; at most `limit`.
    pub async fn purge_inbound_claims(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        Ok(on_write!(self, |p| sqlx::query(
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

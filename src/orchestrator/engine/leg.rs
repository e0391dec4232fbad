//! One leg as the engine knows it: the facts its channel reported (created, ringing,
//! answered, hangup begun, ended) and what the platform did to it (dialled, hangup asked,
//! node lost). Facts only move forward: a duplicate or late event changes nothing.

use super::io::{Signalling, Status};
use crate::cdr::{LegEnd, LegFacts};

/// How a leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Unix ms on the media server's clock.
    pub at: i64,
    /// The media server's hangup cause (or the platform's, e.g. `MEDIA_LOST`).
    pub cause: String,
    /// What the far end's signalling said of it.
    pub signalling: Signalling,
}

/// One leg of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// `CA…`.
    pub id: String,
    /// Its channel's uuid: the callSid for a leg the platform dials, the channel's own
    /// for a caller who dialled in.
    pub channel: String,
    /// The media node it is (or will be) on; empty when none could take it.
    pub node: String,
    /// Caller id shown to it (`""` when the platform default is used).
    pub from: String,
    /// The number dialled.
    pub to: String,
    /// When it was dialled / its channel created (Unix ms).
    pub start_ms: i64,
    /// First ringing or early media.
    pub ring_ms: Option<i64>,
    /// Answer.
    pub answer_ms: Option<i64>,
    /// The hangup began: `Event-Sequence` and cause.
    pub hangup: Option<(u64, String)>,
    /// It is over.
    pub ended: Option<Ended>,
    /// The last status written for it.
    pub reported: Option<Status>,
    /// Its channel was asked for (originate or bridge sent), so it may exist.
    pub dialed: bool,
    /// The platform abandoned it before it answered (cancelCall, the caller left).
    pub canceled: bool,
    /// The platform ended it because of a failure of its own (the call was aborted).
    pub failed: bool,
    /// A hangup was asked for, with this cause, this many times.
    pub kill: Option<(String, u8)>,
    /// Its node's connection is lost; the leg waits for it (or for its grace to run out).
    pub lost: bool,
    /// A probe of its channel is on its way.
    pub probing: bool,
    /// Taken over from another process and not yet asked about.
    pub unverified: bool,
    /// How it ended for the contract, when that was settled before (a leg that ended
    /// before a takeover keeps what was reported for it).
    pub settled: Option<LegEnd>,
    /// Its originate failed with this cause; its own hangup events are awaited.
    pub originate_failed: Option<String>,
    /// Its channel's `Channel-Name`, once its CHANNEL_CREATE was heard (`""` before, and
    /// for a channel that existed before the platform followed it).
    pub channel_name: String,
}

impl Leg {
    /// A leg about to be dialled on `node` at `now`.
    pub fn new(id: String, node: String, from: String, to: String, now: i64) -> Self {
        Leg {
            channel: id.clone(),
            id,
            node,
            from,
            to,
            start_ms: now,
            ring_ms: None,
            answer_ms: None,
            hangup: None,
            ended: None,
            reported: None,
            dialed: false,
            canceled: false,
            failed: false,
            kill: None,
            lost: false,
            probing: false,
            unverified: false,
            originate_failed: None,
            settled: None,
            channel_name: String::new(),
        }
    }

    /// Not ended.
    pub fn is_live(&self) -> bool {
        self.ended.is_none()
    }

    /// Answered (and maybe ended since).
    pub fn answered(&self) -> bool {
        self.answer_ms.is_some()
    }

    /// Answered and not hanging up or ended: a party in the conversation.
    pub fn talking(&self) -> bool {
        self.answered() && self.hangup.is_none() && self.is_live()
    }

    /// Not hanging up or ended (ringing, answered or about to be dialled).
    pub fn up(&self) -> bool {
        self.hangup.is_none() && self.is_live()
    }

    /// How it ended for the contract.
    pub fn end_kind(&self) -> LegEnd {
        match &self.ended {
            Some(_) if self.settled.is_some() => self.settled.unwrap_or(LegEnd::Failed),
            Some(_) if self.failed => LegEnd::Failed,
            Some(end) => LegEnd::classify(self.answered(), &end.cause, self.canceled),
            None => LegEnd::Failed,
        }
    }

    /// Its facts for the CDR and status callbacks (once ended); `end` overrides how it
    /// ended (maxDuration, a platform failure).
    pub fn facts(&self, end: LegEnd) -> LegFacts {
        let (end_ms, cause, signalling) = match &self.ended {
            Some(e) => (e.at, e.cause.clone(), e.signalling.clone()),
            None => (self.start_ms, String::new(), Signalling::default()),
        };
        LegFacts {
            call_id: self.id.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            start_ms: self.start_ms,
            ring_ms: self.ring_ms,
            answer_ms: self.answer_ms,
            end_ms: end_ms.max(self.start_ms),
            end,
            hangup_cause: cause,
            sip_status: signalling.sip_status.unwrap_or_default(),
            proto_cause: signalling.proto_cause.unwrap_or_default(),
        }
    }
}

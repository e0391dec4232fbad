//! Click-to-call (API.md §6): dial the caller → answer → `greetVoice` → dial the callee
//! from the caller's channel with the `bridge` application (ringbackMode 0 passes the
//! callee's early media through; 1 plays `ringbackVoice` and, on failure, `failVoice`) →
//! bridged → `calleeVoice` / `callerVoice`; recording, and maxDuration with its
//! last-minute prompt, as timers on the media server (`sched_hangup`,
//! `sched_broadcast`). `cancelCall` works in every state; `addCall` dials a third party
//! and moves everyone into one conference.
//!
//! Every leg's `initiated → ringing → answered → completed` is journaled with its status
//! callback as it happens; the conversation's end writes the CDR with its byeType.

mod commands;
mod dial;
mod end;
mod events;
mod recovery;

use std::sync::Arc;

use futures_util::future::select_all;
use tokio::sync::{mpsc, oneshot};

use super::leg::{Dial, Leg, LegUpdate};
use super::prompts::Builtin;
use super::{Ctx, Placement};
use crate::cdr::{ConversationCdr, LegEnd, LegFacts, StatusEvent, call_cause};
use crate::domain::click2call::{AddCall, CalleeDial, RecordMode, RingbackMode, StoredClick2Call};
use crate::domain::time::now_ms;
use crate::domain::webhook_url::WebhookUrl;
use crate::store::applications::ApplicationRecord;
use crate::store::journal::{
    CdrRow, ConversationEnd, Entry, Finish, LegFinal, LegState, NewLeg, OutboxRow,
};
use crate::store::placing::CallRecord;

/// What the API can ask of a live conversation.
pub enum ConversationCommand {
    /// cancelCall: hang up every leg.
    Cancel(oneshot::Sender<Result<(), Refused>>),
    /// addCall: dial a third party into a conference.
    AddCall(Box<AddCall>, oneshot::Sender<Result<(), Refused>>),
}

/// Why a conversation refused a command.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not allowed in the current state (10007).
    #[error("{0}")]
    State(String),
    /// The conversation's media server is down (10005).
    #[error("no media server available")]
    NoMedia,
    /// The database failed; nothing was done (HTTP 503).
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] crate::store::StoreError),
}

/// The rule addCall's refusals start with.
pub(super) const ADD_CALL_RULE: &str =
    "addCall is allowed only while the conversation is two-party and bridged";

/// byeType values (§6.2).
mod bye {
    pub const CALLER_NO_ANSWER: u8 = 0;
    pub const CALLER_HUNG_UP_DIALING: u8 = 1;
    pub const CALLEE_NO_ANSWER: u8 = 2;
    pub const CALLER_HUNG_UP: u8 = 3;
    pub const CALLEE_HUNG_UP: u8 = 4;
    pub const MAX_DURATION: u8 = 5;
    pub const CANCELED: u8 = 6;
}

/// Hangup cause our cancelCall uses; a leg ending with it (also when another replica
/// or an operator sent it) counts as canceled.
pub(super) const CANCEL_CAUSE: &str = "MANAGER_REQUEST";
const MAX_DURATION_CAUSE: &str = "ALLOTTED_TIMEOUT";

/// What the conversation's loop woke up for.
enum Happened {
    Command(Option<ConversationCommand>),
    Leg(usize, LegUpdate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    DialCaller,
    Greeting(String),
    DialCallee,
    FailVoice(String),
    Bridged,
}

struct Party {
    id: String,
    from: String,
    to: String,
    leg: Option<Leg>,
    canceled: bool,
    /// Its `completed` has been written (it left a conversation that goes on).
    done: bool,
}

impl Party {
    fn live(&self) -> bool {
        !self.done && self.leg.as_ref().is_some_and(|l| l.ended.is_none())
    }

    fn answered_live(&self) -> bool {
        self.live() && self.leg.as_ref().is_some_and(Leg::answered)
    }

    fn end(&self) -> LegEnd {
        match &self.leg {
            Some(leg) => {
                let (_, cause) = leg.end();
                LegEnd::classify(
                    leg.answered(),
                    &cause,
                    self.canceled || cause == CANCEL_CAUSE,
                )
            }
            // Never dialled: canceled before it was (cancelCall), or no media server
            // could take it.
            None if self.canceled => LegEnd::Canceled,
            None => LegEnd::Failed,
        }
    }

    fn facts(&self) -> LegFacts {
        let now = now_ms();
        let (start, ring, answer, end) = match &self.leg {
            Some(l) => (
                l.start_ms,
                l.ring_ms,
                l.answer_ms,
                l.end().0.max(l.start_ms),
            ),
            None => (now, None, None, now),
        };
        LegFacts {
            call_id: self.id.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            start_ms: start,
            ring_ms: ring,
            answer_ms: answer,
            end_ms: end,
            end: self.end(),
        }
    }
}

struct Conversation {
    ctx: Arc<Ctx>,
    first: CallRecord,
    id: String,
    req: StoredClick2Call,
    answer_timeout: u32,
    status_url: Option<String>,
    cdr_url: Option<String>,
    parties: Vec<Party>,
    phase: Phase,
    bye: Option<u8>,
    in_conference: bool,
    /// Party being added, with its settings.
    adding: Option<(usize, AddCall)>,
    recording: Option<(String, i64)>,
}

/// Runs a conversation (from its claimed caller leg, or taken over) to its end.
pub(super) async fn run(ctx: &Arc<Ctx>, mut placement: Placement) -> Result<(), String> {
    let mut commands = placement
        .commands
        .take()
        .ok_or("conversation not registered")?;
    let pre_canceled = placement.pre_canceled;
    let first = placement.call;
    let id = first
        .conversation_id
        .clone()
        .ok_or("click-to-call leg without conversation")?;
    let req: StoredClick2Call =
        serde_json::from_str(&first.params).map_err(|e| format!("stored click2call: {e}"))?;
    let app = ctx.app(&first).await;
    // The request's URL, or else the application's.
    let url = |given: &Option<WebhookUrl>, app_url: fn(&ApplicationRecord) -> &Option<String>| {
        given
            .as_ref()
            .map(|u| u.as_str().to_string())
            .or_else(|| app.as_deref().and_then(|a| app_url(a).clone()))
    };
    let status_url = url(&req.call.status_url, |a| &a.status_url);
    let cdr_url = url(&req.call.cdr_url, |a| &a.cdr_url);
    let mut conv = Conversation {
        ctx: ctx.clone(),
        id: id.clone(),
        answer_timeout: placement.answer_timeout,
        status_url,
        cdr_url,
        parties: Vec::new(),
        phase: Phase::DialCaller,
        bye: None,
        in_conference: false,
        adding: None,
        recording: None,
        req,
        first,
    };
    let result = if pre_canceled {
        conv.cancel();
        conv.finish().await
    } else {
        conv.drive(&mut commands).await
    };
    if let Ok(mut map) = ctx.conversations.lock() {
        map.remove(&id);
    }
    // Anything the API sent after the end is refused as "ended".
    commands.close();
    while let Ok(cmd) = commands.try_recv() {
        refuse_ended(cmd);
    }
    result
}

fn refuse_ended(cmd: ConversationCommand) {
    let reply = match cmd {
        ConversationCommand::Cancel(r) | ConversationCommand::AddCall(_, r) => r,
    };
    let _ = reply.send(Err(Refused::State("conversation has already ended".into())));
}

impl Conversation {
    async fn drive(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<ConversationCommand>,
    ) -> Result<(), String> {
        if self.first.state == "placing" {
            self.dial_caller().await?;
        } else {
            self.reattach().await?;
        }
        while self.bye.is_none() {
            if !self.parties.iter().any(Party::live) {
                // Every leg is gone without a rule having fired: the caller's side ended.
                self.bye = Some(bye::CALLER_HUNG_UP);
                break;
            }
            let event = {
                let next = select_all(self.parties.iter_mut().enumerate().filter_map(|(i, p)| {
                    if !p.live() {
                        return None;
                    }
                    let leg = p.leg.as_mut()?;
                    Some(Box::pin(async move { (i, leg.next().await) }))
                }));
                tokio::select! {
                    cmd = commands.recv() => Happened::Command(cmd),
                    ((i, update), _, _) = next => Happened::Leg(i, update),
                }
            };
            match event {
                Happened::Command(Some(cmd)) => self.on_command(cmd).await,
                Happened::Command(None) => return Err("command channel closed".into()),
                Happened::Leg(i, update) => self.on_update(i, update).await?,
            }
        }
        self.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leg_never_dialled_is_canceled_only_by_cancel_call() {
        let party = |canceled| Party {
            id: "CA1".into(),
            from: String::new(),
            to: "13800000001".into(),
            leg: None,
            canceled,
            done: false,
        };
        assert_eq!(party(true).end(), LegEnd::Canceled);
        assert_eq!(party(false).end(), LegEnd::Failed);
    }
}

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

use std::sync::Arc;

use futures_util::future::select_all;
use tokio::sync::{mpsc, oneshot};

use super::leg::{Dial, Leg, LegUpdate};
use super::prompts::Builtin;
use super::{Ctx, Placement};
use crate::cdr::{ConversationCdr, LegEnd, LegFacts, StatusEvent, call_cause};
use crate::domain::click2call::{AddCall, CalleeDial, RecordMode, RingbackMode, StoredClick2Call};
use crate::domain::time::now_ms;
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
            None => LegEnd::Canceled,
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
    let status_url = req
        .call
        .status_url
        .as_ref()
        .map(|u| u.as_str().to_string())
        .or_else(|| app.as_ref().and_then(|a| a.status_url.clone()));
    let cdr_url = req
        .call
        .cdr_url
        .as_ref()
        .map(|u| u.as_str().to_string())
        .or_else(|| app.as_ref().and_then(|a| a.cdr_url.clone()));
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

    // ---- dialling ----------------------------------------------------------------

    fn dial_settings(&self) -> &CalleeDial {
        &self.req.call.dial
    }

    async fn dial_caller(&mut self) -> Result<(), String> {
        let from = self.req.call.caller_cli.as_ref().map(ToString::to_string);
        self.parties.push(Party {
            id: self.first.id.clone(),
            from: from.clone().unwrap_or_default(),
            to: self.first.to_number.clone(),
            leg: None,
            canceled: false,
            done: false,
        });
        let Some(node) = self.ctx.media.pick() else {
            self.parties[0].leg = None;
            self.bye = Some(bye::CALLER_NO_ANSWER);
            self.parties[0].canceled = false;
            return Ok(());
        };
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "dialing",
        })
        .await?;
        let at = node.now_ms();
        let callbacks = self.status(0, LegState::Initiated.as_str(), at, None);
        self.write(Entry::Leg {
            call_id: self.first.id.clone(),
            state: LegState::Initiated,
            at_ms: at,
            node: Some(node.name.clone()),
            callbacks,
        })
        .await?;
        let dial = Dial {
            uuid: &self.first.id,
            to: &self.first.to_number,
            from: from.as_deref(),
            timeout_secs: self.answer_timeout,
            dial_string: &self.ctx.settings.dial_string,
            vars: &[],
        };
        self.parties[0].leg = Some(Leg::originate(node, &dial, self.ctx.settings.media_grace));
        Ok(())
    }

    /// A leg dialled from the caller's channel (`bridge`) or parked (an added party):
    /// journaled as `initiated` first.
    async fn new_party(&mut self, to: &str, from: Option<String>) -> Result<usize, String> {
        let now = chrono::Utc::now();
        let id = self.ctx.ids.call(now).to_string();
        let seq = self.parties.len();
        let node = self
            .caller_leg()
            .map(|l| l.node.clone())
            .ok_or("caller leg missing")?;
        self.parties.push(Party {
            id: id.clone(),
            from: from.clone().unwrap_or_default(),
            to: to.to_string(),
            leg: None,
            canceled: false,
            done: false,
        });
        let at = node.now_ms();
        let callbacks = self.status(seq, LegState::Initiated.as_str(), at, None);
        let leg = NewLeg {
            id,
            request_id: self.first.request_id.clone(),
            account_sid: self.first.account_sid.clone(),
            app_id: self.first.app_id.clone(),
            conversation_id: self.id.clone(),
            leg_seq: seq as i64,
            to_number: to.to_string(),
            from_number: from,
            userdata: self.first.userdata.clone(),
            owner: self.ctx.instance.clone(),
            node: node.name.clone(),
            start_at: at,
        };
        self.write(Entry::NewLeg(Box::new(leg), callbacks)).await?;
        Ok(seq)
    }

    fn caller_leg(&self) -> Option<&Leg> {
        self.parties.first().and_then(|p| p.leg.as_ref())
    }

    async fn dial_callee(&mut self) -> Result<(), String> {
        let dial = self.dial_settings().clone();
        let from = dial
            .callee_cli
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| Some(self.first.to_number.clone()));
        let seq = self
            .new_party(&dial.callee.to_string(), from.clone())
            .await?;
        let uuid = self.parties[seq].id.clone();
        let caller = self.caller_leg().ok_or("caller leg missing")?;
        let node = caller.node.clone();
        let platform = dial.ringback_mode == RingbackMode::Platform;
        if platform {
            let ringback = self
                .prompt_or(
                    dial.ringback_voice.as_ref().map(|p| p.as_str()),
                    Builtin::Ringback,
                )
                .await;
            let _ = caller.execute("set", &format!("ringback={ringback}")).await;
        }
        let mut vars = vec![
            format!("origination_uuid={uuid}"),
            format!("originate_timeout={}", self.answer_timeout),
            format!("ignore_early_media={platform}"),
        ];
        if let Some(from) = &from {
            vars.push(format!("origination_caller_id_number={from}"));
        }
        let arg = format!(
            "{{{}}}{}",
            vars.join(","),
            self.ctx
                .settings
                .dial_string
                .replace("{number}", &dial.callee.to_string())
        );
        // Registered before the bridge starts, so no event of the new channel is missed.
        let leg = Leg::expect(
            &uuid,
            node.clone(),
            node.now_ms(),
            self.ctx.settings.media_grace,
        );
        self.parties[seq].leg = Some(leg);
        let caller = self.caller_leg().ok_or("caller leg missing")?;
        if caller.execute("bridge", &arg).await.is_err() {
            self.parties[seq].leg = None;
        }
        self.phase = Phase::DialCallee;
        Ok(())
    }

    async fn prompt_or(&self, name: Option<&str>, builtin: Builtin) -> String {
        match name {
            Some(name) => match self.ctx.prompts.path(&self.first.app_id, name).await {
                Ok(path) => path,
                Err(e) => {
                    tracing::warn!(conversation = %self.id, error = %e, "prompt unavailable; built-in used");
                    self.ctx.prompts.builtin(builtin)
                }
            },
            None => self.ctx.prompts.builtin(builtin),
        }
    }

    async fn prompt(&self, name: Option<&str>) -> Option<String> {
        let name = name?;
        self.ctx.prompts.path(&self.first.app_id, name).await.ok()
    }

    async fn broadcast(&self, party: usize, path: Option<String>) {
        if let (Some(path), Some(leg)) =
            (path, self.parties.get(party).and_then(|p| p.leg.as_ref()))
        {
            let _ = leg
                .api(&format!("uuid_broadcast {} {path} aleg", leg.id))
                .await;
        }
    }

    // ---- events ------------------------------------------------------------------

    async fn on_update(&mut self, i: usize, update: LegUpdate) -> Result<(), String> {
        match update {
            LegUpdate::Ringing => {
                self.journal_state(i, LegState::Ringing).await?;
                if i == 1 && self.dial_settings().record == RecordMode::FromCalleeRinging {
                    self.start_recording().await;
                }
            }
            LegUpdate::Answered => {
                self.journal_state(i, LegState::Answered).await?;
                self.on_answered(i).await?;
            }
            LegUpdate::AppDone(id, _) => match &self.phase {
                Phase::Greeting(g) if *g == id => self.dial_callee().await?,
                Phase::FailVoice(f) if *f == id => self.bye = Some(bye::CALLEE_NO_ANSWER),
                _ => {}
            },
            LegUpdate::Ended => self.on_ended(i).await?,
            LegUpdate::Key(_) | LegUpdate::RecordStopped(_) => {}
        }
        Ok(())
    }

    async fn on_answered(&mut self, i: usize) -> Result<(), String> {
        if i == 0 && self.phase == Phase::DialCaller {
            let greet = self
                .prompt(
                    self.dial_settings()
                        .greet_voice
                        .as_ref()
                        .map(|p| p.as_str()),
                )
                .await;
            match (greet, self.caller_leg()) {
                (Some(path), Some(leg)) => {
                    let id = leg.execute("playback", &path).await.unwrap_or_default();
                    self.phase = Phase::Greeting(id);
                }
                _ => self.dial_callee().await?,
            }
        } else if i == 1 && self.phase == Phase::DialCallee {
            self.on_bridged().await?;
        } else if self.adding.as_ref().is_some_and(|(p, _)| *p == i) {
            self.on_added(i).await?;
        }
        Ok(())
    }

    async fn on_bridged(&mut self) -> Result<(), String> {
        self.phase = Phase::Bridged;
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "bridged",
        })
        .await?;
        let dial = self.dial_settings().clone();
        if dial.record == RecordMode::FromCalleeAnswer {
            self.start_recording().await;
        }
        let callee_voice = self
            .prompt(dial.callee_voice.as_ref().map(|p| p.as_str()))
            .await;
        let caller_voice = self
            .prompt(dial.caller_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(1, callee_voice).await;
        self.broadcast(0, caller_voice).await;
        if let (Some(max), Some(caller)) = (self.req.call.max_duration, self.caller_leg()) {
            let _ = caller
                .api(&format!(
                    "sched_hangup +{max} {} {MAX_DURATION_CAUSE}",
                    caller.id
                ))
                .await;
            if max > 60 {
                let last = self
                    .prompt_or(
                        self.req.call.last_min_voice.as_ref().map(|p| p.as_str()),
                        Builtin::LastMinute,
                    )
                    .await;
                let caller = self.caller_leg().ok_or("caller leg missing")?;
                let _ = caller
                    .api(&format!(
                        "sched_broadcast +{} {} {last} both",
                        max - 60,
                        caller.id
                    ))
                    .await;
            }
        }
        Ok(())
    }

    async fn start_recording(&mut self) {
        if self.recording.is_some() {
            return;
        }
        let Some(caller) = self.caller_leg() else {
            return;
        };
        let path = self
            .ctx
            .settings
            .recordings_dir
            .join(format!("{}.wav", self.id));
        let path = std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string();
        if caller
            .api(&format!("uuid_record {} start {path}", caller.id))
            .await
            .is_ok()
        {
            let at = caller.node.now_ms();
            self.recording = Some((path, at));
        }
    }

    async fn on_ended(&mut self, i: usize) -> Result<(), String> {
        let cause = self.parties[i]
            .leg
            .as_ref()
            .map(|l| l.end().1)
            .unwrap_or_default();
        if self.bye.is_some() {
            return Ok(());
        }
        if cause == CANCEL_CAUSE {
            self.cancel();
            return Ok(());
        }
        if cause == MAX_DURATION_CAUSE {
            self.bye = Some(bye::MAX_DURATION);
            return Ok(());
        }
        let answered = self.parties[i].leg.as_ref().is_some_and(Leg::answered);
        if i == 0 {
            self.bye = Some(match self.phase {
                Phase::DialCaller => bye::CALLER_NO_ANSWER,
                Phase::Greeting(_) => bye::CALLER_HUNG_UP,
                Phase::DialCallee => {
                    if let Some(callee) = self.parties.get_mut(1) {
                        callee.canceled = true;
                    }
                    bye::CALLER_HUNG_UP_DIALING
                }
                Phase::FailVoice(_) => bye::CALLEE_NO_ANSWER,
                Phase::Bridged if self.in_conference && self.others_live(0) >= 2 => {
                    return self.party_left(0).await;
                }
                Phase::Bridged => bye::CALLER_HUNG_UP,
            });
        } else if i == 1 {
            if !answered && self.phase == Phase::DialCallee {
                if self.dial_settings().ringback_mode == RingbackMode::Platform {
                    let fail = self
                        .prompt_or(
                            self.dial_settings().fail_voice.as_ref().map(|p| p.as_str()),
                            Builtin::Failure,
                        )
                        .await;
                    if let Some(caller) = self.caller_leg().filter(|l| l.ended.is_none())
                        && let Ok(id) = caller.execute("playback", &fail).await
                    {
                        self.phase = Phase::FailVoice(id);
                        return Ok(());
                    }
                }
                self.bye = Some(bye::CALLEE_NO_ANSWER);
            } else {
                self.bye = Some(bye::CALLEE_HUNG_UP);
            }
        } else {
            let pending = self.adding.as_ref().is_some_and(|(p, _)| *p == i);
            if pending {
                let add = self.adding.take().map(|(_, a)| a);
                self.party_left(i).await?;
                if let Some(add) = add.filter(|a| a.dial.ringback_mode == RingbackMode::Platform) {
                    let fail = self
                        .prompt_or(
                            add.dial.fail_voice.as_ref().map(|p| p.as_str()),
                            Builtin::Failure,
                        )
                        .await;
                    self.broadcast(0, Some(fail)).await;
                }
            } else if self.others_live(i) >= 2 {
                self.party_left(i).await?;
            } else {
                self.bye = Some(bye::CALLEE_HUNG_UP);
            }
        }
        Ok(())
    }

    /// Live parties other than `i`.
    fn others_live(&self, i: usize) -> usize {
        self.parties
            .iter()
            .enumerate()
            .filter(|(j, p)| *j != i && p.live())
            .count()
    }

    /// A party left a conversation that goes on: its `completed` now.
    async fn party_left(&mut self, i: usize) -> Result<(), String> {
        let party = &self.parties[i];
        let facts = party.facts();
        let cause = party.leg.as_ref().map(|l| l.end().1).unwrap_or_default();
        let callbacks = self.status(i, "completed", facts.end_ms, Some(facts.end));
        self.write(Entry::LegEnded(
            LegFinal {
                call_id: facts.call_id.clone(),
                end_at: facts.end_ms,
                hangup_cause: cause,
                cause: call_cause(facts.end),
                inputkey: None,
            },
            callbacks,
        ))
        .await?;
        self.parties[i].done = true;
        if self.in_conference
            && self.adding.is_none()
            && self.parties.iter().filter(|p| p.live()).count() == 2
        {
            self.write(Entry::Conversation {
                id: self.id.clone(),
                state: "bridged",
            })
            .await?;
        }
        Ok(())
    }

    // ---- commands ----------------------------------------------------------------

    async fn on_command(&mut self, cmd: ConversationCommand) {
        match cmd {
            ConversationCommand::Cancel(reply) => {
                let verdict = if self.bye.is_some() {
                    Err(Refused::State("conversation has already ended".into()))
                } else {
                    self.cancel();
                    Ok(())
                };
                let _ = reply.send(verdict);
            }
            ConversationCommand::AddCall(add, reply) => {
                let verdict = self.add_call(*add).await;
                let _ = reply.send(verdict);
            }
        }
    }

    fn cancel(&mut self) {
        self.bye = Some(bye::CANCELED);
        for p in &mut self.parties {
            if p.leg.as_ref().is_none_or(|l| !l.answered()) {
                p.canceled = true;
            }
        }
    }

    async fn add_call(&mut self, add: AddCall) -> Result<(), Refused> {
        let parties = self.parties.iter().filter(|p| p.answered_live()).count();
        let why = if self.phase != Phase::Bridged {
            Some("the conversation has not been bridged yet")
        } else if self.adding.is_some() {
            Some("a party is being added")
        } else if parties != 2 {
            Some("the conversation has three parties")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Refused::State(format!("{ADD_CALL_RULE}; {why}")));
        }
        let node = self.caller_leg().map(|l| l.node.clone()).or_else(|| {
            self.parties.iter().find_map(|p| {
                p.leg
                    .as_ref()
                    .filter(|l| l.ended.is_none())
                    .map(|l| l.node.clone())
            })
        });
        let Some(node) = node.filter(|n| n.client.is_connected()) else {
            return Err(Refused::NoMedia);
        };
        let greet = self
            .prompt(add.dial.greet_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(0, greet).await;
        let from = add.dial.callee_cli.as_ref().map(ToString::to_string);
        let to = add.dial.callee.to_string();
        let seq = self
            .new_party(&to, from.clone())
            .await
            .map_err(|_| Refused::NoMedia)?;
        let dial = Dial {
            uuid: &self.parties[seq].id.clone(),
            to: &to,
            from: from.as_deref(),
            timeout_secs: add.timeout,
            dial_string: &self.ctx.settings.dial_string,
            vars: &[],
        };
        self.parties[seq].leg = Some(Leg::originate(node, &dial, self.ctx.settings.media_grace));
        self.adding = Some((seq, add));
        Ok(())
    }

    /// The added party answered: everyone into one conference.
    async fn on_added(&mut self, i: usize) -> Result<(), String> {
        let Some((_, add)) = self.adding.take() else {
            return Ok(());
        };
        let room = format!("{}@default", self.id);
        if !self.in_conference {
            if let Some(caller) = self.caller_leg() {
                let _ = caller
                    .api(&format!(
                        "uuid_transfer {} -both conference:{room} inline",
                        caller.id
                    ))
                    .await;
            }
            self.in_conference = true;
        }
        if let Some(leg) = self.parties[i].leg.as_ref() {
            let _ = leg.execute("conference", &room).await;
        }
        let callee_voice = self
            .prompt(add.dial.callee_voice.as_ref().map(|p| p.as_str()))
            .await;
        let caller_voice = self
            .prompt(add.dial.caller_voice.as_ref().map(|p| p.as_str()))
            .await;
        self.broadcast(i, callee_voice).await;
        self.broadcast(0, caller_voice).await;
        if add.dial.record != RecordMode::Off {
            self.start_recording().await;
        }
        self.write(Entry::Conversation {
            id: self.id.clone(),
            state: "three_way",
        })
        .await
    }

    // ---- recovery ----------------------------------------------------------------

    /// Taken over from a process that stopped: bridged conversations are followed to
    /// their end; any other is ended (its legs hung up).
    async fn reattach(&mut self) -> Result<(), String> {
        let legs = self
            .ctx
            .store
            .conversation_legs(&self.id)
            .await
            .map_err(|e| e.to_string())?;
        for rec in &legs {
            // A node no longer configured is asked anyway (by another node): the
            // channel is not found there, and the leg ends as lost.
            let node = rec
                .node
                .as_deref()
                .and_then(|n| self.ctx.media.node(n))
                .or_else(|| self.ctx.media.any());
            let unfinished = matches!(rec.state.as_str(), "initiated" | "ringing" | "answered");
            let leg = match node.filter(|_| unfinished) {
                Some(node) => {
                    let mut leg = Leg::attach(
                        &rec.id,
                        node,
                        rec.start_at.unwrap_or_else(now_ms),
                        self.ctx.settings.media_grace,
                    );
                    leg.ring_ms = rec.ring_at;
                    leg.answer_ms = rec.answer_at;
                    leg.check_exists();
                    Some(leg)
                }
                None => None,
            };
            self.parties.push(Party {
                id: rec.id.clone(),
                from: rec.from_number.clone().unwrap_or_default(),
                to: rec.to_number.clone(),
                leg,
                canceled: false,
                done: !unfinished,
            });
        }
        let answered = |i: usize| {
            self.parties
                .get(i)
                .and_then(|p| p.leg.as_ref())
                .is_some_and(Leg::answered)
        };
        if answered(0) && answered(1) {
            self.phase = Phase::Bridged;
            self.in_conference = self.parties.len() > 2;
        } else {
            self.bye = Some(if answered(0) {
                bye::CALLEE_NO_ANSWER
            } else {
                bye::CALLER_NO_ANSWER
            });
        }
        Ok(())
    }

    // ---- the end -----------------------------------------------------------------

    async fn finish(&mut self) -> Result<(), String> {
        for p in &mut self.parties {
            let live = p.live();
            if let Some(leg) = p.leg.as_mut().filter(|_| live) {
                let cause = if self.bye == Some(bye::CANCELED) {
                    CANCEL_CAUSE
                } else {
                    "NORMAL_CLEARING"
                };
                leg.hang_up(cause);
            }
        }
        for p in &mut self.parties {
            if let Some(leg) = p.leg.as_mut().filter(|_| !p.done) {
                leg.until_ended().await;
            }
        }
        if self.parties.is_empty() {
            // Canceled before its caller leg was ever dialled.
            self.parties.push(Party {
                id: self.first.id.clone(),
                from: self
                    .req
                    .call
                    .caller_cli
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                to: self.first.to_number.clone(),
                leg: None,
                canceled: true,
                done: false,
            });
        }
        let mut facts: Vec<LegFacts> = self.parties.iter().map(Party::facts).collect();
        if self.bye == Some(bye::MAX_DURATION) {
            // Every leg still talking was cut by the timer.
            for (f, p) in facts.iter_mut().zip(&self.parties) {
                if !p.done && f.end == LegEnd::Completed {
                    f.end = LegEnd::MaxDuration;
                }
            }
        }
        let mut legs = Vec::new();
        let mut callbacks = Vec::new();
        // The legs' last statuses in the order they ended.
        let mut order: Vec<usize> = (0..self.parties.len())
            .filter(|&i| !self.parties[i].done)
            .collect();
        order.sort_by_key(|&i| facts[i].end_ms);
        for &i in &order {
            let (p, f) = (&self.parties[i], &facts[i]);
            callbacks.extend(self.status(i, "completed", f.end_ms, Some(f.end)));
            legs.push(LegFinal {
                call_id: p.id.clone(),
                end_at: f.end_ms,
                hangup_cause: p
                    .leg
                    .as_ref()
                    .map_or_else(|| "ORIGINATOR_CANCEL".into(), |l| l.end().1),
                cause: call_cause(f.end),
                inputkey: None,
            });
        }
        // The recorder runs on the caller's channel and stops when it hangs up.
        let end_ms = facts.first().map_or_else(now_ms, |f| f.end_ms);
        let recording = self.recording.as_ref().map(|(path, start)| {
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            (
                format!("/Accounts/{}/Recordings/{name}", self.first.account_sid),
                (end_ms - start).max(0),
            )
        });
        let bye_type = self.bye.unwrap_or(bye::CALLER_HUNG_UP);
        let body = ConversationCdr {
            conversation_sid: &self.id,
            account_sid: &self.first.account_sid,
            app_sid: &self.first.app_id,
            recording_url: recording.as_ref().map_or("", |(u, _)| u.as_str()),
            recording_secs: recording.as_ref().map_or(0, |(_, ms)| ms / 1000),
            user_data: self.first.userdata.as_deref().unwrap_or_default(),
            bye_type,
            legs: &facts,
        }
        .body(self.ctx.settings.timezone);
        callbacks.extend(
            self.ctx
                .cdr_callbacks(
                    &self.first,
                    "click2call",
                    self.cdr_url.as_deref(),
                    &body,
                    &self.id,
                )
                .await,
        );
        let finish = Finish {
            legs,
            conversation: Some(ConversationEnd {
                id: self.id.clone(),
                bye_type,
                recording,
            }),
            cdr: CdrRow {
                id: self.id.clone(),
                account_sid: self.first.account_sid.clone(),
                app_id: self.first.app_id.clone(),
                kind: "click2call",
                start_time: facts.first().map_or_else(now_ms, |f| f.start_ms),
                to_number: self.first.to_number.clone(),
                body: body.to_string(),
                created_at: now_ms(),
            },
            callbacks,
        };
        self.write(Entry::Finish(Box::new(finish))).await
    }

    // ---- journal -----------------------------------------------------------------

    async fn write(&self, entry: Entry) -> Result<(), String> {
        self.ctx.journal(entry).await
    }

    async fn journal_state(&mut self, i: usize, state: LegState) -> Result<(), String> {
        let leg = self.parties[i].leg.as_ref().ok_or("no leg")?;
        let at = match state {
            LegState::Ringing => leg.ring_ms,
            LegState::Answered => leg.answer_ms,
            LegState::Initiated => Some(leg.start_ms),
        }
        .unwrap_or_else(now_ms);
        let callbacks = self.status(i, state.as_str(), at, None);
        self.write(Entry::Leg {
            call_id: self.parties[i].id.clone(),
            state,
            at_ms: at,
            node: None,
            callbacks,
        })
        .await
    }

    /// The status callback of party `i` reaching `status` (none without a statusUrl).
    fn status(&self, i: usize, status: &str, at_ms: i64, end: Option<LegEnd>) -> Vec<OutboxRow> {
        let Some(url) = self.status_url.as_deref().filter(|u| !u.is_empty()) else {
            return Vec::new();
        };
        let p = &self.parties[i];
        let body = StatusEvent {
            conversation_sid: &self.id,
            api_version: &self.req.api_version,
            account_sid: &self.first.account_sid,
            app_sid: &self.first.app_id,
            user_data: self.first.userdata.as_deref().unwrap_or_default(),
            call_sid: &p.id,
            from: &p.from,
            to: &p.to,
            call_status: status,
            at_ms,
            end,
        }
        .body(self.ctx.settings.timezone);
        vec![OutboxRow::new(
            &self.first.account_sid,
            &self.first.app_id,
            "status",
            url,
            &body,
            &self.id,
        )]
    }
}

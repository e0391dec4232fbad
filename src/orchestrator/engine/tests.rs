//! The engine against a simulated media server and database that do anything, in any
//! order: channel events in any order across legs, duplicates, answers never announced,
//! hangups without their first event, failed originates and refused applications, timers
//! firing, nodes lost and back, probes, API commands, failing journal writes, takeovers.
//! Whatever happens, once the far ends hang up and time passes, the call ends with:
//! every leg ended exactly once, one CDR, each leg's statuses in contract order, no command
//! aimed at a leg already ended, and a byeType that agrees with its legs (API.md §6.2).

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::cdr::LegEnd;
use crate::domain::IdGenerator;
use crate::domain::agent::PhoneType;
use crate::domain::agent_call::{AgentBye, AgentCall, CallType};
use crate::domain::click2call::RecordMode;
use crate::domain::notice::DtmfKey;
use crate::orchestrator::flows::agent::{
    AgentFlow, Offer, Outbound, Plan as ConversationPlan, QueueOrder, QueuePlan, Route, Step,
    TalkRules, Target,
};
use crate::orchestrator::flows::click2call::{AddParty, CalleePlan, Click2CallFlow, Plan};
use crate::orchestrator::flows::ivr::{IvrFlow, IvrKind, Keys, Script};
use crate::orchestrator::flows::orders::{
    AgentOrder, ConsultTo, Interception, OutsideNumber, Supervision, TransferTo,
};
use crate::store::placing::CallRecord;

const NODE: &str = "n1";
const CAUSES: [&str; 6] = [
    "NORMAL_CLEARING",
    "USER_BUSY",
    "NO_ANSWER",
    "MANAGER_REQUEST",
    "ALLOTTED_TIMEOUT",
    "NORMAL_CLEARING",
];

/// A channel as the simulated media server has it.
#[derive(Debug, Default, Clone)]
struct Chan {
    exists: bool,
    answered: bool,
    gone: bool,
    /// A hangup was asked for, with this cause.
    killed: Option<String>,
    /// Application runs not finished.
    runs: Vec<u32>,
    /// Runs an earlier driver started, not finished.
    foreign: Vec<u32>,
}

/// Everything the engine asked for, and what is pending in the world.
#[derive(Default)]
struct World {
    chans: BTreeMap<LegIdx, Chan>,
    /// Timers set, with when they are due (the media clock).
    timers: BTreeMap<Timer, i64>,
    replies: Vec<ReplyToken>,
    probes: Vec<LegIdx>,
    /// Statuses written per leg id, in order.
    statuses: BTreeMap<String, Vec<Status>>,
    finishes: Vec<(Vec<crate::cdr::LegFacts>, CdrKind)>,
    finished_effects: usize,
    answered_commands: Vec<(CommandToken, bool)>,
    commands: Vec<CommandToken>,
    cancel_accepted: bool,
    cancel_asked: bool,
    violations: Vec<String>,
    seq: u64,
    /// What the flow told its matchmaker, in order.
    signals: Vec<crate::orchestrator::flows::agent::QueueSignal>,
}

/// How to build the call's flow again (a takeover).
type Recipe = fn(Option<serde_json::Value>) -> Flow;

/// The database as the call's writes left it.
#[derive(Default, Clone)]
struct Stored {
    rows: BTreeMap<LegIdx, CallRecord>,
    snapshot: Option<serde_json::Value>,
    finished: bool,
}

struct Sim {
    engine: Conversation,
    recipe: Recipe,
    stored: Stored,
    world: World,
    now: i64,
    next_command: CommandToken,
    journal_fails: bool,
    generation: u32,
}

impl Sim {
    fn new(recipe: Recipe) -> Self {
        let mut stored = Stored::default();
        stored
            .rows
            .insert(0, row("CA-first", "13800000001", 0, "placing"));
        let engine = Conversation::new(core_with(&stored), recipe(None));
        Sim {
            engine,
            recipe,
            stored,
            world: World::default(),
            now: 1_800_000_000_000,
            next_command: 1,
            journal_fails: false,
            generation: 0,
        }
    }

    /// The process driving the call dies (or gives up after a refused write); another
    /// takes the call over from what is stored and drives it from `first`.
    fn take_over(&mut self, first: Vec<Input>) {
        if self.stored.finished {
            return;
        }
        self.generation += 1;
        self.world.timers.clear();
        self.world.replies.clear();
        // The old driver's end drops the commands it had not answered: their callers hear
        // that the call is gone.
        let answered: Vec<CommandToken> = self
            .world
            .answered_commands
            .iter()
            .map(|(t, _)| *t)
            .collect();
        self.world.commands.retain(|t| answered.contains(t));
        self.world.probes.clear();
        for chan in self.world.chans.values_mut() {
            // Runs of the old driver now end as someone else's.
            for run in chan.runs.drain(..) {
                chan.foreign.push(run);
            }
        }
        let queued = self
            .stored
            .rows
            .get(&0)
            .is_some_and(|r| r.state == "placing");
        let snapshot = self.stored.snapshot.clone();
        let mut core = core_with(&self.stored);
        core.now = self.now;
        self.engine = if queued {
            // Never dialled: back to the queue, placed afresh.
            Conversation::new(core, (self.recipe)(None))
        } else {
            Conversation::restored(core, (self.recipe)(snapshot))
        };
        for input in first {
            self.feed(input);
        }
    }

    fn leg_id(&self, leg: LegIdx) -> String {
        self.engine.core.legs[leg].id.clone()
    }

    /// Feeds one input and plays the simulated world's part in the effects.
    fn feed(&mut self, input: Input) {
        let ended_before: Vec<bool> = self.engine.core.legs.iter().map(|l| !l.is_live()).collect();
        if self.engine.is_finished() && !matches!(input, Input::Command(..)) {
            return;
        }
        let effects = self.engine.step(self.now, input);
        let fail_next_journal = std::mem::take(&mut self.journal_fails);
        let mut effects = effects.into_iter();
        while let Some(effect) = effects.next() {
            let target = match &effect {
                Effect::Originate(leg, _) | Effect::Media(leg, ..) | Effect::Probe(leg) => {
                    Some(*leg)
                }
                Effect::Execute { leg, .. } => Some(*leg),
                _ => None,
            };
            if let Some(leg) = target
                && ended_before.get(leg).copied().unwrap_or(false)
            {
                self.world
                    .violations
                    .push(format!("{effect:?} aimed at leg {leg}, already ended"));
            }
            if self.world.finished_effects > 0 && !matches!(effect, Effect::Reply(..)) {
                self.world
                    .violations
                    .push(format!("{effect:?} after Finished"));
            }
            match effect {
                Effect::Journal(writes) => {
                    if fail_next_journal {
                        // The write did not happen: the driver refuses what it was asked
                        // and gives up; the call is rebuilt from the store and ended.
                        let refused = effects
                            .filter_map(|e| match e {
                                Effect::Reply(token, _) => {
                                    Some(Effect::Reply(token, Err(Refusal::NoMedia)))
                                }
                                _ => None,
                            })
                            .collect();
                        self.absorb(refused);
                        for token in self.world.commands.clone() {
                            if !self
                                .world
                                .answered_commands
                                .iter()
                                .any(|(t, _)| *t == token)
                            {
                                self.world.answered_commands.push((token, false));
                            }
                        }
                        self.take_over(vec![Input::Start, Input::Abort]);
                        return;
                    }
                    self.write(writes);
                }
                other => self.absorb(vec![other]),
            }
        }
    }

    fn absorb(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Journal(writes) => self.write(writes),
                Effect::Follow(_) => {}
                Effect::Queue(signal) => self.world.signals.push(signal),
                Effect::Originate(leg, _) => {
                    if !self.written(leg) {
                        self.world
                            .violations
                            .push(format!("originate of leg {leg} before it was written"));
                    }
                    self.world.chans.entry(leg).or_default().exists = true;
                }
                Effect::Execute { leg, app, run } => {
                    if let App::Bridge(target, _) = app {
                        if !self.written(target) {
                            self.world
                                .violations
                                .push(format!("bridge to leg {target} before it was written"));
                        }
                        self.world.chans.entry(target).or_default().exists = true;
                    }
                    self.world.chans.entry(leg).or_default().runs.push(run);
                }
                Effect::Media(leg, command, token) => {
                    if command == MediaCommand::BreakAll {
                        // The running application (the oldest) ends; those queued behind
                        // it are dropped without a word.
                        let chan = self.world.chans.entry(leg).or_default();
                        chan.runs.sort_unstable();
                        chan.runs.truncate(1);
                    }
                    if let MediaCommand::Kill(cause) = &command {
                        let chan = self.world.chans.entry(leg).or_default();
                        if chan.killed.is_none() {
                            chan.killed = Some(cause.clone());
                        }
                    }
                    if let Some(token) = token {
                        self.world.replies.push(token);
                    }
                }
                Effect::Probe(leg) => self.world.probes.push(leg),
                Effect::SetTimer(timer, ms) => {
                    self.world.timers.insert(timer, self.now + ms);
                }
                Effect::CancelTimer(timer) => {
                    self.world.timers.remove(&timer);
                }
                Effect::Reply(token, verdict) => {
                    if self
                        .world
                        .answered_commands
                        .iter()
                        .any(|(t, _)| *t == token)
                    {
                        self.world
                            .violations
                            .push(format!("command {token} answered twice"));
                    }
                    self.world.answered_commands.push((token, verdict.is_ok()));
                }
                Effect::Finished => self.world.finished_effects += 1,
            }
        }
    }

    /// Whether leg `leg` was written as `initiated`.
    fn written(&self, leg: LegIdx) -> bool {
        self.engine.core.legs.get(leg).is_some_and(|l| {
            self.world
                .statuses
                .get(&l.id)
                .is_some_and(|s| s.contains(&Status::Initiated))
        })
    }

    fn write(&mut self, writes: Vec<Write>) {
        if self.stored.finished {
            self.world
                .violations
                .push(format!("{writes:?} after the end was written"));
        }
        for write in writes {
            match write {
                Write::Status(leg, status, at) => {
                    self.status(leg, status);
                    let node = self.engine.core.legs[leg].node.clone();
                    let row = self.stored.rows.entry(leg).or_default();
                    row.state = status.as_str().into();
                    match status {
                        Status::Initiated => {
                            row.start_at = Some(at);
                            row.node = Some(node);
                        }
                        Status::Ringing => row.ring_at = Some(at),
                        Status::Answered => row.answer_at = Some(at),
                        Status::Completed => {}
                    }
                }
                Write::NewLeg(leg) => {
                    self.status(leg, Status::Initiated);
                    let l = &self.engine.core.legs[leg];
                    let mut r = row(&l.id, &l.to, leg, "initiated");
                    r.start_at = Some(l.start_ms);
                    r.from_number = Some(l.from.clone());
                    self.stored.rows.insert(leg, r);
                }
                Write::LegEnded(leg, facts) => {
                    self.check_facts(&facts);
                    self.status(leg, Status::Completed);
                    self.stored_end(leg, &facts);
                }
                Write::Waiting(_) | Write::QueueEvent(_) => {}
                Write::Held(leg, _, _) | Write::Bridged(leg, _) | Write::Conferenced(leg, _) => {
                    if !self.engine.core.legs[leg].answered() {
                        self.world
                            .violations
                            .push(format!("leg {leg} held before it answered"));
                    }
                }
                Write::Snapshot(_, data) => {
                    // A cancel (by command or by a MANAGER_REQUEST hangup) decided and written.
                    self.world.cancel_asked |= data["bye"] == "Canceled";
                    self.stored.snapshot = Some(data);
                }
                Write::Finish { ending, legs, kind } => {
                    for (leg, facts) in &ending {
                        self.check_facts(facts);
                        self.status(*leg, Status::Completed);
                        self.stored_end(*leg, facts);
                    }
                    self.world.finishes.push((legs, kind));
                    self.stored.finished = true;
                }
            }
        }
    }

    fn stored_end(&mut self, leg: LegIdx, facts: &crate::cdr::LegFacts) {
        let row = self.stored.rows.entry(leg).or_default();
        row.state = "completed".into();
        row.end_at = Some(facts.end_ms);
        row.hangup_cause = Some(facts.hangup_cause.clone());
        row.cause = Some(crate::cdr::call_cause(facts.end).into());
        row.answer_at = row.answer_at.or(facts.answer_ms);
        row.ring_at = row.ring_at.or(facts.ring_ms);
    }

    fn status(&mut self, leg: LegIdx, status: Status) {
        let id = self.leg_id(leg);
        let list = self.world.statuses.entry(id.clone()).or_default();
        if list.last().is_some_and(|last| *last >= status) {
            self.world
                .violations
                .push(format!("leg {leg}: {status:?} after {list:?}"));
        }
        list.push(status);
    }

    fn check_facts(&mut self, f: &crate::cdr::LegFacts) {
        let times = [Some(f.start_ms), f.ring_ms, f.answer_ms, Some(f.end_ms)];
        let times: Vec<i64> = times.into_iter().flatten().collect();
        if !times.windows(2).all(|w| w[0] <= w[1]) {
            self.world
                .violations
                .push(format!("times out of order: {f:?}"));
        }
    }

    fn tick(&mut self, ms: i64) {
        self.now += ms;
    }

    /// Timer `timer` fires: time has reached it.
    fn fire(&mut self, timer: Timer) {
        if let Some(due) = self.world.timers.remove(&timer) {
            self.now = self.now.max(due);
        }
        self.feed(Input::Timer(timer));
    }

    /// One random happening, chosen by `choice`.
    fn happen(&mut self, choice: u16) {
        self.tick(i64::from(choice % 700));
        let legs: Vec<LegIdx> = self
            .world
            .chans
            .iter()
            .filter(|(_, c)| c.exists && !c.gone)
            .map(|(l, _)| *l)
            .collect();
        let pick = |n: usize| usize::from(choice / 16) % n.max(1);
        let inbound = matches!(self.engine.flow, Flow::Agent(_));
        match choice % 16 {
            0 | 9 | 10 | 14 if inbound => self.inbound_step(choice / 16),
            0..=4 if !legs.is_empty() => {
                let leg = legs[pick(legs.len())];
                self.channel_event(leg, choice);
            }
            5 if !self.world.timers.is_empty() => {
                let timers: Vec<Timer> = self.world.timers.keys().copied().collect();
                let timer = timers[pick(timers.len())];
                self.fire(timer);
            }
            6 if !self.world.replies.is_empty() => {
                let token = self.world.replies.remove(0);
                self.feed(Input::Reply(token, !choice.is_multiple_of(3)));
            }
            7 if !self.world.probes.is_empty() => {
                let leg = self.world.probes.remove(0);
                let probe = self.probe_of(leg, choice);
                self.feed(Input::Probed(leg, probe));
            }
            8 => self.feed(if choice.is_multiple_of(2) {
                Input::NodeDown(NODE.into())
            } else {
                Input::NodeUp(NODE.into())
            }),
            9 if choice.is_multiple_of(5) => self.command(Command::Cancel),
            9 => self.command(Command::AddCall(Box::new(party()))),
            10 if choice.is_multiple_of(7) => self.journal_fails = true,
            11 => {
                let killed: Vec<LegIdx> = legs
                    .iter()
                    .copied()
                    .filter(|l| self.world.chans[l].killed.is_some())
                    .collect();
                if let Some(&leg) = killed.get(pick(killed.len())) {
                    let cause = self.world.chans[&leg].killed.clone().unwrap_or_default();
                    self.hang_up(leg, &cause, !choice.is_multiple_of(4));
                }
            }
            12 => {
                let running: Vec<(LegIdx, u32)> = self
                    .world
                    .chans
                    .iter()
                    .filter(|(_, c)| !c.gone)
                    .flat_map(|(l, c)| c.runs.iter().map(move |r| (*l, *r)))
                    .collect();
                if let Some(&(leg, run)) = running.get(pick(running.len())) {
                    if let Some(c) = self.world.chans.get_mut(&leg) {
                        c.runs.retain(|r| *r != run);
                    }
                    let input = if choice.is_multiple_of(9) {
                        Input::Refused(leg, run)
                    } else {
                        Input::Media(leg, MediaEvent::AppDone { run: Some(run) })
                    };
                    self.feed(input);
                }
            }
            13 if !legs.is_empty() => {
                let leg = legs[pick(legs.len())];
                if !self.world.chans[&leg].answered {
                    self.feed(Input::OriginateFailed(leg, "USER_BUSY".into()));
                }
            }
            14 if choice.is_multiple_of(3) => self.feed(Input::Media(7, MediaEvent::Dtmf('1'))),
            14 => {
                let foreign: Vec<LegIdx> = self
                    .world
                    .chans
                    .iter()
                    .filter(|(_, c)| !c.foreign.is_empty() && !c.gone)
                    .map(|(l, _)| *l)
                    .collect();
                if let Some(&leg) = foreign.get(pick(foreign.len())) {
                    if let Some(c) = self.world.chans.get_mut(&leg) {
                        c.foreign.pop();
                    }
                    self.feed(Input::Media(leg, MediaEvent::AppDone { run: None }));
                }
            }
            15 if choice.is_multiple_of(3) => self.take_over(vec![Input::Start]),
            _ => {}
        }
    }

    /// A step that moves a backend outbound call along: its user or a ringing offer
    /// answers, or a command of the matchmaker or of an agent with a leg in it.
    fn inbound_step(&mut self, choice: u16) {
        let ringing: Vec<LegIdx> = self
            .world
            .chans
            .iter()
            .filter(|(_, c)| c.exists && !c.answered && !c.gone)
            .map(|(l, _)| *l)
            .collect();
        if !self.world.replies.is_empty() && choice.is_multiple_of(2) {
            let token = self.world.replies.remove(0);
            return self.feed(Input::Reply(token, true));
        }
        if !ringing.is_empty() && (ringing[0] == 0 || choice.is_multiple_of(3)) {
            let leg = ringing[usize::from(choice / 3) % ringing.len()];
            if let Some(c) = self.world.chans.get_mut(&leg) {
                c.answered = true;
            }
            return self.feed(Input::Media(leg, MediaEvent::Answered { at: self.now }));
        }
        let agent = match &self.engine.flow {
            Flow::Agent(f) if !choice.is_multiple_of(5) => f
                .state()
                .offers
                .iter()
                .rev()
                .find(|o| !o.offer.agent_no.is_empty() && !o.left)
                .map(|o| o.offer.agent_no.clone()),
            _ => None,
        };
        self.command(inbound_command(choice / 3, agent));
    }

    fn command(&mut self, command: Command) {
        let token = self.next_command;
        self.next_command += 1;
        self.world.commands.push(token);
        let cancel = matches!(command, Command::Cancel);
        self.world.cancel_asked |= cancel;
        self.feed(Input::Command(token, command));
        if cancel
            && self
                .world
                .answered_commands
                .iter()
                .any(|(t, ok)| *t == token && *ok)
        {
            self.world.cancel_accepted = true;
        }
    }

    fn probe_of(&self, leg: LegIdx, choice: u16) -> Probe {
        let chan = self.world.chans.get(&leg).cloned().unwrap_or_default();
        if choice.is_multiple_of(11) {
            Probe::Unknown
        } else if !chan.exists || chan.gone {
            Probe::Gone
        } else {
            Probe::Alive {
                progress_at: Some(self.now - 10),
                answered_at: chan.answered.then_some(self.now - 5),
            }
        }
    }

    fn channel_event(&mut self, leg: LegIdx, choice: u16) {
        let now = self.now;
        let event = match (choice / 16) % 7 {
            0 => MediaEvent::Progress { at: now },
            1 | 2 => {
                if let Some(c) = self.world.chans.get_mut(&leg) {
                    c.answered = true;
                }
                MediaEvent::Answered { at: now }
            }
            3 => MediaEvent::Dtmf(['1', '2', '#'][usize::from(choice) % 3]),
            4 => MediaEvent::Created {
                at: now,
                name: String::new(),
            },
            _ => {
                let cause = CAUSES[usize::from(choice / 7) % CAUSES.len()];
                return self.hang_up(leg, cause, !choice.is_multiple_of(3));
            }
        };
        self.feed(Input::Media(leg, event.clone()));
        if choice.is_multiple_of(13) {
            // A duplicate.
            self.feed(Input::Media(leg, event));
        }
    }

    /// The far end (or a kill) ends the channel; `announced`: CHANNEL_HANGUP first.
    fn hang_up(&mut self, leg: LegIdx, cause: &str, announced: bool) {
        self.world.seq += 1;
        let seq = self.world.seq;
        let answered = self.world.chans.get(&leg).is_some_and(|c| c.answered);
        if let Some(c) = self.world.chans.get_mut(&leg) {
            c.gone = true;
            c.runs.clear();
        }
        if announced {
            self.feed(Input::Media(
                leg,
                MediaEvent::Hangup {
                    seq,
                    cause: cause.into(),
                },
            ));
        }
        self.feed(Input::Media(
            leg,
            MediaEvent::HangupComplete {
                at: self.now,
                cause: cause.into(),
                answered_at: answered.then_some(self.now - 1),
                signalling: Default::default(),
            },
        ));
    }

    /// Everyone hangs up and time passes until the call is over.
    fn drain(&mut self) {
        for _ in 0..400 {
            if self.engine.is_finished() {
                return;
            }
            self.tick(1_000);
            if let Some(token) = self.world.replies.pop() {
                self.feed(Input::Reply(token, true));
                continue;
            }
            if let Some(leg) = self.world.probes.pop() {
                let probe = self.probe_of(leg, 1);
                self.feed(Input::Probed(leg, probe));
                continue;
            }
            let live: Vec<LegIdx> = self
                .world
                .chans
                .iter()
                .filter(|(_, c)| c.exists && !c.gone)
                .map(|(l, _)| *l)
                .collect();
            if let Some(&leg) = live.first() {
                let cause = self.world.chans[&leg]
                    .killed
                    .clone()
                    .unwrap_or("NORMAL_CLEARING".into());
                self.hang_up(leg, &cause, true);
                continue;
            }
            if let Some(timer) = self.world.timers.keys().next().copied() {
                self.fire(timer);
                continue;
            }
            return;
        }
    }

    /// The invariants of a finished call.
    fn check(&self) -> Result<(), String> {
        if !self.world.violations.is_empty() {
            return Err(self.world.violations.join("\n"));
        }
        if !self.engine.is_finished() {
            return Err(format!("never finished: {:#?}", self.engine.core.legs));
        }
        if self.world.finishes.len() != 1 || self.world.finished_effects != 1 {
            return Err(format!(
                "{} CDRs, {} Finished",
                self.world.finishes.len(),
                self.world.finished_effects
            ));
        }
        let stored = self.stored.rows.values().map(|row| &row.id);
        for id in stored.chain(self.engine.core.legs.iter().map(|leg| &leg.id)) {
            let list = self.world.statuses.get(id).cloned().unwrap_or_default();
            if list.last() != Some(&Status::Completed)
                || list.iter().filter(|s| **s == Status::Completed).count() != 1
            {
                return Err(format!("leg {id}: statuses {list:?}"));
            }
        }
        for token in &self.world.commands {
            if !self.world.answered_commands.iter().any(|(t, _)| t == token) {
                return Err(format!("command {token} never answered"));
            }
        }
        let (legs, kind) = &self.world.finishes[0];
        if legs.len() != self.engine.core.legs.len() {
            return Err("the CDR lacks legs".into());
        }
        match kind {
            CdrKind::Click2Call { bye, .. } => bye_agrees(
                *bye,
                legs,
                self.world.cancel_accepted,
                self.world.cancel_asked,
            )?,
            CdrKind::Agent { bye, .. } => match &self.engine.flow {
                Flow::Agent(f) if f.call_out().is_some() => call_out_bye_agrees(*bye, legs)?,
                _ => inbound_bye_agrees(*bye, legs)?,
            },
            _ => {}
        }
        Ok(())
    }
}

/// byeType against what the legs say (API.md §6.2). An answer that raced the deciding
/// hangup (the callee answering as the caller hung up) may show on a leg after the fact.
/// A cancel refused because its write failed may still end the call as canceled.
fn bye_agrees(
    bye: ByeType,
    legs: &[crate::cdr::LegFacts],
    canceled: bool,
    cancel_asked: bool,
) -> Result<(), String> {
    let answered = |i: usize| legs.get(i).is_some_and(|l| l.answer_ms.is_some());
    let ok = match bye {
        ByeType::CallerNoAnswer => !answered(0) || legs.len() == 1,
        ByeType::CallerHungUpDialing => answered(0) && legs.len() >= 2,
        ByeType::CalleeNoAnswer => answered(0),
        ByeType::CallerHungUp => answered(0),
        ByeType::CalleeHungUp => answered(0) && answered(1),
        // Decided, then the platform failed before the legs ended: they carry the abort's
        // cause (timers firing at their due time reach this).
        ByeType::MaxDuration => legs
            .iter()
            .any(|l| l.end == LegEnd::MaxDuration || l.hangup_cause == super::core::ABORT_CAUSE),
        ByeType::Canceled => {
            cancel_asked || legs.iter().any(|l| l.hangup_cause == "MANAGER_REQUEST")
        }
    };
    if canceled && bye != ByeType::Canceled {
        // A cancel accepted before another rule fired decides.
        return Err(format!("cancel accepted but byeType {bye:?}: {legs:#?}"));
    }
    ok.then_some(())
        .ok_or_else(|| format!("byeType {bye:?} disagrees with {legs:#?}"))
}

/// A callOut's byeType against what its legs say (agents' contract §10): the user (leg 1)
/// is dialled only once the agent (leg 0) answered, and a connected call's end names a
/// side; once they talked, a transfer may fail or leave the user waiting in a queue.
fn call_out_bye_agrees(bye: AgentBye, legs: &[crate::cdr::LegFacts]) -> Result<(), String> {
    let answered = |i: usize| legs.get(i).is_some_and(|l| l.answer_ms.is_some());
    let ok = match bye {
        AgentBye::FirstNoAnswer => legs.len() == 1,
        AgentBye::FirstHungUpDialing | AgentBye::SecondNoAnswer => answered(0) && legs.len() == 2,
        AgentBye::UserHungUp | AgentBye::AgentHungUp | AgentBye::Forced => {
            answered(0) && answered(1)
        }
        // Transferred to a queue: it waits, overflows, or the transfer fails.
        AgentBye::Abandoned | AgentBye::RouteHangup | AgentBye::TransferFailed => {
            answered(0) && answered(1)
        }
        AgentBye::MaxDuration => legs.iter().any(|l| l.end == LegEnd::MaxDuration),
        AgentBye::MediaFailure => true,
    };
    if legs.len() >= 2 && !answered(0) {
        return Err(format!(
            "the user was dialled before the agent answered: {legs:#?}"
        ));
    }
    ok.then_some(())
        .ok_or_else(|| format!("byeType {bye:?} disagrees with {legs:#?}"))
}

/// A backend outbound call's byeType against what its legs say (agents' contract §10):
/// the user (leg 0) is dialled first; a connected end needs an agent or a transfer's
/// number connected.
fn inbound_bye_agrees(bye: AgentBye, legs: &[crate::cdr::LegFacts]) -> Result<(), String> {
    let answered = |i: usize| legs.get(i).is_some_and(|l| l.answer_ms.is_some());
    let others_answered = (1..legs.len()).any(answered);
    let ok = match bye {
        AgentBye::FirstNoAnswer => !answered(0) && legs.len() == 1,
        AgentBye::UserHungUp | AgentBye::AgentHungUp | AgentBye::Forced => {
            answered(0) && others_answered
        }
        AgentBye::Abandoned | AgentBye::RouteHangup | AgentBye::TransferFailed => answered(0),
        AgentBye::MaxDuration => legs.iter().any(|l| l.end == LegEnd::MaxDuration),
        AgentBye::MediaFailure => true,
        // A callOut's only.
        AgentBye::FirstHungUpDialing | AgentBye::SecondNoAnswer => false,
    };
    ok.then_some(())
        .ok_or_else(|| format!("byeType {bye:?} disagrees with {legs:#?}"))
}

/// A command of the matchmaker or of an agent (`agent`, else 1001 or 1002) to a backend
/// outbound call, chosen by `choice`.
fn inbound_command(choice: u16, agent: Option<String>) -> Command {
    let agent = agent.unwrap_or_else(|| ["1001", "1002"][usize::from(choice / 16) % 2].into());
    let order = match choice % 25 {
        23 | 24 => AgentOrder::Intercept(Interception {
            supervisor: "2001".into(),
            offer: (choice % 25 == 23).then(supervisor_offer),
        }),
        21 | 22 => AgentOrder::Monitor(Supervision {
            supervisor: "2001".into(),
            offer: (choice % 25 == 21).then(supervisor_offer),
            mode: crate::domain::agent_call::MonitorMode::of_key(
                ['0', '2', '3'][usize::from(choice) % 3],
            )
            .unwrap_or(crate::domain::agent_call::MonitorMode::Monitor),
        }),
        16 => AgentOrder::Consult(ConsultTo::Agent(Offer {
            agent_no: "1003".into(),
            agent_number: "80001003".into(),
            endpoint: Endpoint::Device,
            auto_answer: false,
            shown: None,
            wrapup_time: 0,
            queue: String::new(),
        })),
        17 => AgentOrder::Consult(ConsultTo::Number(OutsideNumber {
            number: "13800000008".into(),
            caller_id: None,
            timeout_secs: 30,
        })),
        18 => AgentOrder::ConsultTransfer,
        19 => AgentOrder::ConsultConference,
        20 => AgentOrder::CancelConsult,
        0..=4 => {
            return Command::Queue(QueueOrder::Offer(Offer {
                agent_no: agent.clone(),
                agent_number: format!("8000{agent}"),
                endpoint: Endpoint::Device,
                auto_answer: choice.is_multiple_of(3),
                shown: None,
                wrapup_time: 0,
                queue: "QU1".into(),
            }));
        }
        5 => return Command::Queue(QueueOrder::NoAgents),
        6 => return Command::Queue(QueueOrder::Announce(2)),
        7 => AgentOrder::Hangup,
        8 => AgentOrder::Transfer(TransferTo::Agent("1002".into())),
        9 => AgentOrder::Transfer(TransferTo::Queue {
            queue: "QU2".into(),
            plans: [("QU2".to_string(), queue_plan(Step::Queue("QU1".into())))].into(),
        }),
        10 | 11 => AgentOrder::Transfer(TransferTo::Number(OutsideNumber {
            number: "13800000009".into(),
            caller_id: None,
            timeout_secs: 30,
        })),
        12 => AgentOrder::Hold,
        13 => AgentOrder::Retrieve,
        14 => AgentOrder::Bridge,
        _ => AgentOrder::ForceHangup,
    };
    Command::Agent(agent, order)
}

/// Supervisor 2001's claim for a leg of its own.
fn supervisor_offer() -> Offer {
    Offer {
        agent_no: "2001".into(),
        agent_number: "80002001".into(),
        endpoint: Endpoint::Device,
        auto_answer: true,
        shown: None,
        wrapup_time: 0,
        queue: String::new(),
    }
}

fn queue_plan(overflow: Step) -> QueuePlan {
    QueuePlan {
        ring_timeout_secs: 20,
        max_wait_secs: 60,
        overflow,
        music: "m.wav".into(),
        announce: None,
        name: "q".into(),
    }
}

/// A backend outbound call to `target` (its user dialled first, then it waits), under
/// `rules`.
fn inbound_call(target: Target, rules: TalkRules, snapshot: Option<serde_json::Value>) -> Flow {
    let step = match target {
        Target::Queue(sid) => Step::Queue(sid),
        Target::Agent(agent_no) => Step::Agent {
            agent_no,
            fallback: Box::new(Step::Hangup("f.wav".into())),
        },
    };
    let plan = crate::orchestrator::flows::agent::Plan {
        did: String::new(),
        user_number: "13800000001".into(),
        welcome: None,
        route: Route::Step(step),
        queues: [("QU1".to_string(), queue_plan(Step::Hangup("f.wav".into())))].into(),
        failure: "f.wav".into(),
        outbound: Some(Outbound {
            caller_id: None,
            display_num: String::new(),
            answer_timeout: 45,
            max_wait_secs: 60,
        }),
        agent_ring_secs: 20,
        call_out: None,
    };
    let snapshot = snapshot.and_then(|s| serde_json::from_value(s).ok());
    let flow = AgentFlow::new(plan, rules, String::new());
    Flow::Agent(Box::new(flow.resumed(snapshot)))
}

/// Talk bounded to `max` seconds and recorded.
fn recorded(max: u32) -> TalkRules {
    TalkRules {
        music_on_hold: "moh".into(),
        max_call_duration: max,
        recording: Some("/rec/CV1.wav".into()),
        conference_profile: "voicepaas_quiet".into(),
    }
}

/// The backend outbound calls the property test draws from.
const INBOUNDS: [Recipe; 3] = [
    |s| inbound_call(Target::Queue("QU1".into()), TalkRules::default(), s),
    |s| inbound_call(Target::Agent("1001".into()), TalkRules::default(), s),
    |s| inbound_call(Target::Queue("QU1".into()), recorded(5), s),
];

fn party() -> AddParty {
    AddParty {
        to: "13800000003".into(),
        from: None,
        timeout: 30,
        greet: Some("g.wav".into()),
        fail_voice: Some("f.wav".into()),
        callee_voice: Some("cv.wav".into()),
        caller_voice: None,
        record: RecordMode::FromCalleeAnswer,
    }
}

/// A stored leg.
fn row(id: &str, to: &str, seq: LegIdx, state: &str) -> CallRecord {
    CallRecord {
        id: id.into(),
        to_number: to.into(),
        leg_seq: seq as i64,
        state: state.into(),
        node: Some(NODE.into()),
        ..CallRecord::default()
    }
}

/// The call's core from what is stored (as a takeover builds it).
fn core_with(stored: &Stored) -> Core {
    let legs = stored
        .rows
        .values()
        .map(|r| crate::orchestrator::unit::leg_of(r, 1_800_000_000_000))
        .collect();
    Core::new(
        "CV1".into(),
        legs,
        Limits::default(),
        Arc::new(IdGenerator::new(1)),
    )
}

/// A click-to-call plan with the given recording mode, maxDuration and prompts.
pub(super) fn plan(record: RecordMode, max: Option<u32>, ringback: bool, greet: bool) -> Plan {
    Plan {
        caller: Dial {
            to: "13800000001".into(),
            from: None,
            timeout_secs: 45,
            ignore_early_media: true,
            ..Dial::default()
        },
        callee: CalleePlan {
            to: "13800000002".into(),
            from: "13800000001".into(),
            greet: greet.then(|| "greet.wav".into()),
            ringback: ringback.then(|| "rb.wav".into()),
            fail_voice: "fail.wav".into(),
            callee_voice: Some("cv.wav".into()),
            caller_voice: Some("kv.wav".into()),
            record,
        },
        answer_timeout: 45,
        max_duration: max,
        last_minute: "last.wav".into(),
        recording_path: "/rec/CV1.wav".into(),
    }
}

/// The click-to-call variants the property test draws from.
const CLICK2CALLS: [Recipe; 6] = [
    |s| c2c(plan(RecordMode::Off, None, false, false), s),
    |s| c2c(plan(RecordMode::FromCalleeRinging, Some(70), true, true), s),
    |s| c2c(plan(RecordMode::FromCalleeAnswer, Some(5), false, true), s),
    |s| c2c(plan(RecordMode::FromCalleeAnswer, None, true, false), s),
    |s| c2c(plan(RecordMode::Off, Some(120), true, false), s),
    |s| c2c(plan(RecordMode::FromCalleeRinging, None, false, false), s),
];

fn c2c(plan: Plan, snapshot: Option<serde_json::Value>) -> Flow {
    Flow::Click2Call(Box::new(match snapshot {
        Some(s) => Click2CallFlow::resumed(plan, serde_json::from_value(s).ok()),
        None => Click2CallFlow::new(plan),
    }))
}

/// An agent's callOut with the given maxCallDuration and device.
fn agent_call(max: u32, phone_type: PhoneType, snapshot: Option<serde_json::Value>) -> Flow {
    let call = AgentCall {
        call_type: CallType::CallOut,
        agent_no: "1001".into(),
        agent_number: "80001001".into(),
        phone_type,
        user_number: "13800000002".into(),
        display_num: String::new(),
        caller_id: Some("01088880000".into()),
        agent_ring_timeout: 20,
        answer_timeout: 45,
        max_call_duration: max,
        wrapup_time: 0,
        masked: max > 0,
        record: max != 60,
    };
    let rules = match max {
        60 => TalkRules {
            max_call_duration: 60,
            ..TalkRules::default()
        },
        max => recorded(max),
    };
    let flow = AgentFlow::new(
        ConversationPlan::call_out(call, "f.wav".into()),
        rules,
        "u".into(),
    );
    Flow::Agent(Box::new(
        flow.resumed(snapshot.and_then(|s| serde_json::from_value(s).ok())),
    ))
}

/// The agent calls the property test draws from.
const AGENT_CALLS: [Recipe; 3] = [
    |s| agent_call(0, PhoneType::WebPhone, s),
    |s| agent_call(60, PhoneType::Sip, s),
    |s| agent_call(5, PhoneType::Pstn, s),
];

/// A notice of two items played `times` times; with `keys`, `#` finishes (then
/// `bye.wav`) and `1` repeats.
pub(super) fn notice_flow(times: u8, keys: bool) -> Flow {
    let items = vec![
        App::Say("zh NUMBER ITERATED 1".into()),
        App::Playback("a.wav".into()),
    ];
    let keys = Keys {
        finish: keys.then_some(DtmfKey::Key('#')),
        repeat: keys.then_some(DtmfKey::Key('1')),
        finishvoice: Some("bye.wav".into()),
    };
    let dial = Dial {
        to: "13800000001".into(),
        from: None,
        timeout_secs: 45,
        ignore_early_media: true,
        ..Dial::default()
    };
    Flow::Ivr(IvrFlow::new(
        IvrKind::Notice(keys),
        Script {
            items: Some(items),
            times,
        },
        dial,
    ))
}

/// The notice variants the property test draws from.
const NOTICES: [Recipe; 3] = [
    |_| notice_flow(1, false),
    |_| notice_flow(2, true),
    |_| notice_flow(3, true),
];

fn run(recipe: Recipe, choices: &[u16]) -> Result<(), String> {
    let mut sim = Sim::new(recipe);
    sim.feed(Input::Start);
    for &choice in choices {
        sim.happen(choice);
    }
    sim.drain();
    sim.check()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn click2call_ends_cleanly_whatever_happens(
        choices in proptest::collection::vec(any::<u16>(), 0..200),
        variant in 0usize..CLICK2CALLS.len(),
    ) {
        let result = run(CLICK2CALLS[variant], &choices);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn agent_call_ends_cleanly_whatever_happens(
        choices in proptest::collection::vec(any::<u16>(), 0..200),
        variant in 0usize..AGENT_CALLS.len(),
    ) {
        let result = run(AGENT_CALLS[variant], &choices);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn queued_call_ends_cleanly_whatever_happens(
        choices in proptest::collection::vec(any::<u16>(), 0..200),
        variant in 0usize..INBOUNDS.len(),
    ) {
        let result = run(INBOUNDS[variant], &choices);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    #[test]
    fn notice_ends_cleanly_whatever_happens(
        choices in proptest::collection::vec(any::<u16>(), 0..150),
        variant in 0usize..NOTICES.len(),
    ) {
        let result = run(NOTICES[variant], &choices);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

/// 5,000 fixed interleavings: each ends cleanly, and together they reach every byeType,
/// three-party calls, recordings and takeovers (so the random ones above are not just
/// short walks).
/// `runs` fixed interleavings (a xorshift from `seed`, up to 199 steps) of the recipes in
/// turn, each checked to end cleanly; `look` sees each finished simulation.
fn fixed_runs(recipes: &[Recipe], runs: usize, mut seed: u64, mut look: impl FnMut(&Sim)) {
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 16) as u16
    };
    for n in 0..runs {
        let choices: Vec<u16> = (0..(n % 200)).map(|_| next()).collect();
        let mut sim = Sim::new(recipes[n % recipes.len()]);
        sim.feed(Input::Start);
        for &c in &choices {
            sim.happen(c);
        }
        sim.drain();
        assert_eq!(sim.check(), Ok(()));
        look(&sim);
    }
}

#[test]
fn fixed_interleavings_reach_every_outcome() {
    let mut byes: BTreeMap<String, u32> = BTreeMap::new();
    let (mut three, mut recorded, mut taken) = (0, 0, 0);
    fixed_runs(&CLICK2CALLS, 5000, 12345, |sim| {
        let (legs, kind) = &sim.world.finishes[0];
        if let CdrKind::Click2Call { bye, recording_ms } = kind {
            *byes.entry(format!("{bye:?}")).or_default() += 1;
            recorded += u32::from(recording_ms.is_some());
        }
        three += u32::from(legs.len() >= 3);
        taken += u32::from(sim.generation > 0);
    });
    assert_eq!(byes.len(), 7, "{byes:?}");
    assert!(
        three >= 20 && recorded >= 20 && taken >= 200,
        "{three} {recorded} {taken}"
    );
}

/// 3,000 fixed interleavings of agent calls: each ends cleanly, and together they reach
/// every byeType and takeovers.
#[test]
fn agent_calls_reach_every_outcome() {
    let mut byes: BTreeMap<String, u32> = BTreeMap::new();
    let mut taken = 0;
    fixed_runs(&AGENT_CALLS, 3000, 54321, |sim| {
        if let CdrKind::Agent { bye, .. } = &sim.world.finishes[0].1 {
            *byes.entry(format!("{bye:?}")).or_default() += 1;
        }
        taken += u32::from(sim.generation > 0);
    });
    // 0–5, 6 (forceHangup), 9 (a transfer failed) and 10: every byeType of an agent's
    // callOut.
    for bye in [
        "FirstNoAnswer",
        "FirstHungUpDialing",
        "SecondNoAnswer",
        "UserHungUp",
        "AgentHungUp",
        "MaxDuration",
        "Forced",
        "TransferFailed",
        "MediaFailure",
    ] {
        assert!(byes.contains_key(bye), "{bye} never reached: {byes:?}");
    }
    assert!(taken >= 100, "{taken}");
}

/// A leg hung up by the channel's own time cap (ALLOTTED_TIMEOUT, with no maxDuration of
/// the customer's), whose node is then lost before its hangup completes, still ended the
/// call by maxDuration: byeType 5 and that leg's end agree (found by the property test).
#[test]
fn a_capped_leg_lost_before_its_hangup_completes_is_max_duration() {
    let result = run(
        CLICK2CALLS[3],
        &[29360, 22416, 22834, 19158, 41871, 15067, 5823],
    );
    assert!(result.is_ok(), "{}", result.unwrap_err());
}

/// 6,000 fixed interleavings of backend outbound calls with offers, transfers, consults,
/// conferences, holds and forced hangups: each ends cleanly, and together they reach
/// transfers that connect and that fail (byeType 9), consults, and takeovers.
#[test]
fn queued_calls_reach_every_outcome() {
    let mut byes: BTreeMap<String, u32> = BTreeMap::new();
    let (mut transferred, mut consulted, mut taken) = (0, 0, 0);
    fixed_runs(&INBOUNDS, 6000, 777, |sim| {
        if let CdrKind::Agent { bye, .. } = &sim.world.finishes[0].1 {
            *byes.entry(format!("{bye:?}")).or_default() += 1;
        }
        if let Flow::Agent(f) = &sim.engine.flow {
            transferred += u32::from(f.state().offers.iter().any(|o| o.left));
            consulted += u32::from(f.state().offers.iter().any(|o| o.consulted_from.is_some()));
        }
        taken += u32::from(sim.generation > 0);
    });
    for bye in [
        "UserHungUp",
        "AgentHungUp",
        "Forced",
        "Abandoned",
        "TransferFailed",
        "FirstNoAnswer",
    ] {
        assert!(byes.contains_key(bye), "{bye} never reached: {byes:?}");
    }
    assert!(
        transferred >= 20 && consulted >= 10 && taken >= 100,
        "{transferred} {consulted} {taken} {byes:?}"
    );
}

/// A supervisor's intercept of a ringing offer that it does not answer sends the caller
/// back to the head of its queue (agents' contract §7.2), with its join time kept; both
/// offers are over for the matchmaker.
#[test]
fn a_missed_intercept_puts_the_caller_at_the_head() {
    use crate::acd::dispatch::Place;
    use crate::orchestrator::flows::agent::QueueSignal;
    let mut sim = Sim::new(INBOUNDS[0]);
    sim.feed(Input::Start);
    sim.world.chans.entry(0).or_default().answered = true;
    sim.feed(Input::Media(0, MediaEvent::Answered { at: sim.now }));
    let Some(QueueSignal::Join {
        join_ms,
        place: Place::InTurn,
        ..
    }) = sim.world.signals.last().cloned()
    else {
        panic!("no join: {:?}", sim.world.signals);
    };
    sim.command(inbound_command(0, Some("1001".into())));
    sim.tick(500);
    let intercept = AgentOrder::Intercept(Interception {
        supervisor: "2001".into(),
        offer: Some(supervisor_offer()),
    });
    sim.command(Command::Agent("1001".into(), intercept));
    assert_eq!(sim.engine.core.legs.len(), 3, "{:?}", sim.world.violations);
    sim.hang_up(2, "NO_ANSWER", true);
    let n = sim.world.signals.len();
    assert!(n >= 5, "{:?}", sim.world.signals);
    assert_eq!(
        sim.world.signals[n - 4..],
        [
            QueueSignal::Missed("2001".into()),
            QueueSignal::Missed("1001".into()),
            QueueSignal::Leave,
            QueueSignal::Join {
                target: Target::Queue("QU1".into()),
                join_ms,
                place: Place::Head,
                join_type: crate::orchestrator::flows::agent::JoinType::Outbound,
                resumed: false,
            },
        ]
    );
}

//! Conversations step by step, checking exactly what the engine asks for at the moments
//! the contract cares about: recording (when it starts, a refused `uuid_record`, the
//! caller leaving a conference), maxDuration on every talking leg, and who hung up first.

use std::sync::Arc;

use super::*;
use crate::cdr::LegEnd;
use crate::domain::IdGenerator;
use crate::domain::click2call::RecordMode;
use crate::orchestrator::flows::click2call::{AddParty, Click2CallFlow};

const T0: i64 = 1_800_000_000_000;

struct Call {
    engine: Conversation,
    now: i64,
    effects: Vec<Effect>,
}

impl Call {
    fn new(record: RecordMode, max: Option<u32>) -> Self {
        let mut plan = super::tests::plan(record, max, false, false);
        plan.callee.callee_voice = None;
        plan.callee.caller_voice = None;
        let leg = Leg::new(
            "CA0".into(),
            "n1".into(),
            String::new(),
            "13800000001".into(),
            T0,
        );
        let core = Core::new(
            "CV1".into(),
            vec![leg],
            Limits::default(),
            Arc::new(IdGenerator::new(1)),
        );
        let engine = Conversation::new(core, Flow::Click2Call(Box::new(Click2CallFlow::new(plan))));
        let mut call = Call {
            engine,
            now: T0,
            effects: Vec::new(),
        };
        call.feed(Input::Start);
        call
    }

    fn feed(&mut self, input: Input) -> &[Effect] {
        self.effects = self.engine.step(self.now, input);
        &self.effects
    }

    fn at(&mut self, secs: i64) -> &mut Self {
        self.now = T0 + secs * 1000;
        self
    }

    fn event(&mut self, leg: LegIdx, event: MediaEvent) -> &[Effect] {
        self.feed(Input::Media(leg, event))
    }

    fn answer(&mut self, leg: LegIdx) -> &[Effect] {
        let at = self.now;
        self.event(leg, MediaEvent::Answered { at })
    }

    fn hang_up(&mut self, leg: LegIdx, cause: &str) -> Vec<Effect> {
        let at = self.now;
        let mut all = self
            .event(
                leg,
                MediaEvent::Hangup {
                    seq: at as u64,
                    cause: cause.into(),
                },
            )
            .to_vec();
        all.extend(
            self.event(
                leg,
                MediaEvent::HangupComplete {
                    at,
                    cause: cause.into(),
                    answered_at: None,
                    signalling: Default::default(),
                },
            )
            .to_vec(),
        );
        all
    }

    /// Caller and callee answered and bridged at 1 s and 3 s.
    fn bridged(record: RecordMode, max: Option<u32>) -> Self {
        let mut call = Call::new(record, max);
        call.at(1).answer(0);
        call.at(3).answer(1);
        call
    }

    fn media(effects: &[Effect]) -> Vec<(LegIdx, MediaCommand)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Media(leg, command, _) => Some((*leg, command.clone())),
                _ => None,
            })
            .collect()
    }

    fn record_token(effects: &[Effect]) -> Option<ReplyToken> {
        effects.iter().find_map(|e| match e {
            Effect::Media(_, MediaCommand::RecordStart(_), token) => *token,
            _ => None,
        })
    }

    fn finish(effects: &[Effect]) -> Option<(Vec<crate::cdr::LegFacts>, CdrKind)> {
        effects.iter().find_map(|e| match e {
            Effect::Journal(writes) => writes.iter().find_map(|w| match w {
                Write::Finish { legs, kind, .. } => Some((legs.clone(), kind.clone())),
                _ => None,
            }),
            _ => None,
        })
    }
}

#[test]
fn record_mode_1_starts_at_ringing_or_else_at_the_answer() {
    let mut call = Call::new(RecordMode::FromCalleeRinging, None);
    call.at(1).answer(0);
    let at = call.now;
    let ringing = call.event(1, MediaEvent::Progress { at }).to_vec();
    assert!(Call::record_token(&ringing).is_some(), "{ringing:?}");
    // A callee that answers without ringing or early media.
    let mut call = Call::new(RecordMode::FromCalleeRinging, None);
    call.at(1).answer(0);
    let answered = call.at(2).answer(1).to_vec();
    assert_eq!(
        Call::media(&answered).first(),
        Some(&(0, MediaCommand::RecordStart("/rec/CV1.wav".into())))
    );
}

#[test]
fn a_refused_recording_leaves_no_url() {
    let mut call = Call::new(RecordMode::FromCalleeAnswer, None);
    call.at(1).answer(0);
    let effects = call.at(2).answer(1).to_vec();
    let token = Call::record_token(&effects).expect("uuid_record asked");
    call.feed(Input::Reply(token, false));
    call.at(10).hang_up(0, "NORMAL_CLEARING");
    let effects = call.hang_up(1, "NORMAL_CLEARING");
    let (_, kind) = Call::finish(&effects).expect("the end");
    assert_eq!(
        kind,
        CdrKind::Click2Call {
            bye: ByeType::CallerHungUp,
            recording_ms: None
        }
    );
}

#[test]
fn max_duration_is_set_on_every_talking_leg_and_the_added_party() {
    let mut call = Call::new(RecordMode::Off, Some(120));
    call.at(1).answer(0);
    let effects = call.at(3).answer(1).to_vec();
    let media = Call::media(&effects);
    for leg in [0, 1] {
        assert!(
            media.contains(&(
                leg,
                MediaCommand::HangupAfter(120, "ALLOTTED_TIMEOUT".into())
            )),
            "{media:?}"
        );
        assert!(
            media.contains(&(
                leg,
                MediaCommand::BroadcastAfter(60, "last.wav".into(), Hears::This)
            )),
            "{media:?}"
        );
    }
    // A party added 30 s later gets what is left.
    call.at(33)
        .feed(Input::Command(1, Command::AddCall(Box::new(party()))));
    let effects = call.at(35).answer(2).to_vec();
    let media = Call::media(&effects);
    assert!(
        media.contains(&(0, MediaCommand::BothToConference("CV1@default".into()))),
        "{media:?}"
    );
    assert!(
        media.contains(&(2, MediaCommand::HangupAfter(88, "ALLOTTED_TIMEOUT".into()))),
        "{media:?}"
    );
    assert!(
        media.contains(&(
            2,
            MediaCommand::BroadcastAfter(28, "last.wav".into(), Hears::This)
        )),
        "{media:?}"
    );
}

fn party() -> AddParty {
    AddParty {
        to: "13800000003".into(),
        from: None,
        timeout: 30,
        greet: None,
        fail_voice: None,
        callee_voice: None,
        caller_voice: None,
        record: RecordMode::Off,
    }
}

#[test]
fn the_caller_leaving_a_conference_keeps_the_recording_and_the_call() {
    let mut call = Call::bridged(RecordMode::FromCalleeAnswer, Some(600));
    call.feed(Input::Reply(1, true));
    call.at(10)
        .feed(Input::Command(1, Command::AddCall(Box::new(party()))));
    call.at(12).answer(2);
    // The caller leaves at 20 s: the others go on, the recording moves to the callee.
    let effects = call.at(20).hang_up(0, "NORMAL_CLEARING");
    let media = Call::media(&effects);
    assert!(
        media.contains(&(
            1,
            MediaCommand::SetVar("RECORD_APPEND".into(), "true".into())
        )),
        "{media:?}"
    );
    assert!(
        media.contains(&(1, MediaCommand::RecordStart("/rec/CV1.wav".into()))),
        "{media:?}"
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Media(_, MediaCommand::Kill(_), _))),
        "{effects:?}"
    );
    let token = Call::record_token(&effects).expect("recording moved");
    call.feed(Input::Reply(token, true));
    // The original callee hangs up at 50 s: everyone's call ends (byeType 4).
    let mut effects = call.at(50).hang_up(1, "NORMAL_CLEARING");
    effects.extend(call.hang_up(2, "NORMAL_CLEARING"));
    let (legs, kind) = Call::finish(&effects).expect("the end");
    assert_eq!(
        kind,
        CdrKind::Click2Call {
            bye: ByeType::CalleeHungUp,
            // From the callee's answer (3 s) to the end (50 s), across the move.
            recording_ms: Some(47_000)
        }
    );
    assert_eq!(
        legs.iter().map(|l| l.end).collect::<Vec<_>>(),
        vec![LegEnd::Completed; 3]
    );
}

#[test]
fn who_hung_up_first_decides() {
    // The caller first: the callee's own hangup that follows changes nothing.
    let mut call = Call::bridged(RecordMode::Off, None);
    call.at(9).hang_up(0, "NORMAL_CLEARING");
    let effects = call.hang_up(1, "NORMAL_CLEARING");
    assert_eq!(
        Call::finish(&effects).map(|f| f.1),
        Some(CdrKind::Click2Call {
            bye: ByeType::CallerHungUp,
            recording_ms: None
        })
    );
    // maxDuration's cut: every talking leg `time-out`.
    let mut call = Call::bridged(RecordMode::Off, Some(5));
    call.at(8).hang_up(1, "ALLOTTED_TIMEOUT");
    let effects = call.hang_up(0, "NORMAL_CLEARING");
    let (legs, kind) = Call::finish(&effects).expect("the end");
    assert_eq!(
        kind,
        CdrKind::Click2Call {
            bye: ByeType::MaxDuration,
            recording_ms: None
        }
    );
    assert_eq!(
        legs.iter().map(|l| l.end).collect::<Vec<_>>(),
        vec![LegEnd::MaxDuration; 2]
    );
    // An operator's MANAGER_REQUEST is a cancel.
    let mut call = Call::bridged(RecordMode::Off, None);
    call.at(8).hang_up(0, "MANAGER_REQUEST");
    let effects = call.hang_up(1, "NORMAL_CLEARING");
    assert_eq!(
        Call::finish(&effects).map(|f| f.1),
        Some(CdrKind::Click2Call {
            bye: ByeType::Canceled,
            recording_ms: None
        })
    );
}

#[test]
fn a_command_after_the_end_is_refused() {
    let mut call = Call::bridged(RecordMode::Off, None);
    call.at(9).hang_up(0, "NORMAL_CLEARING");
    call.hang_up(1, "NORMAL_CLEARING");
    assert!(call.engine.is_finished());
    let effects = call.feed(Input::Command(7, Command::Cancel)).to_vec();
    assert_eq!(
        effects,
        vec![Effect::Reply(7, Err(Refusal::State(ENDED.into())))]
    );
}

//! Conversations step by step, checking exactly what the engine asks for at the moments
//! the contract cares about: recording (when it starts, a refused `uuid_record`, the
//! caller leaving a conference), maxDuration on every talking leg, who hung up first, and
//! a notice's script (queued on the channel at once, keys dropping what is left).

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
    /// The timers set and not cancelled, and when they fire.
    timers: std::collections::BTreeMap<Timer, i64>,
}

impl Call {
    fn new(record: RecordMode, max: Option<u32>) -> Self {
        let mut plan = super::tests::plan(record, max, false, false);
        plan.callee.callee_voice = None;
        plan.callee.caller_voice = None;
        Call::start(Flow::Click2Call(Box::new(Click2CallFlow::new(plan))))
    }

    /// `flow` started, its first leg dialled at T0.
    fn start(flow: Flow) -> Self {
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
        let engine = Conversation::new(core, flow);
        let mut call = Call {
            engine,
            now: T0,
            effects: Vec::new(),
            timers: Default::default(),
        };
        call.feed(Input::Start);
        call
    }

    fn feed(&mut self, input: Input) -> &[Effect] {
        self.effects = self.engine.step(self.now, input);
        for effect in &self.effects {
            match effect {
                Effect::SetTimer(timer, ms) => {
                    self.timers.insert(*timer, self.now + ms);
                }
                Effect::CancelTimer(timer) => {
                    self.timers.remove(timer);
                }
                _ => {}
            }
        }
        &self.effects
    }

    /// Fires every timer due by now; returns what they caused.
    fn fire_due(&mut self) -> Vec<Effect> {
        let mut all = Vec::new();
        while let Some((&timer, _)) = self.timers.iter().find(|(_, at)| **at <= self.now) {
            self.timers.remove(&timer);
            all.extend(self.feed(Input::Timer(timer)).to_vec());
        }
        all
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

/// A notice: its passes' items as `(run, app)`, in the order sent, from `effects`.
fn executes(effects: &[Effect]) -> Vec<(u32, App)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Execute { leg: 0, app, run } => Some((*run, app.clone())),
            _ => None,
        })
        .collect()
}

/// The runs whose watchdog `effects` set.
fn watched(effects: &[Effect]) -> Vec<u32> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer(Timer::AppWatchdog(run), _) => Some(*run),
            _ => None,
        })
        .collect()
}

fn kills(effects: &[Effect]) -> usize {
    Call::media(effects)
        .iter()
        .filter(|(_, c)| matches!(c, MediaCommand::Kill(_)))
        .count()
}

fn done(call: &mut Call, run: u32) -> Vec<Effect> {
    call.event(0, MediaEvent::AppDone { run: Some(run) })
        .to_vec()
}

#[test]
fn a_notice_queues_its_whole_script_at_the_answer() {
    let mut call = Call::start(super::tests::notice_flow(2, false));
    let answered = call.at(2).answer(0).to_vec();
    let say = App::Say("zh NUMBER ITERATED 1".into());
    let play = App::Playback("a.wav".into());
    assert_eq!(
        executes(&answered),
        [(1, say.clone()), (2, play.clone()), (3, say), (4, play)]
    );
    // One watchdog, on the run playing; it moves on as runs end.
    assert_eq!(watched(&answered), [1]);
    for run in 1..4 {
        let effects = done(&mut call, run);
        assert_eq!(watched(&effects), [run + 1]);
        assert!(executes(&effects).is_empty() && kills(&effects) == 0);
    }
    assert_eq!(kills(&done(&mut call, 4)), 1);
}

#[test]
fn the_repeat_key_drops_the_rest_and_queues_the_pass_playing_again() {
    let mut call = Call::start(super::tests::notice_flow(2, true));
    call.at(2).answer(0);
    done(&mut call, 1);
    done(&mut call, 2);
    // Run 3 (the second pass's first item) plays: the key restarts the second pass.
    let key = call.at(5).event(0, MediaEvent::Dtmf('1')).to_vec();
    assert_eq!(Call::media(&key), [(0, MediaCommand::BreakAll)]);
    assert_eq!(
        executes(&key).iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [5, 6]
    );
    // Run 3 ends broken; run 4 was dropped (never reported); the new ones play.
    let broken = done(&mut call, 3);
    assert_eq!(watched(&broken), [5]);
    assert_eq!(kills(&broken), 0);
    assert!(done(&mut call, 4).is_empty(), "a dropped run is unknown");
    assert_eq!(kills(&done(&mut call, 5)), 0);
    assert_eq!(kills(&done(&mut call, 6)), 1);
}

#[test]
fn the_finish_key_plays_finishvoice_then_hangs_up() {
    let mut call = Call::start(super::tests::notice_flow(3, true));
    call.at(2).answer(0);
    let key = call.at(3).event(0, MediaEvent::Dtmf('#')).to_vec();
    assert_eq!(Call::media(&key), [(0, MediaCommand::BreakAll)]);
    assert_eq!(executes(&key), [(7, App::Playback("bye.wav".into()))]);
    // The broken run's end is not the script's end.
    assert_eq!(kills(&done(&mut call, 1)), 0);
    // Keys during finishvoice only count as the last key.
    assert!(Call::media(call.event(0, MediaEvent::Dtmf('1'))).is_empty());
    let end = done(&mut call, 7);
    assert_eq!(kills(&end), 1);
    call.hang_up(0, "NORMAL_CLEARING");
    let cdr = Call::finish(&call.effects).map(|(_, kind)| kind);
    assert_eq!(
        cdr,
        Some(CdrKind::Notice {
            inputkey: Some('1')
        })
    );
}

#[test]
fn a_long_conversation_is_not_taken_for_a_stuck_application() {
    // The caller's channel runs `bridge` for as long as the two talk: no watchdog may
    // end a conversation of hours (maxDuration and the channel's ceiling bound it).
    let mut call = Call::bridged(RecordMode::Off, None);
    let hours = call.at(3 * 3600).fire_due();
    assert!(Call::media(&hours).is_empty(), "{hours:?}");
    assert!(Call::finish(&hours).is_none());
}

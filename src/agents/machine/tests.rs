use proptest::prelude::*;

use super::*;

const T0: i64 = 1_000_000;

fn login(choice: Choice) -> Input {
    Input::Login {
        phone_type: PhoneType::WebPhone,
        choice,
        socketless: false,
    }
}

fn pause(cause: &str) -> Choice {
    Choice::Pause {
        cause: cause.into(),
    }
}

/// An event as (name, workStatus, pauseCause, readyCause).
type Seen = (String, String, String, String);

/// Runs `inputs` from offline at `T0`, one second apart; every event's name, workStatus,
/// pauseCause and readyCause.
fn run(inputs: Vec<Input>) -> (Option<Session>, Vec<Seen>) {
    let mut session = None;
    let mut seen = vec![];
    for (i, input) in inputs.into_iter().enumerate() {
        let out = step(session, input, T0 + i as i64 * 1000);
        session = out.session;
        seen.extend(out.events.into_iter().map(|e| {
            (
                e.name.as_str().to_string(),
                e.work_status.to_string(),
                e.pause_cause,
                e.ready_cause.to_string(),
            )
        }));
    }
    (session, seen)
}

fn ev(name: &str, work: &str, pause: &str, ready: &str) -> Seen {
    (name.into(), work.into(), pause.into(), ready.into())
}

#[test]
fn the_allowed_commands_table() {
    use AgentState::*;
    // Columns: offline, ready, pause, ringing, talking, wrapup (§6), `.` allowed,
    // `o` 20103, `x` 20104.
    let table = [
        ("login", "...xx."),
        ("logout", "o..xx."),
        ("ready", "o....."),
        ("pause", "o....."),
        ("callOut", "o..xx."),
        ("answer", "oxx.xx"),
        ("bridge", "oxx.xx"),
        ("hangup", "oxx..x"),
        ("setUserData", "oxx..x"),
        ("holdCall", "oxxx.x"),
        ("retrieveCall", "oxxx.x"),
        ("transfer", "oxxx.x"),
        ("consult", "oxxx.x"),
        ("consultTransfer", "oxxx.x"),
        ("consultConference", "oxxx.x"),
        ("cancelConsult", "oxxx.x"),
        ("sendDtmf", "oxxx.x"),
        ("monitor", "o..x.."),
        ("whisper", "o..x.."),
        ("barge", "o..x.."),
        ("intercept", "o..x.."),
        ("forceHangup", "......"),
        ("forceReady", "......"),
        ("forcePause", "......"),
        ("forceLogout", "......"),
        ("monitorQueues", "......"),
        ("unmonitorQueues", "......"),
        ("getState", "......"),
        ("ping", "......"),
    ];
    assert_eq!(table.len(), CommandName::ALL.len());
    for (name, cells) in table {
        let command = CommandName::from_wire(name).unwrap();
        for (state, cell) in [Offline, Ready, Pause, Ringing, Talking, Wrapup]
            .into_iter()
            .zip(cells.chars())
        {
            let expected = match cell {
                '.' => Ok(()),
                'o' => Err(TableRefusal::NotLoggedIn),
                _ => Err(TableRefusal::NotInThisState),
            };
            assert_eq!(check(command, state), expected, "{name} in {state:?}");
        }
    }
    assert_eq!(CommandName::from_wire("Login"), None);
}

#[test]
fn login_ready_pause_logout() {
    let (session, events) = run(vec![
        login(Choice::Ready),
        Input::Pause {
            cause: "小休".into(),
            forced_by: String::new(),
        },
        Input::Ready {
            forced_by: String::new(),
        },
        login(pause("培训")),
        Input::Logout {
            cause: LogoutCause::Own,
            forced_by: String::new(),
        },
    ]);
    assert_eq!(session, None);
    assert_eq!(
        events,
        [
            ev("login", "ready", "", ""),
            ev("pause", "pause", "小休", ""),
            ev("ready", "ready", "", ""),
            ev("login", "pause", "培训", ""),
            ev("logout", "offline", "", ""),
        ]
    );
}

#[test]
fn a_connected_call_has_wrapup_then_the_chosen_state() {
    let (session, events) = run(vec![
        login(Choice::Ready),
        Input::CallStarted,
        Input::CallConnected,
        Input::CallEnded {
            connected: true,
            wrapup_time: 15,
        },
    ]);
    let s = session.unwrap();
    assert_eq!(s.state, AgentState::Wrapup);
    assert_eq!(s.wrapup_until, Some(T0 + 3000 + 15_000));
    assert_eq!(
        events.last().unwrap(),
        &ev("completed", "pause", "wrapup", "")
    );
    // Not yet due: nothing; due: autoReady.
    let early = step(Some(s.clone()), Input::Due, T0 + 3000 + 14_999);
    assert!(early.events.is_empty());
    let out = step(Some(s), Input::Due, T0 + 3000 + 15_000);
    assert_eq!(out.session.unwrap().state, AgentState::Ready);
    assert_eq!(out.events[0].name, StatusName::AutoReady);
    assert_eq!(out.events[0].ready_cause, "wrapup");
}

#[test]
fn wrapup_zero_sends_the_pair_and_pause_chosen_in_a_call_holds() {
    let (session, events) = run(vec![
        login(Choice::Ready),
        Input::CallStarted,
        Input::CallConnected,
        Input::Pause {
            cause: "lunch".into(),
            forced_by: String::new(),
        },
        Input::CallEnded {
            connected: true,
            wrapup_time: 0,
        },
    ]);
    assert_eq!(session.unwrap().state, AgentState::Pause);
    assert_eq!(
        events,
        [
            ev("login", "ready", "", ""),
            ev("pause", "pause", "lunch", ""),
            ev("completed", "pause", "wrapup", ""),
            ev("pause", "pause", "lunch", ""),
        ]
    );
}

#[test]
fn a_call_that_never_connected_has_no_wrapup_and_no_event() {
    let (session, events) = run(vec![
        login(pause("x")),
        Input::CallStarted,
        Input::CallEnded {
            connected: false,
            wrapup_time: 15,
        },
    ]);
    assert_eq!(session.unwrap().state, AgentState::Pause);
    assert_eq!(events.len(), 1);
}

/// A ready agent's call connects, and supervisor 2001 forces its logout.
fn forced_logout_in_a_call() -> Vec<Input> {
    vec![
        login(Choice::Ready),
        Input::CallStarted,
        Input::CallConnected,
        Input::Logout {
            cause: LogoutCause::Forced,
            forced_by: "2001".into(),
        },
    ]
}

#[test]
fn logout_in_a_call_waits_for_its_end_without_wrapup() {
    let mut inputs = forced_logout_in_a_call();
    inputs.push(Input::CallEnded {
        connected: true,
        wrapup_time: 15,
    });
    let (session, events) = run(inputs);
    assert_eq!(session, None);
    assert_eq!(events.last().unwrap(), &ev("logout", "offline", "", ""));
    assert_eq!(events.len(), 2);
}

#[test]
fn a_forced_logout_that_waited_for_the_call_names_its_supervisor() {
    let mut session = None;
    for input in forced_logout_in_a_call() {
        let out = step(session, input, T0);
        assert!(out.events.len() <= 1);
        session = out.session;
    }
    // Stored and read back between the two steps, as the database holds it.
    let stored = serde_json::to_string(&session).unwrap();
    let session: Option<Session> = serde_json::from_str(&stored).unwrap();
    let ended = Input::CallEnded {
        connected: true,
        wrapup_time: 15,
    };
    let out = step(session, ended, T0 + 1000);
    assert_eq!(out.session, None);
    let logout = &out.events[0];
    assert_eq!(
        (
            logout.name.as_str(),
            logout.logout_cause,
            logout.forced_by.as_str()
        ),
        ("logout", "forced", "2001")
    );
}

#[test]
fn a_lost_socket_logs_out_after_the_grace_unless_socketless() {
    let s = step(None, login(Choice::Ready), T0).session;
    let gone = step(s.clone(), Input::SocketGone { grace_ms: 60_000 }, T0).session;
    assert!(
        step(gone.clone(), Input::Due, T0 + 59_999)
            .session
            .is_some()
    );
    let out = step(gone.clone(), Input::Due, T0 + 60_000);
    assert_eq!(out.session, None);
    assert_eq!(out.events[0].logout_cause, "disconnected");
    // Back in time: no logout.
    let back = step(gone, Input::SocketBack, T0 + 1000).session;
    assert!(step(back, Input::Due, T0 + 60_000).session.is_some());
    // A socketless session has no grace rule until a socket attaches.
    let socketless = step(
        None,
        Input::Login {
            phone_type: PhoneType::Pstn,
            choice: Choice::Ready,
            socketless: true,
        },
        T0,
    )
    .session;
    let gone = step(socketless.clone(), Input::SocketGone { grace_ms: 1 }, T0).session;
    assert_eq!(gone.as_ref().unwrap().grace_until, None);
    let back = step(socketless, Input::SocketBack, T0).session;
    let gone = step(back, Input::SocketGone { grace_ms: 1 }, T0).session;
    assert_eq!(gone.unwrap().grace_until, Some(T0 + 1));
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        prop_oneof![Just(Choice::Ready), Just(pause("p"))].prop_map(login),
        Just(Input::Logout {
            cause: LogoutCause::Own,
            forced_by: String::new()
        }),
        Just(Input::Ready {
            forced_by: String::new()
        }),
        Just(Input::Pause {
            cause: "p".into(),
            forced_by: String::new()
        }),
        Just(Input::CallStarted),
        Just(Input::CallConnected),
        (any::<bool>(), 0i64..3).prop_map(|(connected, wrapup_time)| Input::CallEnded {
            connected,
            wrapup_time
        }),
        Just(Input::Due),
        (0i64..3000).prop_map(|grace_ms| Input::SocketGone { grace_ms }),
        Just(Input::SocketBack),
    ]
}

proptest! {
    /// Over any interleaving (commands only where §6 allows them): a session is never
    /// offline inside, wrapup has a deadline exactly while in wrapup, a pending logout
    /// exists only during a call, `logout` is the only event that ends a session, and
    /// every `completed` is followed (now or at its deadline) by autoReady or pause.
    #[test]
    fn invariants_hold_over_random_interleavings(inputs in proptest::collection::vec((any_input(), 0i64..2500), 1..60)) {
        let mut session: Option<Session> = None;
        let mut now = T0;
        let mut awaiting_after_wrapup = false;
        for (input, gap) in inputs {
            now += gap;
            let state = session.as_ref().map_or(AgentState::Offline, |s| s.state);
            let command = match &input {
                Input::Login { .. } => Some(CommandName::Login),
                Input::Logout { .. } => Some(CommandName::Logout),
                Input::Ready { .. } => Some(CommandName::Ready),
                Input::Pause { .. } => Some(CommandName::Pause),
                Input::CallStarted => Some(CommandName::CallOut),
                _ => None,
            };
            if command.is_some_and(|c| check(c, state).is_err()) {
                continue;
            }
            if matches!(input, Input::CallConnected) && state != AgentState::Ringing {
                continue;
            }
            if matches!(input, Input::CallStarted) {
                awaiting_after_wrapup = false;
            }
            let had_session = session.is_some();
            let out = step(session, input, now);
            for e in &out.events {
                if e.name == StatusName::Completed {
                    awaiting_after_wrapup = true;
                } else if matches!(e.name, StatusName::AutoReady | StatusName::Pause | StatusName::Logout | StatusName::Ready | StatusName::Login) {
                    awaiting_after_wrapup = false;
                }
            }
            if had_session && out.session.is_none() {
                prop_assert_eq!(out.events.last().map(|e| e.name), Some(StatusName::Logout));
            }
            if let Some(s) = &out.session {
                prop_assert_ne!(s.state, AgentState::Offline);
                prop_assert_eq!(s.wrapup_until.is_some(), s.state == AgentState::Wrapup);
                if s.pending_logout.is_some() {
                    prop_assert!(s.in_call());
                }
                if awaiting_after_wrapup {
                    prop_assert_eq!(s.state, AgentState::Wrapup);
                }
            }
            session = out.session;
        }
    }
}

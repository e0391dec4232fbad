use proptest::prelude::*;

use super::*;
use crate::domain::queue::Strategy;
use proptest::strategy::Strategy as _;

fn rules(queue: &str, strategy: Strategy) -> Input {
    Input::Rules {
        queue: queue.into(),
        strategy,
    }
}

fn join(caller: &str, queue: &str, join_ms: i64) -> Input {
    Input::Join {
        caller: caller.into(),
        queue: queue.into(),
        join_ms,
        place: Place::InTurn,
        last_agent: None,
    }
}

fn ready(agent: &str, idle_since_ms: i64, queues: &[(&str, u8)]) -> Input {
    Input::Available {
        agent: agent.into(),
        idle_since_ms,
        queues: queues.iter().map(|(q, s)| (q.to_string(), *s)).collect(),
    }
}

fn offer(caller: &str, queue: &str, agent: &str) -> Effect {
    Effect::Offer {
        caller: caller.into(),
        queue: queue.into(),
        agent: agent.into(),
    }
}

fn withdraw(caller: &str, agent: &str) -> Effect {
    Effect::Withdraw {
        caller: caller.into(),
        agent: agent.into(),
    }
}

#[test]
fn callers_are_served_by_join_time_to_the_longest_idle() {
    let mut acd = Acd::default();
    acd.step(rules("Q", Strategy::LongestIdle));
    assert!(acd.step(join("late", "Q", 200)).is_empty());
    assert!(acd.step(join("early", "Q", 100)).is_empty());
    assert_eq!(acd.position("early"), Some(1));
    assert_eq!(acd.position("late"), Some(2));
    assert_eq!(
        acd.step(ready("b", 50, &[("Q", 5)])),
        [offer("early", "Q", "b")]
    );
    assert_eq!(
        acd.step(ready("a", 10, &[("Q", 5)])),
        [offer("late", "Q", "a")]
    );
    // A missed offer puts the caller back in its place; the agent is out.
    assert!(
        acd.step(Input::Missed {
            caller: "early".into(),
            agent: "b".into()
        })
        .is_empty()
    );
    assert_eq!(acd.waiting("Q")[0].caller, "early");
    assert_eq!(
        acd.step(ready("c", 70, &[("Q", 5)])),
        [offer("early", "Q", "c")]
    );
    assert_eq!(
        acd.step(Input::Answered {
            caller: "early".into(),
            agent: "c".into()
        }),
        []
    );
    assert_eq!(acd.position("late"), Some(1));
}

#[test]
fn several_free_agents_are_chosen_by_the_strategy() {
    for (strategy, expected) in [
        (Strategy::LongestIdle, "idle"),
        (Strategy::SkillThenLongestIdle, "skilled"),
        (Strategy::RoundRobin, "idle"),
    ] {
        let mut acd = Acd::default();
        acd.step(rules("Q", strategy));
        acd.step(ready("skilled", 500, &[("Q", 9)]));
        acd.step(ready("idle", 100, &[("Q", 2)]));
        acd.step(ready("zz", 900, &[("Q", 2)]));
        assert_eq!(
            acd.step(join("c1", "Q", 1000)),
            [offer("c1", "Q", expected)],
            "{strategy:?}"
        );
    }
    // Round-robin starts after the last agent offered in the queue.
    let mut acd = Acd::default();
    acd.step(rules("Q", Strategy::RoundRobin));
    acd.step(ready("1001", 0, &[("Q", 5)]));
    acd.step(ready("1002", 0, &[("Q", 5)]));
    acd.step(ready("1003", 0, &[("Q", 5)]));
    assert_eq!(acd.step(join("c1", "Q", 1)), [offer("c1", "Q", "1001")]);
    assert_eq!(acd.step(join("c2", "Q", 2)), [offer("c2", "Q", "1002")]);
    acd.step(Input::Answered {
        caller: "c1".into(),
        agent: "1001".into(),
    });
    acd.step(ready("1001", 5, &[("Q", 5)]));
    assert_eq!(acd.step(join("c3", "Q", 3)), [offer("c3", "Q", "1003")]);
    acd.step(Input::Answered {
        caller: "c3".into(),
        agent: "1003".into(),
    });
    assert_eq!(
        acd.step(join("c4", "Q", 4)),
        [offer("c4", "Q", "1001")],
        "wraps around"
    );
}

#[test]
fn ring_all_rings_every_free_member_and_the_first_answer_wins() {
    let mut acd = Acd::default();
    acd.step(rules("Q", Strategy::RingAll));
    for a in ["a", "b", "c"] {
        acd.step(ready(a, 0, &[("Q", 5)]));
    }
    let offers = acd.step(join("c1", "Q", 1));
    assert_eq!(offers.len(), 3);
    assert_eq!(acd.waiting("Q")[0].ringing.len(), 3);
    // A second caller waits: every member is ringing for the first.
    assert!(acd.step(join("c2", "Q", 2)).is_empty());
    let out = acd.step(Input::Answered {
        caller: "c1".into(),
        agent: "b".into(),
    });
    // The losers are withdrawn, then ring at once for the next caller.
    assert_eq!(
        out,
        [
            withdraw("c1", "a"),
            withdraw("c1", "c"),
            offer("c2", "Q", "a"),
            offer("c2", "Q", "c")
        ]
    );
}

#[test]
fn last_agent_first_member_or_not_else_normal_routing() {
    let mut acd = Acd::default();
    acd.step(rules("Q", Strategy::LongestIdle));
    acd.step(ready("member", 0, &[("Q", 5)]));
    acd.step(ready("outsider", 10, &[]));
    let with_last = |caller: &str, last: &str| Input::Join {
        caller: caller.into(),
        queue: "Q".into(),
        join_ms: 1,
        place: Place::InTurn,
        last_agent: Some(last.into()),
    };
    assert_eq!(
        acd.step(with_last("c1", "outsider")),
        [offer("c1", "Q", "outsider")]
    );
    // The last agent busy: normal routing at once.
    assert_eq!(
        acd.step(with_last("c2", "outsider")),
        [offer("c2", "Q", "member")]
    );
    // Missed by the last agent: back to normal routing, which waits for a member.
    assert!(
        acd.step(Input::Missed {
            caller: "c1".into(),
            agent: "outsider".into()
        })
        .is_empty()
    );
    acd.step(ready("outsider", 20, &[]));
    assert!(
        acd.step(Input::Leave {
            caller: "c2".into()
        }) == [withdraw("c2", "member"), offer("c1", "Q", "member")]
    );
}

#[test]
fn head_callers_go_first_and_agents_take_the_longest_waiting_across_queues() {
    let mut acd = Acd::default();
    acd.step(rules("A", Strategy::LongestIdle));
    acd.step(rules("B", Strategy::LongestIdle));
    acd.step(join("a1", "A", 300));
    acd.step(join("b1", "B", 200));
    acd.step(Input::Join {
        caller: "back".into(),
        queue: "A".into(),
        join_ms: 900,
        place: Place::Head,
        last_agent: None,
    });
    assert_eq!(acd.position("back"), Some(1));
    assert_eq!(
        acd.step(ready("x", 0, &[("A", 5), ("B", 5)])),
        [offer("back", "A", "x")]
    );
    assert_eq!(
        acd.step(ready("y", 0, &[("A", 5), ("B", 5)])),
        [offer("b1", "B", "y")]
    );
    // A caller leaving while its offer rings withdraws it; the agent serves the next.
    assert_eq!(
        acd.step(Input::Leave {
            caller: "back".into()
        }),
        [withdraw("back", "x"), offer("a1", "A", "x")]
    );
}

/// The inputs of the property test: small sets so that they collide.
fn any_input() -> impl proptest::strategy::Strategy<Value = Input> {
    let caller = (0..6u8).prop_map(|c| format!("c{c}"));
    let agent = (0..4u8).prop_map(|a| format!("a{a}"));
    let queue = (0..3u8).prop_map(|q| format!("q{q}"));
    let strategy = prop_oneof![
        Just(Strategy::LongestIdle),
        Just(Strategy::RoundRobin),
        Just(Strategy::RingAll),
        Just(Strategy::SkillThenLongestIdle),
    ];
    let memberships =
        proptest::collection::vec(((0..3u8).prop_map(|q| format!("q{q}")), 1..=10u8), 0..3);
    prop_oneof![
        (queue.clone(), strategy).prop_map(|(queue, strategy)| Input::Rules { queue, strategy }),
        (
            caller.clone(),
            queue,
            0..100i64,
            any::<bool>(),
            proptest::option::of(agent.clone())
        )
            .prop_map(|(caller, queue, join_ms, head, last_agent)| Input::Join {
                caller,
                queue,
                join_ms,
                place: if head { Place::Head } else { Place::InTurn },
                last_agent,
            }),
        caller.clone().prop_map(|caller| Input::Leave { caller }),
        (agent.clone(), 0..100i64, memberships).prop_map(|(agent, idle_since_ms, queues)| {
            Input::Available {
                agent,
                idle_since_ms,
                queues,
            }
        }),
        agent.clone().prop_map(|agent| Input::Unavailable { agent }),
        (caller.clone(), agent.clone())
            .prop_map(|(caller, agent)| Input::Answered { caller, agent }),
        (caller, agent).prop_map(|(caller, agent)| Input::Missed { caller, agent }),
    ]
}

fn check(acd: &Acd, before: &Acd, input: &Input, effects: &[Effect]) -> Result<(), TestCaseError> {
    for (agent, slot) in &acd.agents {
        if let Some(caller) = &slot.ringing {
            prop_assert!(
                acd.callers
                    .get(caller)
                    .is_some_and(|w| w.offered_to.contains(agent)),
                "{agent} rings {caller}, which does not know it"
            );
        }
    }
    for (caller, waiting) in &acd.callers {
        let strategy = acd.lines[&waiting.queue].strategy;
        // Offers rung under ring-all may outlive a change of strategy; no other way
        // gives a caller a second offer.
        let had = before.callers.get(caller).map_or(0, |w| w.offered_to.len());
        if strategy != Strategy::RingAll && waiting.offered_to.len() > had {
            prop_assert!(waiting.offered_to.len() <= 1, "{caller} has several offers");
        }
        for agent in &waiting.offered_to {
            prop_assert_eq!(
                acd.agents[agent].ringing.as_ref(),
                Some(caller),
                "one offer per agent"
            );
        }
    }
    for (queue, line) in &acd.lines {
        if acd.first_unoffered(line).is_some() {
            // Every agent looked at, not the matchmaker's index of members.
            let free_member = acd
                .agents
                .values()
                .any(|slot| slot.free() && slot.queues.iter().any(|(q, _)| q == queue));
            prop_assert!(
                !free_member,
                "a free member of {} idles while a caller waits",
                queue
            );
        }
    }
    for effect in effects {
        if let Effect::Offer {
            caller,
            queue,
            agent,
        } = effect
        {
            let slot = &acd.agents[agent];
            let member = slot.queues.iter().any(|(q, _)| q == queue);
            let last = matches!(input, Input::Join { caller: c, last_agent: Some(a), .. } if c == caller && a == agent);
            prop_assert!(
                member || last,
                "{agent} offered {caller} without being a member"
            );
            prop_assert!(slot.eligible, "{agent} offered while not eligible");
            let was_ringing = before.agents.get(agent).and_then(|s| s.ringing.clone());
            let withdrawn = effects
                .iter()
                .any(|e| matches!(e, Effect::Withdraw { agent: a, .. } if a == agent));
            let missed = matches!(input, Input::Missed { agent: a, .. } if a == agent);
            prop_assert!(
                was_ringing.is_none() || withdrawn || missed,
                "{agent} offered while ringing"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Whatever happens in whatever order, every offer is to a free agent of the queue
    /// (or the caller's last agent), one per agent and (but ring-all) one per caller, and
    /// no free member is left idle while a caller of its queue waits without an offer.
    #[test]
    fn offers_stay_consistent_over_random_interleavings(inputs in proptest::collection::vec(any_input(), 1..80)) {
        let mut acd = Acd::default();
        for input in inputs {
            let before = acd.clone();
            let effects = acd.step(input.clone());
            check(&acd, &before, &input, &effects)?;
        }
    }
}

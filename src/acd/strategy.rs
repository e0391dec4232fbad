//! Who gets a waiting caller's offer (agents' contract §9): each strategy as a pure
//! choice over the eligible agents.

use std::cmp::Ordering;

use crate::domain::queue::Strategy;

/// An agent that may take an offer now (a member, logged in, ready, no call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The agent.
    pub agent_no: &'a str,
    /// Its skill level in the queue (1–10, 10 best).
    pub skill_level: u8,
    /// Since when it is idle (its last call ended or it became ready), Unix ms.
    pub idle_since_ms: i64,
}

/// The candidates in the order `strategy` offers them: `ring-all` rings all of them at
/// once. `last_offered` is the agentNo the queue offered last (round-robin's starting
/// point).
pub fn preference<'a>(
    strategy: Strategy,
    candidates: &[Candidate<'a>],
    last_offered: Option<&str>,
) -> Vec<&'a str> {
    let mut order: Vec<Candidate<'a>> = candidates.to_vec();
    order.sort_by(|a, b| compare(strategy, last_offered, a, b));
    order.into_iter().map(|c| c.agent_no).collect()
}

/// The candidate `strategy` offers a caller to (the first of [`preference`]), found
/// without ordering the others.
pub fn best<'a>(
    strategy: Strategy,
    candidates: &[Candidate<'a>],
    last_offered: Option<&str>,
) -> Option<&'a str> {
    candidates
        .iter()
        .min_by(|a, b| compare(strategy, last_offered, a, b))
        .map(|c| c.agent_no)
}

/// Whether `strategy` offers `a` before `b`.
fn compare(
    strategy: Strategy,
    last_offered: Option<&str>,
    a: &Candidate<'_>,
    b: &Candidate<'_>,
) -> Ordering {
    match strategy {
        Strategy::LongestIdle | Strategy::RingAll => {
            (a.idle_since_ms, a.agent_no).cmp(&(b.idle_since_ms, b.agent_no))
        }
        Strategy::SkillThenLongestIdle => (b.skill_level, a.idle_since_ms, a.agent_no).cmp(&(
            a.skill_level,
            b.idle_since_ms,
            b.agent_no,
        )),
        // By agentNo, starting after the last one offered and wrapping round.
        Strategy::RoundRobin => {
            let wrapped = |c: &Candidate<'_>| last_offered.is_some_and(|last| c.agent_no <= last);
            (wrapped(a), a.agent_no).cmp(&(wrapped(b), b.agent_no))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(agent_no: &str, skill_level: u8, idle_since_ms: i64) -> Candidate<'_> {
        Candidate {
            agent_no,
            skill_level,
            idle_since_ms,
        }
    }

    /// Four agents of different skills and idle times.
    fn four_agents() -> [Candidate<'static>; 4] {
        [
            c("1003", 5, 300),
            c("1001", 9, 200),
            c("1002", 9, 100),
            c("1004", 1, 50),
        ]
    }

    #[test]
    fn each_strategy_orders_as_written() {
        let agents = four_agents();
        assert_eq!(
            preference(Strategy::LongestIdle, &agents, None),
            ["1004", "1002", "1001", "1003"]
        );
        assert_eq!(
            preference(Strategy::SkillThenLongestIdle, &agents, None),
            ["1002", "1001", "1003", "1004"]
        );
        assert_eq!(
            preference(Strategy::RoundRobin, &agents, None),
            ["1001", "1002", "1003", "1004"]
        );
        assert_eq!(
            preference(Strategy::RoundRobin, &agents, Some("1002")),
            ["1003", "1004", "1001", "1002"]
        );
        assert_eq!(
            preference(Strategy::RoundRobin, &agents, Some("1004")),
            ["1001", "1002", "1003", "1004"],
            "after the last agentNo it wraps"
        );
        assert_eq!(
            preference(Strategy::RoundRobin, &agents, Some("1002a")),
            ["1003", "1004", "1001", "1002"],
            "the last offered need not be a candidate any more"
        );
        assert_eq!(preference(Strategy::RingAll, &agents, None).len(), 4);
        assert!(preference(Strategy::LongestIdle, &[], None).is_empty());
    }

    #[test]
    fn best_is_the_first_of_the_preference() {
        let agents = four_agents();
        for strategy in [
            Strategy::LongestIdle,
            Strategy::SkillThenLongestIdle,
            Strategy::RoundRobin,
            Strategy::RingAll,
        ] {
            for last in [None, Some("1001"), Some("1002a"), Some("1004"), Some("0")] {
                assert_eq!(
                    best(strategy, &agents, last),
                    preference(strategy, &agents, last).first().copied(),
                    "{strategy:?} after {last:?}"
                );
            }
        }
        assert_eq!(best(Strategy::RoundRobin, &[], None), None);
    }
}

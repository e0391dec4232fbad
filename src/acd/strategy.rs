//! Who gets a waiting caller's offer (agents' contract §9): each strategy as a pure
//! choice over the eligible agents.

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

/// The candidates in the order `strategy` offers them: the first is offered alone (a
/// refused claim moves to the next); `ring-all` rings all of them at once.
/// `last_offered` is the agentNo the queue offered last (round-robin's starting point).
pub fn preference<'a>(
    strategy: Strategy,
    candidates: &[Candidate<'a>],
    last_offered: Option<&str>,
) -> Vec<&'a str> {
    let mut order: Vec<Candidate<'a>> = candidates.to_vec();
    match strategy {
        Strategy::LongestIdle | Strategy::RingAll => {
            order.sort_by(|a, b| (a.idle_since_ms, a.agent_no).cmp(&(b.idle_since_ms, b.agent_no)))
        }
        Strategy::SkillThenLongestIdle => order.sort_by(|a, b| {
            (b.skill_level, a.idle_since_ms, a.agent_no).cmp(&(
                a.skill_level,
                b.idle_since_ms,
                b.agent_no,
            ))
        }),
        Strategy::RoundRobin => {
            order.sort_by(|a, b| a.agent_no.cmp(b.agent_no));
            if let Some(last) = last_offered {
                let next = order.partition_point(|c| c.agent_no <= last);
                order.rotate_left(next);
            }
        }
    }
    order.into_iter().map(|c| c.agent_no).collect()
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

    #[test]
    fn each_strategy_orders_as_written() {
        let agents = [
            c("1003", 5, 300),
            c("1001", 9, 200),
            c("1002", 9, 100),
            c("1004", 1, 50),
        ];
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
}

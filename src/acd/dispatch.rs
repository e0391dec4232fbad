//! The matchmaker of one application's queues (agents' contract §9), as a pure state
//! machine: callers wait in lines ordered by join time (one sent back keeps its place, one
//! put at the head goes before every caller who joined normally), agents become eligible
//! and ineligible, and [`Acd::step`] answers which offers to make and which to withdraw.
//! It keeps one offer per agent and, except for `ring-all`, one per caller, and it never
//! leaves an eligible member idle while a caller of its queue waits without an offer.
//!
//! Claiming the agent (its session's move to `ringing`), dialling and the caller's own
//! timers are the caller's business: a refused claim comes back as [`Input::Missed`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::strategy::{Candidate, best, preference};
use crate::domain::queue::Strategy;

/// A waiting caller: its conversationSid.
pub type CallerId = String;
/// An agent of the application: its agentNo.
pub type AgentNo = String;
/// A queue: its queueSid.
pub type QueueSid = String;

/// Where a joining caller goes in its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// Before every caller who joined normally (a failed transfer coming back).
    Head,
    /// By join time (dial-in, transfer, overflow, backend outbound).
    InTurn,
}

/// A caller's place: head first, then join time, then arrival order.
type LineKey = (Place, i64, u64);

/// What happens to the matchmaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A queue's strategy (given before callers join it; a change applies to later offers).
    Rules {
        /// The queue.
        queue: QueueSid,
        /// How it chooses agents.
        strategy: Strategy,
    },
    /// A caller joins `queue`.
    Join {
        /// The caller.
        caller: CallerId,
        /// The queue.
        queue: QueueSid,
        /// When it joined, Unix ms (its place in line).
        join_ms: i64,
        /// Its place.
        place: Place,
        /// The agent it last talked with, when the queue routes to the last agent and
        /// one is known within the window: offered first if eligible, member or not.
        last_agent: Option<AgentNo>,
    },
    /// The caller leaves without an agent (hung up, overflowed, timed out).
    Leave {
        /// The caller.
        caller: CallerId,
    },
    /// An agent may take offers: logged in, ready, no call (and its device registered).
    Available {
        /// The agent.
        agent: AgentNo,
        /// Since when it is idle, Unix ms.
        idle_since_ms: i64,
        /// Its queues and skill levels there.
        queues: Vec<(QueueSid, u8)>,
    },
    /// An agent may not take offers any more (paused, logged out, on a call).
    Unavailable {
        /// The agent.
        agent: AgentNo,
    },
    /// The agent answered the caller's offer: the caller leaves its line, other offers
    /// of the caller are withdrawn, the agent is on a call.
    Answered {
        /// The caller.
        caller: CallerId,
        /// The agent.
        agent: AgentNo,
    },
    /// The offer failed (not answered, rejected, the device failed, the claim was
    /// refused): the caller waits again in its place, the agent is not eligible.
    Missed {
        /// The caller.
        caller: CallerId,
        /// The agent.
        agent: AgentNo,
    },
}

/// What the matchmaker wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Offer `caller` of `queue` to `agent`.
    Offer {
        /// The caller.
        caller: CallerId,
        /// Its queue.
        queue: QueueSid,
        /// The agent.
        agent: AgentNo,
    },
    /// Stop ringing `agent` for `caller` (another agent answered, or the caller left);
    /// the agent is eligible again as before the offer.
    Withdraw {
        /// The caller.
        caller: CallerId,
        /// The agent.
        agent: AgentNo,
    },
}

#[derive(Debug, Clone)]
struct Waiting {
    queue: QueueSid,
    key: LineKey,
    offered_to: Vec<AgentNo>,
    last_agent: Option<AgentNo>,
}

#[derive(Debug, Clone, Default)]
struct Line {
    strategy: Strategy,
    order: BTreeSet<(LineKey, CallerId)>,
    last_offered: Option<AgentNo>,
}

#[derive(Debug, Clone, Default)]
struct AgentSlot {
    eligible: bool,
    idle_since_ms: i64,
    queues: Vec<(QueueSid, u8)>,
    ringing: Option<CallerId>,
}

impl AgentSlot {
    fn free(&self) -> bool {
        self.eligible && self.ringing.is_none()
    }
}

/// One caller as the Live view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingView<'a> {
    /// The caller.
    pub caller: &'a str,
    /// When it joined, Unix ms.
    pub join_ms: i64,
    /// 1 + callers ahead of it.
    pub position: usize,
    /// Agents its offer rings now.
    pub ringing: &'a [AgentNo],
}

/// The matchmaker of one application.
#[derive(Debug, Clone, Default)]
pub struct Acd {
    lines: HashMap<QueueSid, Line>,
    callers: HashMap<CallerId, Waiting>,
    agents: BTreeMap<AgentNo, AgentSlot>,
    /// Each queue's members (eligible or not), by agentNo.
    members: HashMap<QueueSid, BTreeSet<AgentNo>>,
    arrivals: u64,
}

impl Acd {
    /// Applies `input`; the offers to make and withdraw, withdrawals first.
    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Rules { queue, strategy } => {
                self.lines.entry(queue).or_default().strategy = strategy;
            }
            Input::Join {
                caller,
                queue,
                join_ms,
                place,
                last_agent,
            } => {
                if self.callers.contains_key(&caller) {
                    return effects;
                }
                self.arrivals += 1;
                let key = (place, join_ms, self.arrivals);
                self.lines
                    .entry(queue.clone())
                    .or_default()
                    .order
                    .insert((key, caller.clone()));
                let last_agent =
                    last_agent.filter(|a| self.agents.get(a).is_some_and(AgentSlot::free));
                self.callers.insert(
                    caller.clone(),
                    Waiting {
                        queue,
                        key,
                        offered_to: Vec::new(),
                        last_agent,
                    },
                );
                if let Some(agent) = self.callers[&caller].last_agent.clone() {
                    self.offer(&caller, &agent, &mut effects);
                }
            }
            Input::Leave { caller } => self.remove_caller(&caller, None, &mut effects),
            Input::Available {
                agent,
                idle_since_ms,
                queues,
            } => {
                let slot = self.agents.entry(agent.clone()).or_default();
                if slot.eligible && slot.idle_since_ms == idle_since_ms && slot.queues == queues {
                    // Nothing changed (the periodic refresh says it again): nothing to do.
                    return effects;
                }
                slot.eligible = true;
                slot.idle_since_ms = idle_since_ms;
                if slot.queues != queues {
                    let before = std::mem::replace(&mut slot.queues, queues);
                    self.index_member(&agent, &before);
                }
            }
            Input::Unavailable { agent } => match self.agents.get_mut(&agent) {
                Some(slot) if slot.eligible => slot.eligible = false,
                // Fewer free agents never make an offer.
                _ => return effects,
            },
            Input::Answered { caller, agent } => {
                if let Some(slot) = self.agents.get_mut(&agent) {
                    slot.eligible = false;
                }
                self.remove_caller(&caller, Some(&agent), &mut effects);
            }
            Input::Missed { caller, agent } => {
                if let Some(slot) = self.agents.get_mut(&agent) {
                    slot.eligible = false;
                    if slot.ringing.as_ref() == Some(&caller) {
                        slot.ringing = None;
                    }
                }
                if let Some(waiting) = self.callers.get_mut(&caller) {
                    waiting.offered_to.retain(|a| *a != agent);
                }
            }
        }
        self.dispatch(&mut effects);
        effects
    }

    /// Ends every offer of `caller` (but `answered_by`'s) and takes it out of its line.
    fn remove_caller(
        &mut self,
        caller: &str,
        answered_by: Option<&AgentNo>,
        effects: &mut Vec<Effect>,
    ) {
        let Some(waiting) = self.callers.remove(caller) else {
            return;
        };
        if let Some(line) = self.lines.get_mut(&waiting.queue) {
            line.order.remove(&(waiting.key, caller.to_string()));
        }
        for agent in waiting.offered_to {
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.ringing = None;
            }
            if Some(&agent) != answered_by {
                effects.push(Effect::Withdraw {
                    caller: caller.to_string(),
                    agent,
                });
            }
        }
    }

    fn offer(&mut self, caller: &str, agent: &str, effects: &mut Vec<Effect>) {
        let Some(waiting) = self.callers.get_mut(caller) else {
            return;
        };
        waiting.offered_to.push(agent.to_string());
        let queue = waiting.queue.clone();
        if let Some(slot) = self.agents.get_mut(agent) {
            slot.ringing = Some(caller.to_string());
        }
        if let Some(line) = self.lines.get_mut(&queue) {
            line.last_offered = Some(agent.to_string());
        }
        effects.push(Effect::Offer {
            caller: caller.to_string(),
            queue,
            agent: agent.to_string(),
        });
    }

    /// Moves `agent` in the members index from the queues of `before` to its queues now.
    fn index_member(&mut self, agent: &str, before: &[(QueueSid, u8)]) {
        for (queue, _) in before {
            if let Some(members) = self.members.get_mut(queue) {
                members.remove(agent);
            }
        }
        for (queue, _) in &self.agents[agent].queues {
            self.members
                .entry(queue.clone())
                .or_default()
                .insert(agent.to_string());
        }
    }

    /// The first caller of `line` without an offer.
    fn first_unoffered<'a>(&self, line: &'a Line) -> Option<(LineKey, &'a str)> {
        line.order.iter().find_map(|(key, caller)| {
            self.callers[caller]
                .offered_to
                .is_empty()
                .then_some((*key, caller.as_str()))
        })
    }

    /// The free members of `queue`.
    fn candidates(&self, queue: &str) -> Vec<Candidate<'_>> {
        let Some(members) = self.members.get(queue) else {
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|agent_no| {
                let slot = self.agents.get(agent_no).filter(|slot| slot.free())?;
                let skill = slot.queues.iter().find(|(q, _)| q == queue)?.1;
                Some(Candidate {
                    agent_no,
                    skill_level: skill,
                    idle_since_ms: slot.idle_since_ms,
                })
            })
            .collect()
    }

    /// Offers the waiting callers, longest waiting first across the queues, until no
    /// caller without an offer has a free member in its queue.
    fn dispatch(&mut self, effects: &mut Vec<Effect>) {
        let mut blocked: HashSet<QueueSid> = HashSet::new();
        loop {
            // The longest-waiting caller without an offer among the lines not yet found
            // without a free member.
            let next = self
                .lines
                .iter()
                .filter(|(queue, _)| !blocked.contains(*queue))
                .filter_map(|(queue, line)| {
                    self.first_unoffered(line)
                        .map(|(key, caller)| (key, caller, queue.as_str()))
                })
                .min();
            let Some((_, caller, queue)) = next else {
                return;
            };
            let (caller, queue) = (caller.to_string(), queue.to_string());
            let line = &self.lines[&queue];
            let candidates = self.candidates(&queue);
            let chosen: Vec<AgentNo> = if line.strategy == Strategy::RingAll {
                preference(line.strategy, &candidates, None)
            } else {
                best(line.strategy, &candidates, line.last_offered.as_deref())
                    .into_iter()
                    .collect()
            }
            .into_iter()
            .map(str::to_string)
            .collect();
            if chosen.is_empty() {
                blocked.insert(queue);
                continue;
            }
            for agent in &chosen {
                self.offer(&caller, agent, effects);
            }
        }
    }

    /// The callers of `queue` in line order.
    pub fn waiting(&self, queue: &str) -> Vec<WaitingView<'_>> {
        let Some(line) = self.lines.get(queue) else {
            return Vec::new();
        };
        line.order
            .iter()
            .enumerate()
            .map(|(i, ((_, join_ms, _), caller))| WaitingView {
                caller,
                join_ms: *join_ms,
                position: i + 1,
                ringing: &self.callers[caller].offered_to,
            })
            .collect()
    }

    /// 1 + the callers ahead of `caller` in its line.
    pub fn position(&self, caller: &str) -> Option<usize> {
        let waiting = self.callers.get(caller)?;
        let line = self.lines.get(&waiting.queue)?;
        Some(
            line.order
                .range(..(waiting.key, caller.to_string()))
                .count()
                + 1,
        )
    }
}

#[cfg(test)]
mod tests;

//! The call distributor's share of "agent became ready → offer" (agents' contract §9,
//! issue 15's goal of p99 < 10 ms to the originate): 500 agents and 2,000 callers waiting
//! in 20 queues on one matchmaker, every strategy represented; each sample is one agent
//! becoming available and the offer it gets, timed alone, then the offer missed (which
//! puts the state back as it was).
//!
//! Run: `cargo bench --bench acd` (prints p50, p99, p99.9 and max over 200,000 samples).

use std::time::{Duration, Instant};

use voicepaas::acd::dispatch::{Acd, Effect, Input, Place};
use voicepaas::domain::queue::Strategy;

const QUEUES: usize = 20;
const AGENTS: usize = 500;
const CALLERS: usize = 2_000;
const SAMPLES: usize = 200_000;

fn queue(q: usize) -> String {
    format!("QU{q:032}")
}

fn agent(a: usize) -> String {
    format!("{:04}", 1000 + a)
}

/// Each agent serves its own queue and the next one, at skill levels 1–10.
fn memberships(a: usize) -> Vec<(String, u8)> {
    let first = a % QUEUES;
    vec![
        (queue(first), (a % 10 + 1) as u8),
        (queue((first + 1) % QUEUES), ((a + 3) % 10 + 1) as u8),
    ]
}

fn main() {
    let strategies = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::RingAll,
        Strategy::SkillThenLongestIdle,
    ];
    let mut acd = Acd::default();
    for q in 0..QUEUES {
        acd.step(Input::Rules {
            queue: queue(q),
            strategy: strategies[q % strategies.len()],
        });
    }
    // Callers first (no agent free), then the agents: all but the measured ones busy
    // ringing for a caller each, so 2,000 − 499 callers still wait without an offer.
    for c in 0..CALLERS {
        acd.step(Input::Join {
            caller: format!("CV{c:032}"),
            queue: queue(c % QUEUES),
            join_ms: c as i64,
            place: Place::InTurn,
            last_agent: None,
        });
    }
    for a in 1..AGENTS {
        acd.step(Input::Available {
            agent: agent(a),
            idle_since_ms: a as i64,
            queues: memberships(a),
        });
    }
    let measured = agent(0);
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let became_ready = Input::Available {
            agent: measured.clone(),
            idle_since_ms: i as i64,
            queues: memberships(0),
        };
        let started = Instant::now();
        let effects = acd.step(became_ready);
        samples.push(started.elapsed());
        let Some(Effect::Offer { caller, .. }) = effects.into_iter().next() else {
            panic!("no offer for the agent that became ready");
        };
        acd.step(Input::Missed {
            caller,
            agent: measured.clone(),
        });
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "acd ready→offer over {SAMPLES} samples ({AGENTS} agents, {CALLERS} callers, {QUEUES} queues): \
         p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        us(at(0.50)),
        us(at(0.99)),
        us(at(0.999)),
        us(*samples.last().unwrap())
    );
}

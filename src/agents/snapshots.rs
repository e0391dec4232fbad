//! The counters-only queueEvent `snapshot` (agents' contract §8.4): every 5 s, each
//! logged-in agent whose socket this process holds gets the counters of each of its
//! queues when they changed since the last snapshot that socket got.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Agents;
use super::bus::{Key, Notice};
use crate::acd::live::{Counters, load};
use crate::domain::time::now_ms;
use crate::store::StoreError;

/// Time between two looks.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// What each socket was sent last, by (agent, registration, queue).
type Sent = HashMap<(Key, u64, String), Counters>;

/// Sends snapshots until the process stops.
pub async fn run(agents: Arc<Agents>) {
    let mut stopping = agents.stopping();
    let mut sent = Sent::new();
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = look(&agents, &mut sent).await {
                    tracing::warn!(error = %e, "queue snapshots skipped this time");
                }
            }
            _ = stopping.changed() => return,
        }
    }
}

/// One look: the queues of the agents with sockets here, their counters, the changes sent.
async fn look(agents: &Agents, sent: &mut Sent) -> Result<(), StoreError> {
    let mut sockets: HashMap<Key, Vec<u64>> = HashMap::new();
    for (key, id) in agents.bus.subscriptions() {
        sockets.entry(key).or_default().push(id);
    }
    sent.retain(|(key, id, _), _| sockets.get(key).is_some_and(|ids| ids.contains(id)));
    let apps: HashSet<String> = sockets.keys().map(|(app, _)| app.clone()).collect();
    let now = now_ms();
    let tz = agents.settings.timezone;
    for app_id in &apps {
        let memberships = agents.store.logged_in_memberships(app_id).await?;
        let mut by_queue: HashMap<String, (Counters, Value)> = HashMap::new();
        for (agent_no, queue_sid) in memberships {
            let key = (app_id.clone(), agent_no);
            let Some(ids) = sockets.get(&key) else {
                continue;
            };
            if !by_queue.contains_key(&queue_sid) {
                let Some(queue) = agents.store.find_queue(app_id, &queue_sid).await? else {
                    continue;
                };
                let view = load(&agents.store, &queue).await?;
                let counters = view.counters(now);
                let mut data = view.counters_json(&counters, now, tz);
                data["eventName"] = "snapshot".into();
                by_queue.insert(queue_sid.clone(), (counters, data));
            }
            let (counters, data) = &by_queue[&queue_sid];
            for &id in ids {
                let entry = (key.clone(), id, queue_sid.clone());
                if sent.get(&entry) == Some(counters) {
                    continue;
                }
                let frame = json!({"type": "queueEvent", "data": data});
                agents
                    .bus
                    .send_to(&key, id, Notice::Queue(frame.to_string()));
                sent.insert(entry, *counters);
            }
        }
    }
    Ok(())
}

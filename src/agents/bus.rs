//! How a change of an agent reaches the process holding its socket: an in-process registry
//! of socket tasks by agent, fed by this process's own changes and, on PostgreSQL, by
//! `LISTEN` on the agents channel (other replicas' changes). A notice carries the new
//! events when they fit; the socket task sends them if they follow what it sent, and
//! otherwise reads the events from the database by seq, so a notice lost or out of turn
//! costs a read, never an event or its order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::store::agent_sessions::AGENT_CHANNEL;

/// What a socket task is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The agent's session has new events; the frames (seq, frame) when the notice
    /// carried them.
    Events {
        /// The session.
        sid: String,
        /// Its new frames, in seq order (empty: read them).
        frames: Vec<(i64, String)>,
    },
    /// A socket attached to the agent: every other socket of the agent is taken over.
    Attached {
        /// The socket that now holds the agent.
        socket_id: String,
    },
    /// The agent's tokens were revoked: sockets opened with one close (4001).
    TokensRevoked,
    /// Notices may have been lost (the listener reconnected): look again.
    Resync,
    /// A queueEvent frame to send as it is (a snapshot, or a monitored caller's move;
    /// queueEvents carry no seq and are never replayed).
    Queue(String),
}

/// What the queue monitoring of this process is told, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorInput {
    /// A caller's move in a queue, as published, to be completed once per process with
    /// the queue's counters.
    Caller {
        /// Its application.
        app_id: String,
        /// The queue.
        queue: String,
        /// The event's caller fields, as JSON.
        data: String,
    },
    /// An agent's session changed: its agentState may have moved.
    Agent {
        /// Its application.
        app_id: String,
        /// The agent.
        agent_no: String,
    },
    /// The sockets of this process began (`on`) or stopped monitoring the application's
    /// queues.
    Watching {
        /// The application.
        app_id: String,
        /// Whether some socket here monitors its queues now.
        on: bool,
    },
}

/// The queues a socket monitors (`monitorQueues`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Monitored {
    /// Every queue of its application.
    All,
    /// These queueSids.
    Queues(HashSet<String>),
}

impl Monitored {
    /// Whether `queue` is among them.
    pub fn covers(&self, queue: &str) -> bool {
        match self {
            Monitored::All => true,
            Monitored::Queues(queues) => queues.contains(queue),
        }
    }
}

/// An agent: (appSid, agentNo).
pub type Key = (String, String);
/// The socket tasks of one agent: (registration id, their channel).
type Subscribers = Vec<(u64, mpsc::UnboundedSender<Notice>)>;

/// The registry of socket tasks of this process, by (appSid, agentNo).
#[derive(Default)]
pub struct Bus {
    subscribers: Mutex<HashMap<Key, Subscribers>>,
    next_id: AtomicU64,
    /// The matchmaker, told of every agent whose session changed.
    watcher: Mutex<Option<crate::acd::hub::AcdHandle>>,
    /// The sockets that monitor queues, by (agent, registration id).
    monitors: Mutex<HashMap<(Key, u64), Monitored>>,
    /// Where the moves of callers and agents that some socket here monitors go to be
    /// completed.
    moves: Mutex<Option<mpsc::UnboundedSender<MonitorInput>>>,
}

/// A socket task's registration; dropping it unregisters.
pub struct Subscription {
    bus: Arc<Bus>,
    key: Key,
    id: u64,
    /// The notices for this agent.
    pub notices: mpsc::UnboundedReceiver<Notice>,
}

impl Subscription {
    /// This socket monitors `what` from now on (`None`: nothing).
    pub fn monitor(&self, what: Option<Monitored>) {
        self.bus.monitor(&self.key, self.id, what);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.monitor(&self.key, self.id, None);
        let mut subscribers = self
            .bus
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(list) = subscribers.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                subscribers.remove(&self.key);
            }
        }
    }
}

/// The notification payload saying an agent's tokens were revoked.
pub fn revoked_payload(app_id: &str, agent_no: &str) -> String {
    format!("R\t{app_id}\t{agent_no}")
}

/// The notification payload of a caller's move in `queue` (`data`: its JSON fields).
pub fn queue_payload(app_id: &str, queue: &str, data: &str) -> String {
    format!("Q\t{app_id}\t{queue}\t{data}")
}

/// The notification payload saying `socket_id` attached to an agent.
pub fn attached_payload(app_id: &str, agent_no: &str, socket_id: &str) -> String {
    format!("S\t{app_id}\t{agent_no}\t{socket_id}")
}

impl Bus {
    /// Registers a socket task for an agent's notices.
    pub fn subscribe(self: &Arc<Self>, app_id: &str, agent_no: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (app_id.to_string(), agent_no.to_string());
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .push((id, tx));
        Subscription {
            bus: self.clone(),
            key,
            id,
            notices: rx,
        }
    }

    /// Tells `acd` of every agent whose session changes from now on (on any replica).
    pub fn watch(&self, acd: crate::acd::hub::AcdHandle) {
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(acd);
    }

    /// Hands a notification payload to the socket tasks of its agent (unknown payloads
    /// are ignored).
    pub fn deliver(&self, payload: &str) {
        let mut parts = payload.split('\t');
        let (Some(kind), Some(app_id), Some(agent_no)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if kind == "Q" {
            return self.queue_move(app_id, agent_no, parts.next().unwrap_or_default());
        }
        if kind == "E" {
            if let Some(acd) = &*self.watcher.lock().unwrap_or_else(|e| e.into_inner()) {
                acd.send(crate::acd::hub::HubInput::AgentChanged {
                    app_id: app_id.to_string(),
                    agent_no: agent_no.to_string(),
                    heard: tokio::time::Instant::now(),
                });
            }
            if self.watches(app_id) {
                self.complete(MonitorInput::Agent {
                    app_id: app_id.to_string(),
                    agent_no: agent_no.to_string(),
                });
            }
        }
        let notice = match (kind, parts.next()) {
            ("E", Some(sid)) => {
                let rest: Vec<&str> = parts.collect();
                let frames = rest
                    .chunks(2)
                    .map_while(|pair| match pair {
                        [seq, frame] => seq.parse().ok().map(|seq| (seq, frame.to_string())),
                        _ => None,
                    })
                    .collect();
                Notice::Events {
                    sid: sid.to_string(),
                    frames,
                }
            }
            ("R", None) => Notice::TokensRevoked,
            ("S", Some(socket_id)) => Notice::Attached {
                socket_id: socket_id.to_string(),
            },
            _ => return,
        };
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = subscribers.get(&(app_id.to_string(), agent_no.to_string())) {
            for (_, tx) in list {
                let _ = tx.send(notice.clone());
            }
        }
    }

    /// Socket (`key`, registration `id`) monitors `what` from now on (`None`: nothing);
    /// the completer hears when the first socket of an application begins to monitor and
    /// when the last stops.
    pub fn monitor(&self, key: &Key, id: u64, what: Option<Monitored>) {
        let app_id = &key.0;
        let mut monitors = self.monitors.lock().unwrap_or_else(|e| e.into_inner());
        let before = monitors.keys().any(|(k, _)| &k.0 == app_id);
        match what {
            Some(what) => monitors.insert((key.clone(), id), what),
            None => monitors.remove(&(key.clone(), id)),
        };
        let after = monitors.keys().any(|(k, _)| &k.0 == app_id);
        if before != after {
            // Told under the lock, so the completer hears the turns in their order.
            self.complete(MonitorInput::Watching {
                app_id: app_id.clone(),
                on: after,
            });
        }
    }

    /// Sends the moves monitored here to `completer` from now on.
    pub fn complete_moves_with(&self, completer: mpsc::UnboundedSender<MonitorInput>) {
        *self.moves.lock().unwrap_or_else(|e| e.into_inner()) = Some(completer);
    }

    /// Hands `input` to the completer.
    fn complete(&self, input: MonitorInput) {
        if let Some(completer) = &*self.moves.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = completer.send(input);
        }
    }

    /// Whether some socket here monitors queues of `app_id`.
    fn watches(&self, app_id: &str) -> bool {
        self.monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .any(|(key, _)| key.0 == app_id)
    }

    /// The sockets of `app_id` monitoring `queue`.
    pub fn watching(&self, app_id: &str, queue: &str) -> Vec<(Key, u64)> {
        self.monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((key, _), what)| key.0 == app_id && what.covers(queue))
            .map(|(socket, _)| socket.clone())
            .collect()
    }

    /// A caller's move in `queue`: completed once (if any socket here monitors it), then
    /// sent to each of them by [`Bus::send_queue_frame`].
    fn queue_move(&self, app_id: &str, queue: &str, data: &str) {
        if self.watching(app_id, queue).is_empty() {
            return;
        }
        self.complete(MonitorInput::Caller {
            app_id: app_id.to_string(),
            queue: queue.to_string(),
            data: data.to_string(),
        });
    }

    /// Sends a completed queueEvent `frame` of `queue` to the sockets of `app_id`
    /// monitoring it.
    pub fn send_queue_frame(&self, app_id: &str, queue: &str, frame: &str) {
        for (key, id) in self.watching(app_id, queue) {
            self.send_to(&key, id, Notice::Queue(frame.to_string()));
        }
    }

    /// Every socket task of this process: its agent and registration id.
    pub fn subscriptions(&self) -> Vec<(Key, u64)> {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers
            .iter()
            .flat_map(|(key, list)| list.iter().map(|(id, _)| (key.clone(), *id)))
            .collect()
    }

    /// Tells one socket task (`key`, registration `id`) `notice`.
    pub fn send_to(&self, key: &Key, id: u64, notice: Notice) {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tx)) = subscribers
            .get(key)
            .and_then(|list| list.iter().find(|(i, _)| *i == id))
        {
            let _ = tx.send(notice);
        }
    }

    /// Tells every socket task of this process to look again.
    pub fn resync_all(&self) {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in subscribers.values().flatten() {
            let _ = tx.send(Notice::Resync);
        }
    }
}

/// Forwards the agents channel of PostgreSQL to `bus` until `stop`; after a lost
/// connection every socket task looks again.
pub async fn listen(
    pool: sqlx::PgPool,
    bus: Arc<Bus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "agent notifications: cannot listen; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Err(e) = listener.listen(AGENT_CHANNEL).await {
            tracing::warn!(error = %e, "agent notifications: LISTEN failed; retrying");
            continue;
        }
        bus.resync_all();
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => bus.deliver(n.payload()),
                    Ok(None) => {
                        // The connection was lost (and is re-established by the next
                        // call): what was sent meanwhile is gone.
                        bus.resync_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "agent notifications: listener failed");
                        bus.resync_all();
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::agent_sessions::events_notice;

    #[test]
    fn notices_reach_only_their_agent() {
        let bus = Arc::new(Bus::default());
        let mut a = bus.subscribe("app", "1001");
        let mut b = bus.subscribe("app", "1002");
        let frames = vec![
            (7, r#"{"seq":7}"#.to_string()),
            (8, r#"{"seq":8}"#.to_string()),
        ];
        bus.deliver(&events_notice("app", "1001", "AG1", &frames));
        bus.deliver(&attached_payload("app", "1001", "s2"));
        bus.deliver("garbage");
        assert_eq!(
            a.notices.try_recv(),
            Ok(Notice::Events {
                sid: "AG1".into(),
                frames
            })
        );
        assert_eq!(
            a.notices.try_recv(),
            Ok(Notice::Attached {
                socket_id: "s2".into()
            })
        );
        assert!(a.notices.try_recv().is_err());
        assert!(b.notices.try_recv().is_err());
        bus.resync_all();
        assert_eq!(b.notices.try_recv(), Ok(Notice::Resync));
        drop(a);
        assert_eq!(bus.subscribers.lock().unwrap().len(), 1);
    }
}

//! Supervisors' queue monitoring (agents' contract §7.2 `monitorQueues` /
//! `unmonitorQueues`, §8.4): the command answers the Live view of each queue and the
//! socket then gets every queueEvent of those queues — callers' moves published by the
//! conversations of any replica, sent with the queue's counters at that moment.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Agents;
use super::bus::{MonitorInput, Monitored, queue_payload};
use super::error::CommandError;
use super::machine::AgentState;
use crate::acd::live::{MemberView, load};
use crate::cdr::format_time;
use crate::domain::time::now_ms;
use crate::store::agents::AgentRecord;
use crate::store::monitors::ALL_QUEUES;

/// A monitored queue at the moment an event about it is sent.
struct QueueNow {
    /// Its name.
    name: String,
    /// Its counters (§8.4).
    counters: Map<String, Value>,
    /// The caller's place in line (`0`: not waiting).
    position: usize,
}

/// What each agent of an application monitored here was last seen as: its agentState and
/// pauseCause (an agent missing is offline).
type Seen = HashMap<(String, String), (AgentState, String)>;

/// Completes each move monitored here once (the queue's counters read once for every
/// monitoring socket of this process), in the order published, until the process stops:
/// callers' moves as they come; an agent's change when its agentState or pauseCause moved
/// since this process last saw it, in each monitored queue it belongs to.
pub(super) async fn complete_moves(
    agents: std::sync::Arc<Agents>,
    mut moves: tokio::sync::mpsc::UnboundedReceiver<MonitorInput>,
) {
    let mut seen = Seen::new();
    while let Some(input) = moves.recv().await {
        match input {
            MonitorInput::Caller {
                app_id,
                queue,
                data,
            } => {
                if let Some(frame) = agents.queue_event_frame(&app_id, &queue, &data).await {
                    agents.bus.send_queue_frame(&app_id, &queue, &frame);
                }
            }
            MonitorInput::Watching { app_id, on } => {
                seen.retain(|(app, _), _| *app != app_id);
                if on {
                    agents.see_all(&app_id, &mut seen).await;
                }
            }
            MonitorInput::Agent { app_id, agent_no } => {
                agents.agent_moved(&app_id, &agent_no, &mut seen).await;
            }
        }
    }
}

impl Agents {
    /// `monitorQueues` (`on`) or `unmonitorQueues` for supervisor `agent`, logged in:
    /// the queues named (`queueSids`, empty or missing: all) are kept with its session.
    pub(super) async fn monitor_queues(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        params: &Map<String, Value>,
        on: bool,
    ) -> Result<Value, CommandError> {
        if !on {
            self.store
                .set_monitored(app_id, &agent.agent_no, None)
                .await?;
            return Ok(json!({}));
        }
        let named: Vec<String> = match params.get("queueSids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    CommandError::Param("queueSids must be an array of strings".into())
                })?,
            Some(_) => {
                return Err(CommandError::Param(
                    "queueSids must be an array of strings".into(),
                ));
            }
        };
        let mut queues = Vec::new();
        if named.is_empty() {
            loop {
                let after = queues
                    .last()
                    .map(|q: &crate::store::queues::QueueRecord| q.queue_sid.clone());
                let page = self
                    .store
                    .list_queues(app_id, after.as_deref(), 500)
                    .await?;
                if page.is_empty() {
                    break;
                }
                queues.extend(page);
            }
        } else {
            for sid in &named {
                let queue = self.store.find_queue(app_id, sid).await?;
                queues.push(queue.ok_or(CommandError::QueueNotFound)?);
            }
        }
        let stored = match named.is_empty() {
            true => vec![ALL_QUEUES.to_string()],
            false => named,
        };
        if !self
            .store
            .set_monitored(app_id, &agent.agent_no, Some(&stored))
            .await?
        {
            return Err(CommandError::NotLoggedIn);
        }
        let now = now_ms();
        let mut views = Vec::with_capacity(queues.len());
        for queue in &queues {
            views.push(
                load(&self.store, queue)
                    .await?
                    .to_json(now, self.settings.timezone),
            );
        }
        Ok(json!({"queues": views}))
    }

    /// What the session of `agent_no` monitors now, as a socket registers it.
    pub async fn monitored(&self, app_id: &str, agent_no: &str) -> Option<Monitored> {
        match self.store.monitored(app_id, agent_no).await {
            Ok(Some(queues)) if queues.iter().any(|q| q == ALL_QUEUES) => Some(Monitored::All),
            Ok(Some(queues)) => Some(Monitored::Queues(queues.into_iter().collect())),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "monitored queues unreadable; none monitored");
                None
            }
        }
    }

    /// Publishes a caller's move in `queue` (`data`: its caller fields) to the sockets
    /// monitoring it on every replica.
    pub async fn publish_queue_event(&self, app_id: &str, queue: &str, data: &Value) {
        let payload = queue_payload(app_id, queue, &data.to_string());
        if self.store.postgres_pool().is_none() {
            // One process: no one else to tell.
            return self.bus.deliver(&payload);
        }
        if let Err(e) = self.store.notify_agents(&payload).await {
            tracing::warn!(error = %e, "a queueEvent could not be published");
        }
    }

    /// The queueEvent frame of a caller's move (`data`) in `queue`, with the queue's
    /// counters and, while the caller waits, its position (`0` once it left).
    async fn queue_event_frame(&self, app_id: &str, queue: &str, data: &str) -> Option<String> {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(data) else {
            return None;
        };
        let conversation = fields
            .get("conversationSid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let now = self.queue_now(app_id, queue, &conversation, None).await?;
        fields.insert("position".into(), now.position.into());
        fields.insert("agentState".into(), "".into());
        fields.insert("pauseCause".into(), "".into());
        fields.extend(now.counters);
        Some(json!({"type": "queueEvent", "data": fields}).to_string())
    }

    /// `queue` now: its name, its counters (`member` counted as it is given) and the place
    /// of `conversation` in its line.
    async fn queue_now(
        &self,
        app_id: &str,
        queue: &str,
        conversation: &str,
        member: Option<&MemberView>,
    ) -> Option<QueueNow> {
        let record = match self.store.find_queue(app_id, queue).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(error = %e, "queue unreadable; a queueEvent is not sent");
                return None;
            }
        };
        let mut live = match load(&self.store, &record).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "queue unreadable; a queueEvent is not sent");
                return None;
            }
        };
        // A member's event counts the member as the event says, though it may have
        // moved on since.
        if let Some(member) = member
            && let Some(m) = live
                .members
                .iter_mut()
                .find(|m| m.agent_no == member.agent_no)
        {
            *m = member.clone();
        }
        let position = live
            .waiting
            .iter()
            .position(|(c, _)| c == conversation)
            .map_or(0, |i| i + 1);
        let Value::Object(counters) = live.counters(now_ms()).to_json() else {
            return None;
        };
        Some(QueueNow {
            name: record.settings.name.clone(),
            counters,
            position,
        })
    }

    /// Notes how every logged-in agent of `app_id` is now, as monitoring begins here.
    async fn see_all(&self, app_id: &str, seen: &mut Seen) {
        match self.store.live_sessions(app_id).await {
            Ok(sessions) => {
                for (agent_no, session) in sessions {
                    let view = MemberView::of(agent_no, Some(&session), None);
                    seen.insert(
                        (app_id.to_string(), view.agent_no),
                        (view.state, view.pause_cause),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "agents unreadable; their next change is sent as it is")
            }
        }
    }

    /// Agent `agent_no`'s session changed: when its agentState or pauseCause moved, the
    /// `agentState` queueEvent of each monitored queue it belongs to.
    async fn agent_moved(&self, app_id: &str, agent_no: &str, seen: &mut Seen) {
        let memberships = match self.store.agent_memberships(app_id, agent_no).await {
            Ok(memberships) => memberships,
            Err(e) => {
                tracing::warn!(error = %e, "agent unreadable; its agentState queueEvent is not sent");
                return;
            }
        };
        let Some((_, session)) = memberships.first() else {
            return;
        };
        let view = MemberView::of(agent_no.to_string(), session.as_deref(), None);
        let now = (view.state, view.pause_cause.clone());
        let key = (app_id.to_string(), agent_no.to_string());
        let before = seen
            .get(&key)
            .cloned()
            .unwrap_or((AgentState::Offline, String::new()));
        if before == now {
            return;
        }
        match view.state {
            AgentState::Offline => seen.remove(&key),
            _ => seen.insert(key, now),
        };
        for (queue, _) in &memberships {
            if self.bus.watching(app_id, queue).is_empty() {
                continue;
            }
            if let Some(frame) = self.agent_state_frame(app_id, queue, &view).await {
                self.bus.send_queue_frame(app_id, queue, &frame);
            }
        }
    }

    /// The `agentState` queueEvent frame of member `view` in `queue`, with the queue's
    /// counters (the caller's fields empty).
    async fn agent_state_frame(
        &self,
        app_id: &str,
        queue: &str,
        view: &MemberView,
    ) -> Option<String> {
        let now = self.queue_now(app_id, queue, "", Some(view)).await?;
        let timestamp = format_time(now_ms(), self.settings.timezone);
        let mut data = json!({
            "eventName": "agentState", "appSid": app_id, "queueSid": queue,
            "queueName": now.name, "callSid": "", "conversationSid": "", "userNumber": "",
            "joinType": "", "joinTime": "", "waitSeconds": 0, "position": 0,
            "leaveCause": "", "agentNo": view.agent_no, "agentState": view.state.as_str(),
            "pauseCause": view.pause_cause, "timestamp": timestamp,
        });
        if let Value::Object(fields) = &mut data {
            fields.extend(now.counters);
        }
        Some(json!({"type": "queueEvent", "data": data}).to_string())
    }
}

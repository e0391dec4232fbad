//! Supervisors' queue monitoring (agents' contract §7.2 `monitorQueues` /
//! `unmonitorQueues`, §8.4): the command answers the Live view of each queue and the
//! socket then gets every queueEvent of those queues — callers' moves published by the
//! conversations of any replica, sent with the queue's counters at that moment.

use serde_json::{Map, Value, json};

use super::Agents;
use super::bus::{Monitored, queue_payload};
use super::error::CommandError;
use crate::acd::live::load;
use crate::domain::time::now_ms;
use crate::store::agents::AgentRecord;
use crate::store::monitors::ALL_QUEUES;

/// Completes each caller's move monitored here once (the queue's counters read once for
/// every monitoring socket of this process), in the order published, until the process
/// stops.
pub(super) async fn complete_moves(
    agents: std::sync::Arc<Agents>,
    mut moves: tokio::sync::mpsc::UnboundedReceiver<super::bus::QueueMove>,
) {
    while let Some((app_id, queue, data)) = moves.recv().await {
        if let Some(frame) = agents.queue_event_frame(&app_id, &queue, &data).await {
            agents.bus.send_queue_frame(&app_id, &queue, &frame);
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
        let record = match self.store.find_queue(app_id, queue).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(error = %e, "queue unreadable; a queueEvent is not sent");
                return None;
            }
        };
        let live = match load(&self.store, &record).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "queue unreadable; a queueEvent is not sent");
                return None;
            }
        };
        let conversation = fields
            .get("conversationSid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let position = live
            .waiting
            .iter()
            .position(|(c, _)| c == conversation)
            .map_or(0, |i| i + 1);
        fields.insert("position".into(), position.into());
        fields.insert("agentState".into(), "".into());
        fields.insert("pauseCause".into(), "".into());
        if let Value::Object(counters) = live.counters(now_ms()).to_json() {
            fields.extend(counters);
        }
        Some(json!({"type": "queueEvent", "data": fields}).to_string())
    }
}

//! A queue's Live view (agents' contract §3.2, §8.4): the queueEvent counters, the waiting
//! callers and the members' states, computed from what is stored.

use serde_json::{Value, json};

use crate::agents::machine::{AgentState, Session};
use crate::cdr::format_time;
use crate::store::journal::WaitingRow;
use crate::store::queues::QueueRecord;
use crate::store::{Store, StoreError};

/// One member as the Live view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The agent.
    pub agent_no: String,
    /// Its agentState (`offline` when not logged in).
    pub state: AgentState,
    /// Its workStatus as a word (`offline` when not logged in).
    pub work_status: &'static str,
    /// Its pauseCause (`""` unless paused or in wrapup).
    pub pause_cause: String,
    /// When it entered its state, Unix ms (unknown when offline).
    pub since_ms: Option<i64>,
}

impl MemberView {
    /// A member from its stored session (`None`: logged out; a session that cannot be
    /// read counts as logged out too).
    pub fn of(agent_no: String, session: Option<&str>, since_ms: Option<i64>) -> Self {
        match session.and_then(|json| serde_json::from_str::<Session>(json).ok()) {
            Some(s) => Self {
                agent_no,
                state: s.state,
                work_status: s.work_status(),
                pause_cause: s.pause_cause().to_string(),
                since_ms,
            },
            None => Self {
                agent_no,
                state: AgentState::Offline,
                work_status: "offline",
                pause_cause: String::new(),
                since_ms: None,
            },
        }
    }

    fn to_json(&self, tz: chrono_tz::Tz) -> Value {
        json!({
            "agentNo": self.agent_no,
            "agentState": self.state.as_str(),
            "workStatus": self.work_status,
            "pauseCause": self.pause_cause,
            "since": self.since_ms.map(|ms| format_time(ms, tz)).unwrap_or_default(),
        })
    }
}

/// The counters of a queue (§8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Callers waiting.
    pub waiting: usize,
    /// The longest wait now, in seconds.
    pub longest_wait_secs: i64,
    /// Members ready.
    pub ready: usize,
    /// Members ringing or talking.
    pub busy: usize,
    /// Members paused.
    pub paused: usize,
    /// Members in wrapup.
    pub wrapup: usize,
    /// Members not logged in.
    pub offline: usize,
}

impl Counters {
    /// The counters of `members` with `waiting_since` the join times (Unix ms) of the
    /// waiting callers, at `now_ms`.
    pub fn of(members: &[MemberView], waiting_since: &[i64], now_ms: i64) -> Self {
        let mut c = Counters {
            waiting: waiting_since.len(),
            longest_wait_secs: waiting_since
                .iter()
                .map(|t| (now_ms - t).max(0) / 1000)
                .max()
                .unwrap_or(0),
            ..Counters::default()
        };
        for m in members {
            match m.state {
                AgentState::Ready => c.ready += 1,
                AgentState::Ringing | AgentState::Talking => c.busy += 1,
                AgentState::Pause => c.paused += 1,
                AgentState::Wrapup => c.wrapup += 1,
                AgentState::Offline => c.offline += 1,
            }
        }
        c
    }

    /// The queueEvent counter fields.
    pub fn to_json(&self) -> Value {
        json!({
            "waitingCount": self.waiting,
            "longestWaitSeconds": self.longest_wait_secs,
            "agentsReady": self.ready,
            "agentsBusy": self.busy,
            "agentsPaused": self.paused,
            "agentsWrapup": self.wrapup,
            "agentsOffline": self.offline,
        })
    }
}

/// The Live view of `queue` from what is stored now.
pub async fn load<'a>(store: &Store, queue: &'a QueueRecord) -> Result<Live<'a>, StoreError> {
    let members = store
        .queue_members(&queue.app_id, &queue.queue_sid)
        .await?
        .into_iter()
        .map(|m| MemberView::of(m.agent_no, m.session.as_deref(), m.state_since))
        .collect();
    Ok(Live {
        app_sid: &queue.app_id,
        queue_sid: &queue.queue_sid,
        queue_name: &queue.settings.name,
        members,
        waiting: store.waiting_in(&queue.app_id, &queue.queue_sid).await?,
    })
}

/// What the Live view is made of.
#[derive(Debug, Clone)]
pub struct Live<'a> {
    /// The application.
    pub app_sid: &'a str,
    /// The queue.
    pub queue_sid: &'a str,
    /// Its name.
    pub queue_name: &'a str,
    /// Its members.
    pub members: Vec<MemberView>,
    /// The waiting callers by conversation, in line order.
    pub waiting: Vec<(String, WaitingRow)>,
}

impl Live<'_> {
    /// The queue's counters now.
    pub fn counters(&self, now_ms: i64) -> Counters {
        let since: Vec<i64> = self.waiting.iter().map(|(_, w)| w.join_at).collect();
        Counters::of(&self.members, &since, now_ms)
    }

    /// The queue, its `counters` and the time: a counters-only queueEvent's fields.
    pub fn counters_json(&self, counters: &Counters, now_ms: i64, tz: chrono_tz::Tz) -> Value {
        let mut out = json!({
            "appSid": self.app_sid,
            "queueSid": self.queue_sid,
            "queueName": self.queue_name,
        });
        if let (Value::Object(out), Value::Object(counters)) = (&mut out, counters.to_json()) {
            out.extend(counters);
            out.insert("timestamp".into(), format_time(now_ms, tz).into());
        }
        out
    }

    /// `{"queue":{…}}`'s object: counters, `members` (the waiting callers) and `agents`.
    pub fn to_json(&self, now_ms: i64, tz: chrono_tz::Tz) -> Value {
        let mut out = self.counters_json(&self.counters(now_ms), now_ms, tz);
        if let Value::Object(out) = &mut out {
            let callers = self
                .waiting
                .iter()
                .enumerate()
                .map(|(i, (conversation, w))| {
                    json!({
                        "callSid": w.call_sid,
                        "conversationSid": conversation,
                        "userNumber": w.user_number,
                        "joinType": w.join_type.to_string(),
                        "joinTime": format_time(w.join_at, tz),
                        "waitSeconds": (now_ms - w.join_at).max(0) / 1000,
                        "position": i + 1,
                    })
                })
                .collect();
            out.insert("members".into(), Value::Array(callers));
            out.insert(
                "agents".into(),
                self.members.iter().map(|m| m.to_json(tz)).collect(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(state: AgentState) -> MemberView {
        MemberView {
            agent_no: "a".into(),
            state,
            work_status: "ready",
            pause_cause: String::new(),
            since_ms: Some(0),
        }
    }

    #[test]
    fn counters_sort_members_by_state() {
        let members: Vec<MemberView> = [
            AgentState::Ready,
            AgentState::Ringing,
            AgentState::Talking,
            AgentState::Pause,
            AgentState::Wrapup,
            AgentState::Offline,
            AgentState::Offline,
        ]
        .into_iter()
        .map(member)
        .collect();
        let c = Counters::of(&members, &[1_000, 5_500], 10_000);
        assert_eq!(
            c.to_json(),
            json!({"waitingCount": 2, "longestWaitSeconds": 9, "agentsReady": 1, "agentsBusy": 2,
                "agentsPaused": 1, "agentsWrapup": 1, "agentsOffline": 2})
        );
        assert_eq!(
            MemberView::of("x".into(), Some("not json"), Some(1)).state,
            AgentState::Offline
        );
    }
}

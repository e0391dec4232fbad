//! `transfer` (agents' contract §7.1): the agent hands its caller to another agent, a
//! queue or an outside number without asking first. The target is checked here (an agent
//! logged in and ready, a queue that exists, a valid number) and resolved into what the
//! conversation needs; the conversation, wherever it is driven, does the rest.

use serde_json::{Map, Value, json};

use super::Agents;
use super::commands::param;
use super::error::CommandError;
use super::machine::{AgentState, CommandName};
use crate::domain::PhoneNumber;
use crate::orchestrator::flows::agent_call::{AgentOrder, TransferTo};
use crate::store::agent_calls::NotInPool;
use crate::store::agents::AgentRecord;

/// What a transfer's `targetType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetType {
    Agent,
    Queue,
    Number,
}

impl TargetType {
    fn from_wire(word: &str) -> Option<Self> {
        match word {
            "agent" => Some(Self::Agent),
            "queue" => Some(Self::Queue),
            "number" => Some(Self::Number),
            _ => None,
        }
    }
}

impl Agents {
    /// `transfer` by `agent`, talking with a caller: params `targetType` and `target`.
    pub(super) async fn transfer(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        self.allowed(app_id, &agent.agent_no, CommandName::Transfer)
            .await?;
        let kind = param(params, "targetType")?
            .as_deref()
            .and_then(TargetType::from_wire)
            .ok_or_else(|| {
                CommandError::Param("invalid targetType (agent, queue or number)".into())
            })?;
        let target = param(params, "target")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CommandError::Param("target is required".into()))?;
        let to = match kind {
            TargetType::Agent => self.transfer_agent(app_id, agent, target).await?,
            TargetType::Queue => self.transfer_queue(app_id, target).await?,
            TargetType::Number => self.transfer_number(app_id, agent, &target).await?,
        };
        self.send_order(app_id, &agent.agent_no, AgentOrder::Transfer(to))
            .await?
            .ok_or_else(|| CommandError::WrongCallState("the agent has no call".into()))?;
        Ok(json!({}))
    }

    /// Another agent of the application, logged in (20107) and ready (20108).
    async fn transfer_agent(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        target: String,
    ) -> Result<TransferTo, CommandError> {
        if target == agent.agent_no {
            return Err(CommandError::TargetIsSelf);
        }
        if self.store.find_agent(app_id, &target).await?.is_none() {
            return Err(CommandError::TargetNotFound);
        }
        let session = self
            .session_of(app_id, &target)
            .await?
            .ok_or(CommandError::TargetNotFound)?;
        if session.state != AgentState::Ready {
            return Err(CommandError::TargetUnavailable);
        }
        Ok(TransferTo::Agent(target))
    }

    /// A queue of the application (20003), with the queues its overflows reach.
    async fn transfer_queue(
        &self,
        app_id: &str,
        queue: String,
    ) -> Result<TransferTo, CommandError> {
        let orchestrator = self
            .orchestrator()
            .ok_or_else(|| CommandError::NoMedia("this process places no calls".into()))?;
        if self.store.find_queue(app_id, &queue).await?.is_none() {
            return Err(CommandError::QueueNotFound);
        }
        let app = self
            .store
            .find_app_by_id(app_id)
            .await?
            .ok_or(CommandError::QueueNotFound)?;
        let plans = orchestrator.queue_plans(&app, &queue).await;
        Ok(TransferTo::Queue { queue, plans })
    }

    /// An outside number, shown the caller id the agent's callOut would show.
    async fn transfer_number(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        target: &str,
    ) -> Result<TransferTo, CommandError> {
        let number = PhoneNumber::parse("target", target)?.to_string();
        let pool = Some(agent.caller_id_pool_sid.as_str()).filter(|p| !p.is_empty());
        let caller_id = self
            .store
            .agent_caller_id(app_id, pool, "")
            .await?
            .map_err(|NotInPool| CommandError::DisplayNumNotAllowed)?;
        let app = self.store.find_app_by_id(app_id).await?;
        let account = match &app {
            Some(app) => self.store.find_account(&app.account_sid).await?,
            None => None,
        };
        Ok(TransferTo::Number {
            number,
            caller_id,
            timeout_secs: account.map_or(45, |a| a.answer_timeout).clamp(1, 600) as u32,
        })
    }
}

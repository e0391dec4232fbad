//! `transfer` and `consult` (agents' contract §7.1): the agent hands its caller to another
//! agent, a queue or an outside number without asking first, or calls an agent or a
//! number while the caller waits. The target is checked here (an agent logged in and
//! ready — claimed for a consult —, a queue that exists, a valid number) and resolved into
//! what the conversation needs; the conversation, wherever it is driven, does the rest.

use serde_json::{Map, Value, json};

use super::Agents;
use super::commands::param;
use super::error::CommandError;
use super::machine::{AgentState, CommandName};
use crate::domain::PhoneNumber;
use crate::orchestrator::flows::StoredAgentConversation;
use crate::orchestrator::flows::orders::{AgentOrder, ConsultTo, OutsideNumber, TransferTo};
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
    fn word(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Queue => "queue",
            Self::Number => "number",
        }
    }

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
        let (kind, target) = target(
            params,
            &[TargetType::Agent, TargetType::Queue, TargetType::Number],
        )?;
        let to = match kind {
            TargetType::Agent => self.transfer_agent(app_id, agent, target).await?,
            TargetType::Queue => self.transfer_queue(app_id, target).await?,
            TargetType::Number => {
                TransferTo::Number(self.outside_number(app_id, agent, &target).await?)
            }
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

    /// `consult` by `agent`, talking with a caller: params `targetType` (`agent` or
    /// `number`) and `target`. An agent target is claimed (`ringing`) before the
    /// conversation is asked, and released if it refuses.
    pub(super) async fn consult(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        self.allowed(app_id, &agent.agent_no, CommandName::Consult)
            .await?;
        let (kind, target) = target(params, &[TargetType::Agent, TargetType::Number])?;
        let numbers = self.caller_numbers(app_id, &agent.agent_no).await?;
        let to = match kind {
            TargetType::Agent if target == agent.agent_no => {
                return Err(CommandError::TargetIsSelf);
            }
            TargetType::Agent => {
                ConsultTo::Agent(self.claim_offer(app_id, &target, numbers, "").await?)
            }
            _ => ConsultTo::Number(self.outside_number(app_id, agent, &target).await?),
        };
        let claimed = matches!(to, ConsultTo::Agent(_)).then_some(target.as_str());
        let no_call = CommandError::WrongCallState("the agent has no call".into());
        let order = AgentOrder::Consult(to);
        self.order_claimed(app_id, &agent.agent_no, order, claimed, no_call)
            .await
    }

    /// The DID (a callOut's caller id) and the user's number of the conversation
    /// `agent_no` talks in, for what an offered device shows.
    pub(super) async fn caller_numbers(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<(String, String), CommandError> {
        let legs = self.store.agent_legs(app_id, agent_no).await?;
        let mine = legs
            .iter()
            .find(|l| l.agent_no.as_deref() == Some(agent_no) && l.end_at.is_none())
            .and_then(|l| l.conversation_id.clone());
        let stored = legs
            .iter()
            .find(|l| l.leg_seq == 0 && l.conversation_id == mine && mine.is_some())
            .and_then(|l| serde_json::from_str::<StoredAgentConversation>(&l.params).ok());
        match stored {
            Some(StoredAgentConversation::Inbound { inbound }) => {
                Ok((inbound.did.clone(), inbound.user_number.clone()))
            }
            // A callOut: its caller id stands for the DID.
            Some(StoredAgentConversation::CallOut(call)) => Ok((
                call.caller_id.clone().unwrap_or_default(),
                call.user_number.clone(),
            )),
            None => Err(CommandError::WrongCallState("the agent has no call".into())),
        }
    }

    /// An outside number (10004), with the caller id the agent's callOut would show and
    /// how long it rings (the account's answerTimeout).
    async fn outside_number(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        target: &str,
    ) -> Result<OutsideNumber, CommandError> {
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
        let timeout_secs = account.map_or(45, |a| a.answer_timeout).clamp(1, 600) as u32;
        Ok(OutsideNumber {
            number,
            caller_id,
            timeout_secs,
        })
    }
}

/// A transfer's or consult's `targetType` (one of `allowed`, else 10004) and `target`.
fn target(
    params: &Map<String, Value>,
    allowed: &[TargetType],
) -> Result<(TargetType, String), CommandError> {
    let words: Vec<&str> = allowed.iter().map(|t| t.word()).collect();
    let kind = param(params, "targetType")?
        .as_deref()
        .and_then(TargetType::from_wire)
        .filter(|t| allowed.contains(t))
        .ok_or_else(|| CommandError::Param(format!("invalid targetType ({})", words.join(", "))))?;
    let target = param(params, "target")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CommandError::Param("target is required".into()))?;
    Ok((kind, target))
}

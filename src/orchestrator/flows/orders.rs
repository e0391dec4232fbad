//! What an agent or a supervisor asks of a conversation (agents' contract §7.1, §7.2),
//! as the conversation's script ([`super::agent`]) receives it: the order and, for the
//! orders that dial someone, whom (already claimed where it is an agent).

use serde::{Deserialize, Serialize};

/// What an agent asks of its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentOrder {
    /// `hangup`: end the call (cancel a callOut still ringing).
    Hangup,
    /// `forceHangup` of a supervisor: end the connected call, every leg (byeType 6).
    ForceHangup,
    /// `sendDtmf` toward the user.
    SendDtmf(String),
    /// `setUserData`: the conversation's userData from now on.
    SetUserData(String),
    /// `holdCall`: the user hears the music on hold.
    Hold,
    /// `retrieveCall`: the user and the agent talk again.
    Retrieve,
    /// `answer` / `bridge`: connect an offer the device answered by itself.
    Bridge,
    /// `transfer`: the agent leaves; the user goes to an agent, a queue or a number.
    Transfer(TransferTo),
    /// `consult`: the user waits with music while the agent calls another agent (claimed
    /// already: its offer) or a number.
    Consult(ConsultTo),
    /// `consultTransfer`: the user and the consulted party talk; the agent leaves.
    ConsultTransfer,
    /// `consultConference`: the user, the agent and the consulted party talk together.
    ConsultConference,
    /// `cancelConsult`: the consulted party is hung up; the agent and the user talk again.
    CancelConsult,
    /// `monitor`, `whisper`, `barge` of a supervisor on the agent's leg.
    Monitor(Supervision),
    /// `intercept`: a supervisor takes the agent's call over.
    Intercept(Interception),
}

/// A supervisor taking an agent's call over (agents' contract §7.2 `intercept`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interception {
    /// The supervisor.
    pub supervisor: String,
    /// Its leg's offer, the supervisor claimed for it; `None`: it listens in already.
    pub offer: Option<super::agent::Offer>,
}

/// A supervisor listening in on an agent's leg (agents' contract §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supervision {
    /// The supervisor.
    pub supervisor: String,
    /// Its leg's offer, the supervisor claimed for it; `None`: it listens in already and
    /// only the mode changes.
    pub offer: Option<super::agent::Offer>,
    /// How it listens.
    pub mode: crate::domain::agent_call::MonitorMode,
}

/// An outside number a transfer or consult dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutsideNumber {
    /// The number dialled.
    pub number: String,
    /// The caller id it sees (`None`: the gateway's default).
    pub caller_id: Option<String>,
    /// Seconds it rings.
    pub timeout_secs: u32,
}

/// Whom a `consult` calls (agents' contract §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsultTo {
    /// An agent, claimed for it (its session `ringing`).
    Agent(super::agent::Offer),
    /// An outside number.
    Number(OutsideNumber),
}

/// Where a `transfer` sends the user (agents' contract §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransferTo {
    /// An agent, offered the user as a transfer (callSubtype 3).
    Agent(String),
    /// A queue, joined at its tail (joinType 2).
    Queue {
        /// The queue.
        queue: String,
        /// It and the queues its overflows reach.
        plans: std::collections::BTreeMap<String, super::agent::QueuePlan>,
    },
    /// An outside number, bridged with the user once it answers.
    Number(OutsideNumber),
}

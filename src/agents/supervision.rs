//! Supervisors acting on another agent (agents' contract §7.2): `forceReady`,
//! `forcePause` and `forceLogout` step the target's session as if it had asked itself, its
//! statusEvent carrying `forcedBy` (readyCause, pauseCause or logoutCause `forced`);
//! `forceHangup` ends the target's call, every leg of it (byeType 6).

use serde_json::{Map, Value, json};

use super::Agents;
use super::commands::{param, pause_cause};
use super::error::CommandError;
use super::machine::{AgentState, CommandName, Input, LogoutCause};
use crate::domain::agent::AgentRole;
use crate::domain::agent_call::MonitorMode;
use crate::orchestrator::flows::orders::{AgentOrder, Interception, Supervision};
use crate::store::agents::AgentRecord;

/// The state a supervisor forces.
#[derive(Debug, Clone)]
enum Forced {
    Ready,
    Pause(String),
    Logout,
}

impl Forced {
    /// The command's forced state, its params read.
    fn of(name: CommandName, params: &Map<String, Value>) -> Result<Self, CommandError> {
        Ok(match name {
            CommandName::ForceReady => Forced::Ready,
            CommandName::ForceLogout => Forced::Logout,
            // The default cause is the platform's `forced`, which a supervisor may name.
            _ => match param(params, "pauseCause")?.as_deref() {
                None | Some("" | "forced") => Forced::Pause("forced".into()),
                Some(_) => Forced::Pause(pause_cause(params)?),
            },
        })
    }

    /// The target's input, forced by `by`.
    fn input(&self, by: &str) -> Input {
        let forced_by = by.to_string();
        match self {
            Forced::Ready => Input::Ready { forced_by },
            Forced::Pause(cause) => Input::Pause {
                cause: cause.clone(),
                forced_by,
            },
            Forced::Logout => Input::Logout {
                cause: LogoutCause::Forced,
                forced_by,
            },
        }
    }
}

impl Agents {
    /// `forceReady`, `forcePause` or `forceLogout` (`name`) by `supervisor` on the agent its
    /// params name. A logout of an agent in a call waits for the call's end: data
    /// `{"deferred":"1"}`.
    pub(super) async fn force_state(
        &self,
        app_id: &str,
        supervisor: &AgentRecord,
        name: CommandName,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        let target = self.supervised(app_id, supervisor, params).await?;
        let forced = Forced::of(name, params)?;
        let by = supervisor.agent_no.clone();
        let (deferred, _) = self
            .change(app_id, &target, move |current| {
                let current = current.ok_or(CommandError::TargetNotFound)?;
                let deferred = matches!(forced, Forced::Logout) && current.session.in_call();
                Ok((Some(forced.input(&by)), deferred))
            })
            .await?;
        Ok(if deferred {
            json!({"deferred": "1"})
        } else {
            json!({})
        })
    }

    /// `forceHangup` by `supervisor` of the call of the agent its params name, which must
    /// be talking (20108): every leg of its conversation ends, byeType 6, each agent's own
    /// leg `completed` with completedCause `forced`.
    pub(super) async fn force_hangup(
        &self,
        app_id: &str,
        supervisor: &AgentRecord,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        let target = self
            .busy_target(app_id, supervisor, params, &[AgentState::Talking])
            .await?;
        self.send_order(app_id, &target, AgentOrder::ForceHangup)
            .await?
            .ok_or(CommandError::TargetUnavailable)?;
        Ok(json!({}))
    }

    /// `monitor`, `whisper`, `barge` or `intercept` (`name`) by `supervisor` on the agent
    /// its params name, which must be talking with a caller (20108). A supervisor not yet
    /// listening to it is claimed (`ringing`) and its device dialled (into the agent's
    /// channel, or to take the call over); one listening already changes the mode or
    /// takes the call over at once.
    pub(super) async fn supervise(
        &self,
        app_id: &str,
        supervisor: &AgentRecord,
        name: CommandName,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        // intercept also takes an offer still ringing (抢接).
        let busy: &[AgentState] = match name {
            CommandName::Intercept => &[AgentState::Talking, AgentState::Ringing],
            _ => &[AgentState::Talking],
        };
        let target = self.busy_target(app_id, supervisor, params, busy).await?;
        let own = self
            .allowed(app_id, &supervisor.agent_no, name)
            .await?
            .map_or(AgentState::Offline, |s| s.state);
        let mode = match name {
            CommandName::Whisper => MonitorMode::Whisper,
            CommandName::Barge => MonitorMode::Barge,
            _ => MonitorMode::Monitor,
        };
        let numbers = self.caller_numbers(app_id, &target).await?;
        let me = supervisor.agent_no.clone();
        let offer = match own {
            AgentState::Talking => None,
            _ => {
                let from = &[AgentState::Ready, AgentState::Pause, AgentState::Wrapup];
                Some(self.claim_in(app_id, &me, numbers, "", from).await?)
            }
        };
        let claimed = offer.is_some();
        let order = match name {
            CommandName::Intercept => AgentOrder::Intercept(Interception {
                supervisor: me.clone(),
                offer,
            }),
            _ => AgentOrder::Monitor(Supervision {
                supervisor: me.clone(),
                offer,
                mode,
            }),
        };
        let claimed = claimed.then_some(me.as_str());
        let no_call = CommandError::TargetUnavailable;
        self.order_claimed(app_id, &target, order, claimed, no_call)
            .await
    }

    /// The agent a supervisor's command names, which must be in one of `states` (else
    /// 20108).
    async fn busy_target(
        &self,
        app_id: &str,
        supervisor: &AgentRecord,
        params: &Map<String, Value>,
        states: &[AgentState],
    ) -> Result<String, CommandError> {
        let target = self.supervised(app_id, supervisor, params).await?;
        let session = self
            .session_of(app_id, &target)
            .await?
            .ok_or(CommandError::TargetNotFound)?;
        if !states.contains(&session.state) {
            return Err(CommandError::TargetUnavailable);
        }
        Ok(target)
    }

    /// The agent a supervisor's command names (param `agentNo`): `supervisor` must be one
    /// (20106), the agent another agent of the application (20113, 20107).
    async fn supervised(
        &self,
        app_id: &str,
        supervisor: &AgentRecord,
        params: &Map<String, Value>,
    ) -> Result<String, CommandError> {
        if supervisor.role != AgentRole::Supervisor {
            return Err(CommandError::SupervisorRequired);
        }
        let target = param(params, "agentNo")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CommandError::Param("agentNo is required".into()))?;
        if target == supervisor.agent_no {
            return Err(CommandError::TargetIsSelf);
        }
        if self.store.find_agent(app_id, &target).await?.is_none() {
            return Err(CommandError::TargetNotFound);
        }
        Ok(target)
    }
}

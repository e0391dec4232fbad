//! Agent commands (agents' contract §7.1) as the socket and the REST endpoint (§5) run
//! them: the name and params read, the §6 table checked against the agent's session, the
//! machine stepped, the reply's `data` built.

use serde_json::{Map, Value, json};

use super::Agents;
use super::error::CommandError;
use super::machine::{AgentState, Choice, CommandName, Input, LogoutCause, Session, check};
use crate::cdr::format_time;
use crate::domain::agent::AgentRole;
use crate::domain::agent::PhoneType;
use crate::domain::time::now_ms;
use crate::store::agents::AgentRecord;

/// Where a command came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The agent's socket.
    Socket,
    /// `POST …/Agents/{agentNo}/Commands`.
    Rest,
}

/// The pause causes only the platform gives.
const RESERVED_CAUSES: &[&str] = &["wrapup", "no-answer", "rejected", "forced"];

/// A param as a string: strings as they are, numbers and booleans as their text (params
/// carry strings, management-style numbers are accepted).
pub(super) fn param(
    params: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, CommandError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(CommandError::Param(format!("{name} must be a string"))),
    }
}

/// Checks a client's pauseCause: 1–32 characters, no control characters, not reserved.
pub(super) fn pause_cause(params: &Map<String, Value>) -> Result<String, CommandError> {
    let Some(cause) = param(params, "pauseCause")?.filter(|c| !c.is_empty()) else {
        return Ok(String::new());
    };
    if cause.chars().count() > 32 || cause.chars().any(char::is_control) {
        return Err(CommandError::Param(
            "invalid pauseCause (1-32 characters, no control characters)".into(),
        ));
    }
    if RESERVED_CAUSES.contains(&cause.as_str()) {
        return Err(CommandError::Param(format!(
            "invalid pauseCause: {cause} is the platform's own"
        )));
    }
    Ok(cause)
}

/// `workStatus` as PhoneKit's number: 0 offline, 1 ready, 2 not ready.
fn work_status_number(session: Option<&Session>) -> &'static str {
    match session.map(|s| s.state) {
        None => "0",
        Some(AgentState::Ready) => "1",
        Some(_) => "2",
    }
}

impl Agents {
    /// The auth reply's `data` (PhoneKit's `initial`), also the login reply.
    pub fn initial_data(
        &self,
        agent: &AgentRecord,
        session: Option<(&str, &Session, i64)>,
        resumed: bool,
    ) -> Value {
        let phone_type = session.map_or(agent.phone_type, |(_, s, _)| s.phone_type);
        json!({
            "agentNo": agent.agent_no,
            "name": agent.name,
            "role": agent.role.as_str(),
            "phoneType": phone_type.code().to_string(),
            "workStatus": work_status_number(session.map(|(_, s, _)| s)),
            "agentState": session.map_or("offline", |(_, s, _)| s.state.as_str()),
            "pauseCause": session.map(|(_, s, _)| s.pause_cause()).unwrap_or_default(),
            "pstnNumber": agent.pstn_number,
            "sipNumber": agent.sip_number,
            "sipPwd": if phone_type == PhoneType::WebPhone { agent.sip_pwd.as_str() } else { "" },
            "sipDomain": self.settings.sip_domain,
            "wsAddr": self.settings.webphone_wss,
            "sessionSid": session.map(|(sid, _, _)| sid).unwrap_or_default(),
            "lastSeq": session.map_or(0, |(_, _, seq)| seq).to_string(),
            "resumed": if resumed { "1" } else { "0" },
        })
    }

    /// Runs command `cmd` with `params` as `agent` of application `app_id`; the reply's
    /// `data`. `attached` says whether a socket is attached to the agent (a REST login
    /// without one makes a socketless session).
    pub async fn run(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        cmd: &str,
        params: &Map<String, Value>,
        origin: Origin,
        attached: bool,
    ) -> Result<Value, CommandError> {
        let name = CommandName::from_wire(cmd).ok_or(CommandError::UnknownCommand)?;
        if origin == Origin::Rest
            && matches!(
                name,
                CommandName::Ping | CommandName::MonitorQueues | CommandName::UnmonitorQueues
            )
        {
            return Err(CommandError::Param(format!("{cmd} is a socket command")));
        }
        if !agent.enabled && name == CommandName::Login {
            return Err(CommandError::AgentDisabled);
        }
        let table = move |current: &Option<super::Current<'_>>| {
            check(
                name,
                current
                    .as_ref()
                    .map_or(AgentState::Offline, |c| c.session.state),
            )
        };
        match name {
            CommandName::Ping => {
                Ok(json!({"serverTime": format_time(now_ms(), self.settings.timezone)}))
            }
            CommandName::GetState => self.get_state(app_id, agent).await,
            CommandName::Login => {
                let phone_type = match param(params, "phoneType")?.filter(|p| !p.is_empty()) {
                    None => agent.phone_type,
                    Some(p) => p
                        .parse::<i64>()
                        .ok()
                        .and_then(PhoneType::from_code)
                        .ok_or_else(|| CommandError::Param("phoneType must be 1, 2 or 3".into()))?,
                };
                let choice = match param(params, "workStatus")?
                    .as_deref()
                    .filter(|w| !w.is_empty())
                {
                    None | Some("1") => Choice::Ready,
                    Some("2") => Choice::Pause {
                        cause: pause_cause(params)?,
                    },
                    Some(_) => return Err(CommandError::Param("workStatus must be 1 or 2".into())),
                };
                if phone_type == PhoneType::Pstn && agent.pstn_number.is_empty() {
                    return Err(CommandError::NoPstnNumber);
                }
                if phone_type == PhoneType::Sip {
                    self.check_registered(agent).await?;
                }
                let agent = if phone_type == PhoneType::WebPhone {
                    self.rotate_sip_pwd(app_id, agent).await?
                } else {
                    agent.clone()
                };
                let socketless = origin == Origin::Rest && !attached;
                let (_, changed) = self
                    .change(app_id, &agent.agent_no, move |current| {
                        table(&current)?;
                        Ok((
                            Some(Input::Login {
                                phone_type,
                                choice: choice.clone(),
                                socketless,
                            }),
                            (),
                        ))
                    })
                    .await?;
                Ok(self.initial_data(
                    &agent,
                    changed
                        .session
                        .as_ref()
                        .map(|s| (changed.sid.as_str(), s, changed.last_seq)),
                    false,
                ))
            }
            CommandName::Logout => {
                let (phone_type, _) = self
                    .change(app_id, &agent.agent_no, move |current| {
                        table(&current)?;
                        let phone_type = current.as_ref().map(|c| c.session.phone_type);
                        Ok((
                            Some(Input::Logout {
                                cause: LogoutCause::Own,
                                forced_by: String::new(),
                            }),
                            phone_type,
                        ))
                    })
                    .await?;
                if phone_type == Some(PhoneType::WebPhone) {
                    self.rotate_sip_pwd(app_id, agent).await?;
                }
                Ok(json!({}))
            }
            CommandName::Ready => {
                self.change(app_id, &agent.agent_no, move |current| {
                    table(&current)?;
                    Ok((
                        Some(Input::Ready {
                            forced_by: String::new(),
                        }),
                        (),
                    ))
                })
                .await?;
                Ok(json!({}))
            }
            CommandName::Pause => {
                let cause = pause_cause(params)?;
                self.change(app_id, &agent.agent_no, move |current| {
                    table(&current)?;
                    Ok((
                        Some(Input::Pause {
                            cause: cause.clone(),
                            forced_by: String::new(),
                        }),
                        (),
                    ))
                })
                .await?;
                Ok(json!({}))
            }
            CommandName::CallOut => self.call_out(app_id, agent, params).await,
            CommandName::Hangup
            | CommandName::SendDtmf
            | CommandName::SetUserData
            | CommandName::HoldCall
            | CommandName::RetrieveCall
            | CommandName::Answer
            | CommandName::Bridge
            | CommandName::ConsultTransfer
            | CommandName::ConsultConference
            | CommandName::CancelConsult => self.order_call(app_id, agent, name, params).await,
            CommandName::ForceReady | CommandName::ForcePause | CommandName::ForceLogout => {
                self.force_state(app_id, agent, name, params).await
            }
            CommandName::ForceHangup => self.force_hangup(app_id, agent, params).await,
            CommandName::Monitor
            | CommandName::Whisper
            | CommandName::Barge
            | CommandName::Intercept => self.supervise(app_id, agent, name, params).await,
            CommandName::Transfer => self.transfer(app_id, agent, params).await,
            CommandName::Consult => self.consult(app_id, agent, params).await,
            CommandName::MonitorQueues | CommandName::UnmonitorQueues => {
                if agent.role != AgentRole::Supervisor {
                    return Err(CommandError::SupervisorRequired);
                }
                self.allowed(app_id, &agent.agent_no, name).await?;
                let on = name == CommandName::MonitorQueues;
                self.monitor_queues(app_id, agent, params, on).await
            }
        }
    }

    async fn get_state(&self, app_id: &str, agent: &AgentRecord) -> Result<Value, CommandError> {
        let stored = self.store.live_session(app_id, &agent.agent_no).await?;
        let session = stored
            .as_ref()
            .and_then(|s| serde_json::from_str::<Session>(&s.session).ok());
        Ok(json!({
            "agentNo": agent.agent_no,
            "workStatus": session.as_ref().map_or("offline", Session::work_status),
            "agentState": session.as_ref().map_or("offline", |s| s.state.as_str()),
            "pauseCause": session.as_ref().map(Session::pause_cause).unwrap_or_default(),
            "phoneType": session.as_ref().map_or(agent.phone_type, |s| s.phone_type).code().to_string(),
            "sessionSid": stored.as_ref().map(|s| s.session_sid.as_str()).unwrap_or_default(),
            "lastSeq": stored.as_ref().map_or(0, |s| s.last_seq).to_string(),
            "calls": self.calls_of(app_id, &agent.agent_no).await?,
        }))
    }

    /// A SIP phone must be registered to log in with it (20109), asked of the media
    /// servers; a process without them (the CLI) does not check.
    async fn check_registered(&self, agent: &AgentRecord) -> Result<(), CommandError> {
        let Some(orchestrator) = self.orchestrator() else {
            return Ok(());
        };
        match orchestrator.registered(&agent.sip_number).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(CommandError::NotRegistered),
            Err(e) => Err(CommandError::NoMedia(format!(
                "cannot ask the media servers about the SIP device: {e}"
            ))),
        }
    }

    /// Hands the agent a new sipPwd (each WebPhone login and logout, §11.3).
    async fn rotate_sip_pwd(
        &self,
        app_id: &str,
        agent: &AgentRecord,
    ) -> Result<AgentRecord, CommandError> {
        let change = crate::domain::agent::AgentSpec {
            rotate_sip_pwd: true,
            ..Default::default()
        };
        self.store
            .update_agent(app_id, &agent.agent_no, &change, None)
            .await
            .map_err(|e| match e {
                crate::store::agents::AgentWriteError::Store(e) => CommandError::Unavailable(e),
                _ => CommandError::AuthFailed,
            })
    }
}

//! The agent state machine of agents' contract §6, pure: `(session, input, now) →
//! (session, statusEvents)`. A session is an agent's time from login to logout; `None`
//! is an agent that is offline. Which commands each state allows is [`check`].

use serde::{Deserialize, Serialize};

use crate::domain::agent::PhoneType;

/// `agentState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Not logged in.
    Offline,
    /// Available: calls are offered.
    Ready,
    /// Logged in, not available.
    Pause,
    /// A call is being set up for the agent.
    Ringing,
    /// Connected to at least one party.
    Talking,
    /// After a connected call, for wrapupTime.
    Wrapup,
}

impl AgentState {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Ready => "ready",
            Self::Pause => "pause",
            Self::Ringing => "ringing",
            Self::Talking => "talking",
            Self::Wrapup => "wrapup",
        }
    }
}

/// The chosen state: the latest ready or pause (own or forced), taken after wrapup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "work", rename_all = "lowercase")]
pub enum Choice {
    /// Ready.
    Ready,
    /// Pause, with its cause.
    Pause {
        /// `pauseCause`.
        cause: String,
    },
}

/// Why an agent was logged out (`logoutCause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogoutCause {
    /// It asked (`""`).
    Own,
    /// Its socket was gone past the grace period.
    Disconnected,
    /// A supervisor.
    Forced,
    /// The agent was disabled.
    Disabled,
}

impl LogoutCause {
    fn as_str(self) -> &'static str {
        match self {
            Self::Own => "",
            Self::Disconnected => "disconnected",
            Self::Forced => "forced",
            Self::Disabled => "disabled",
        }
    }
}

/// An agent's logged-in session as the machine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `agentState` (never offline inside a session).
    pub state: AgentState,
    /// What the agent becomes after wrapup.
    pub chosen: Choice,
    /// The device of this session.
    pub phone_type: PhoneType,
    /// When wrapup ends (Unix ms), in wrapup.
    pub wrapup_until: Option<i64>,
    /// When the session is logged out for want of a socket (Unix ms), if its socket is gone.
    pub grace_until: Option<i64>,
    /// Logged in over REST and no socket has attached since: no grace rule.
    pub socketless: bool,
    /// A logout waiting for the agent's call to end.
    pub pending_logout: Option<LogoutCause>,
    /// The supervisor who forced the waiting logout, if one did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pending_forced_by: String,
}

impl Session {
    /// `pauseCause` now: the chosen cause in pause, `wrapup` in wrapup, else `""`.
    pub fn pause_cause(&self) -> &str {
        match (self.state, &self.chosen) {
            (AgentState::Wrapup, _) => "wrapup",
            (AgentState::Pause, Choice::Pause { cause }) => cause,
            _ => "",
        }
    }

    /// workStatus as a word: ready, pause (pause or wrapup), or the chosen one in a call.
    pub fn work_status(&self) -> &'static str {
        match self.state {
            AgentState::Ready => "ready",
            AgentState::Pause | AgentState::Wrapup => "pause",
            _ => match self.chosen {
                Choice::Ready => "ready",
                Choice::Pause { .. } => "pause",
            },
        }
    }

    /// The earliest timer of the session (Unix ms).
    pub fn due_at(&self) -> Option<i64> {
        match (self.wrapup_until, self.grace_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the agent has a call ringing or connected.
    pub fn in_call(&self) -> bool {
        matches!(self.state, AgentState::Ringing | AgentState::Talking)
    }
}

/// `statusEvent` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusName {
    /// Logged in (or re-logged in).
    Login,
    /// Logged out.
    Logout,
    /// Became ready.
    Ready,
    /// Paused.
    Pause,
    /// Ready again after wrapup.
    AutoReady,
    /// A connected call ended: wrapup begins.
    Completed,
}

impl StatusName {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Ready => "ready",
            Self::Pause => "pause",
            Self::AutoReady => "autoReady",
            Self::Completed => "completed",
        }
    }
}

/// One statusEvent, without what the runtime adds (appSid, agentNo, sessionSid, timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// eventName.
    pub name: StatusName,
    /// `ready`, `pause` or `offline`.
    pub work_status: &'static str,
    /// When pause: its cause (`wrapup` in wrapup).
    pub pause_cause: String,
    /// Seconds of wrapup, on `completed`.
    pub wrapup_time: Option<i64>,
    /// `""`, `wrapup` or `forced`.
    pub ready_cause: &'static str,
    /// The session's device.
    pub phone_type: PhoneType,
    /// On logout: why.
    pub logout_cause: &'static str,
    /// The supervisor who forced it, if one did.
    pub forced_by: String,
}

/// What happens to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `login` (also a re-login).
    Login {
        /// The device.
        phone_type: PhoneType,
        /// Ready or pause.
        choice: Choice,
        /// A new session has no socket (a REST login): no grace rule until one attaches.
        socketless: bool,
    },
    /// `logout`, or the platform logging the agent out.
    Logout {
        /// Why.
        cause: LogoutCause,
        /// The supervisor, when forced.
        forced_by: String,
    },
    /// `ready` (or forceReady).
    Ready {
        /// The supervisor, when forced.
        forced_by: String,
    },
    /// `pause` (or forcePause).
    Pause {
        /// `pauseCause`.
        cause: String,
        /// The supervisor, when forced.
        forced_by: String,
    },
    /// A call is being set up for the agent (callOut accepted).
    CallStarted,
    /// The agent is connected to a party.
    CallConnected,
    /// An offer rang the agent and was not taken: not answered in time or the device
    /// failed (`no-answer`), or the agent refused it (`rejected`). The agent is paused.
    OfferMissed {
        /// `no-answer` or `rejected`.
        cause: &'static str,
    },
    /// The agent's call ended.
    CallEnded {
        /// Whether the agent was connected to another party (then wrapup follows).
        connected: bool,
        /// The agent's wrapupTime, seconds.
        wrapup_time: i64,
    },
    /// A timer of the session came due (wrapup end, grace end).
    Due,
    /// The session's socket closed; the session is logged out after `grace_ms` without one.
    SocketGone {
        /// The grace period.
        grace_ms: i64,
    },
    /// A socket attached to the session.
    SocketBack,
}

/// The machine's answer: the session after the input and the statusEvents it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `None`: offline.
    pub session: Option<Session>,
    /// In order.
    pub events: Vec<StatusEvent>,
}

fn event(session: &Session, name: StatusName) -> StatusEvent {
    StatusEvent {
        name,
        work_status: session.work_status(),
        pause_cause: session.pause_cause().to_string(),
        wrapup_time: None,
        ready_cause: "",
        phone_type: session.phone_type,
        logout_cause: "",
        forced_by: String::new(),
    }
}

fn logout_event(session: &Session, cause: LogoutCause, forced_by: String) -> StatusEvent {
    StatusEvent {
        work_status: "offline",
        pause_cause: String::new(),
        logout_cause: cause.as_str(),
        forced_by,
        ..event(session, StatusName::Logout)
    }
}

/// A logout that waited for the agent's call, now that the call is over.
fn deferred_logout(s: &mut Session) -> Option<Outcome> {
    let cause = s.pending_logout.take()?;
    let forced_by = std::mem::take(&mut s.pending_forced_by);
    let e = logout_event(s, cause, forced_by);
    Some(Outcome {
        session: None,
        events: vec![e],
    })
}

/// The state a choice puts an agent without a call in.
fn settled(choice: &Choice) -> AgentState {
    match choice {
        Choice::Ready => AgentState::Ready,
        Choice::Pause { .. } => AgentState::Pause,
    }
}

/// Wrapup runs out (or is zero): the chosen state, with autoReady or pause.
fn end_wrapup(mut s: Session) -> Outcome {
    s.wrapup_until = None;
    s.state = settled(&s.chosen);
    let e = match s.chosen {
        Choice::Ready => StatusEvent {
            ready_cause: "wrapup",
            ..event(&s, StatusName::AutoReady)
        },
        Choice::Pause { .. } => event(&s, StatusName::Pause),
    };
    Outcome {
        session: Some(s),
        events: vec![e],
    }
}

/// Applies `input` to an agent's session (`None`: offline) at `now` (Unix ms). Inputs that
/// do not apply in the session's state leave it as it is: commands are checked against
/// the §6 table by [`check`] before they get here.
pub fn step(session: Option<Session>, input: Input, now: i64) -> Outcome {
    let unchanged = |session| Outcome {
        session,
        events: vec![],
    };
    let Some(mut s) = session else {
        return match input {
            Input::Login {
                phone_type,
                choice,
                socketless,
            } => {
                let s = Session {
                    state: settled(&choice),
                    chosen: choice,
                    phone_type,
                    wrapup_until: None,
                    grace_until: None,
                    socketless,
                    pending_logout: None,
                    pending_forced_by: String::new(),
                };
                let e = event(&s, StatusName::Login);
                Outcome {
                    session: Some(s),
                    events: vec![e],
                }
            }
            _ => unchanged(None),
        };
    };
    match input {
        Input::Login {
            phone_type, choice, ..
        } => {
            s.phone_type = phone_type;
            s.chosen = choice;
            if !s.in_call() {
                s.state = settled(&s.chosen);
                s.wrapup_until = None;
            }
            let e = event(&s, StatusName::Login);
            Outcome {
                session: Some(s),
                events: vec![e],
            }
        }
        Input::Logout { cause, forced_by } => {
            if s.in_call() {
                s.pending_logout = Some(cause);
                s.pending_forced_by = forced_by;
                return unchanged(Some(s));
            }
            let e = logout_event(&s, cause, forced_by);
            Outcome {
                session: None,
                events: vec![e],
            }
        }
        Input::Ready { forced_by } => {
            s.chosen = Choice::Ready;
            if !s.in_call() {
                s.state = AgentState::Ready;
                s.wrapup_until = None;
            }
            let ready_cause = if forced_by.is_empty() { "" } else { "forced" };
            let e = StatusEvent {
                ready_cause,
                forced_by,
                work_status: "ready",
                pause_cause: String::new(),
                ..event(&s, StatusName::Ready)
            };
            Outcome {
                session: Some(s),
                events: vec![e],
            }
        }
        Input::Pause { cause, forced_by } => {
            s.chosen = Choice::Pause {
                cause: cause.clone(),
            };
            if !s.in_call() {
                s.state = AgentState::Pause;
                s.wrapup_until = None;
            }
            let e = StatusEvent {
                forced_by,
                work_status: "pause",
                pause_cause: cause,
                ..event(&s, StatusName::Pause)
            };
            Outcome {
                session: Some(s),
                events: vec![e],
            }
        }
        Input::CallStarted => {
            s.state = AgentState::Ringing;
            s.wrapup_until = None;
            unchanged(Some(s))
        }
        Input::CallConnected => {
            s.state = AgentState::Talking;
            unchanged(Some(s))
        }
        Input::OfferMissed { cause } => {
            if s.state != AgentState::Ringing {
                return unchanged(Some(s));
            }
            if let Some(out) = deferred_logout(&mut s) {
                return out;
            }
            s.chosen = Choice::Pause {
                cause: cause.to_string(),
            };
            s.state = AgentState::Pause;
            let e = event(&s, StatusName::Pause);
            Outcome {
                session: Some(s),
                events: vec![e],
            }
        }
        Input::CallEnded {
            connected,
            wrapup_time,
        } => {
            if !s.in_call() {
                return unchanged(Some(s));
            }
            if let Some(out) = deferred_logout(&mut s) {
                return out;
            }
            if !connected {
                s.state = settled(&s.chosen);
                return unchanged(Some(s));
            }
            s.state = AgentState::Wrapup;
            let completed = StatusEvent {
                wrapup_time: Some(wrapup_time),
                ..event(&s, StatusName::Completed)
            };
            if wrapup_time == 0 {
                let mut after = end_wrapup(s);
                after.events.insert(0, completed);
                return after;
            }
            s.wrapup_until = Some(now + wrapup_time * 1000);
            Outcome {
                session: Some(s),
                events: vec![completed],
            }
        }
        Input::Due => {
            if s.grace_until.is_some_and(|t| t <= now) {
                s.grace_until = None;
                return step(
                    Some(s),
                    Input::Logout {
                        cause: LogoutCause::Disconnected,
                        forced_by: String::new(),
                    },
                    now,
                );
            }
            if s.state == AgentState::Wrapup && s.wrapup_until.is_some_and(|t| t <= now) {
                return end_wrapup(s);
            }
            unchanged(Some(s))
        }
        Input::SocketGone { grace_ms } => {
            if !s.socketless {
                s.grace_until = Some(now + grace_ms);
            }
            unchanged(Some(s))
        }
        Input::SocketBack => {
            s.grace_until = None;
            s.socketless = false;
            unchanged(Some(s))
        }
    }
}

/// Every command of agents' contract §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandName {
    /// `login`.
    Login,
    /// `logout`.
    Logout,
    /// `ready`.
    Ready,
    /// `pause`.
    Pause,
    /// `callOut`.
    CallOut,
    /// `answer`.
    Answer,
    /// `bridge`.
    Bridge,
    /// `hangup`.
    Hangup,
    /// `setUserData`.
    SetUserData,
    /// `holdCall`.
    HoldCall,
    /// `retrieveCall`.
    RetrieveCall,
    /// `transfer`.
    Transfer,
    /// `consult`.
    Consult,
    /// `consultTransfer`.
    ConsultTransfer,
    /// `consultConference`.
    ConsultConference,
    /// `cancelConsult`.
    CancelConsult,
    /// `sendDtmf`.
    SendDtmf,
    /// `monitor`.
    Monitor,
    /// `whisper`.
    Whisper,
    /// `barge`.
    Barge,
    /// `intercept`.
    Intercept,
    /// `forceHangup`.
    ForceHangup,
    /// `forceReady`.
    ForceReady,
    /// `forcePause`.
    ForcePause,
    /// `forceLogout`.
    ForceLogout,
    /// `monitorQueues`.
    MonitorQueues,
    /// `unmonitorQueues`.
    UnmonitorQueues,
    /// `getState`.
    GetState,
    /// `ping`.
    Ping,
}

impl CommandName {
    /// Every command, in the contract's order.
    pub const ALL: [CommandName; 29] = [
        Self::Login,
        Self::Logout,
        Self::Ready,
        Self::Pause,
        Self::CallOut,
        Self::Answer,
        Self::Bridge,
        Self::Hangup,
        Self::SetUserData,
        Self::HoldCall,
        Self::RetrieveCall,
        Self::Transfer,
        Self::Consult,
        Self::ConsultTransfer,
        Self::ConsultConference,
        Self::CancelConsult,
        Self::SendDtmf,
        Self::Monitor,
        Self::Whisper,
        Self::Barge,
        Self::Intercept,
        Self::ForceHangup,
        Self::ForceReady,
        Self::ForcePause,
        Self::ForceLogout,
        Self::MonitorQueues,
        Self::UnmonitorQueues,
        Self::GetState,
        Self::Ping,
    ];

    /// The command's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Ready => "ready",
            Self::Pause => "pause",
            Self::CallOut => "callOut",
            Self::Answer => "answer",
            Self::Bridge => "bridge",
            Self::Hangup => "hangup",
            Self::SetUserData => "setUserData",
            Self::HoldCall => "holdCall",
            Self::RetrieveCall => "retrieveCall",
            Self::Transfer => "transfer",
            Self::Consult => "consult",
            Self::ConsultTransfer => "consultTransfer",
            Self::ConsultConference => "consultConference",
            Self::CancelConsult => "cancelConsult",
            Self::SendDtmf => "sendDtmf",
            Self::Monitor => "monitor",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
            Self::Intercept => "intercept",
            Self::ForceHangup => "forceHangup",
            Self::ForceReady => "forceReady",
            Self::ForcePause => "forcePause",
            Self::ForceLogout => "forceLogout",
            Self::MonitorQueues => "monitorQueues",
            Self::UnmonitorQueues => "unmonitorQueues",
            Self::GetState => "getState",
            Self::Ping => "ping",
        }
    }

    /// The command named `s`, if any.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Why a command is refused by the §6 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRefusal {
    /// 20103.
    NotLoggedIn,
    /// 20104.
    NotInThisState,
}

/// The §6 table: whether `command` is allowed in `state`. Conditions on the call itself
/// (20105) and on the target (same target, 20113) are checked where the call is known.
pub fn check(command: CommandName, state: AgentState) -> Result<(), TableRefusal> {
    use AgentState::*;
    use CommandName::*;
    let allowed: &[AgentState] = match command {
        Login => &[Offline, AgentState::Ready, AgentState::Pause, Wrapup],
        Logout | CallOut => &[AgentState::Ready, AgentState::Pause, Wrapup],
        CommandName::Ready | CommandName::Pause => &[
            AgentState::Ready,
            AgentState::Pause,
            Ringing,
            Talking,
            Wrapup,
        ],
        Answer | Bridge => &[Ringing],
        Hangup | SetUserData => &[Ringing, Talking],
        HoldCall | RetrieveCall | Transfer | Consult | ConsultTransfer | ConsultConference
        | CancelConsult | SendDtmf => &[Talking],
        Monitor | Whisper | Barge | Intercept => {
            &[AgentState::Ready, AgentState::Pause, Talking, Wrapup]
        }
        ForceHangup | ForceReady | ForcePause | ForceLogout | MonitorQueues | UnmonitorQueues
        | GetState | Ping => return Ok(()),
    };
    if allowed.contains(&state) {
        Ok(())
    } else if state == Offline {
        Err(TableRefusal::NotLoggedIn)
    } else {
        Err(TableRefusal::NotInThisState)
    }
}

#[cfg(test)]
mod tests;

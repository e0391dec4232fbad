//! Why an agent command or socket authentication was refused: the statusCodes of agents'
//! contract §2 that sessions use, with their messages.

use crate::store::StoreError;

/// A refused agent command or authentication.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// 10004: a parameter error naming the field.
    #[error("{0}")]
    Param(String),
    /// 10005: the platform failed (the database); safe to retry.
    #[error("service temporarily unavailable, retry later")]
    Unavailable(StoreError),
    /// 20100: a socket's first frame was not `auth`.
    #[error("authenticate first")]
    AuthFirst,
    /// 20101: wrong or unknown agent, password or token.
    #[error("agent authentication failed")]
    AuthFailed,
    /// 20101: this address failed too often; it must wait.
    #[error("too many failed attempts")]
    TooManyAttempts,
    /// 20102.
    #[error("agent disabled")]
    AgentDisabled,
    /// 20103.
    #[error("agent not logged in")]
    NotLoggedIn,
    /// 20104.
    #[error("not allowed in the agent's current state")]
    WrongState,
    /// 10008: the account's maxConcurrentCalls is reached.
    #[error("platform limit: the account's maxConcurrentCalls is reached")]
    AtCapacity,
    /// 20008: displayNum is in none of the application's caller-id pools.
    #[error("displayNum not allowed for this application")]
    DisplayNumNotAllowed,
    /// 20105: the agent's call is not in a state that allows the command; why.
    #[error("not allowed in the current call state: {0}")]
    WrongCallState(String),
    /// 10005: the call's media server (or the replica driving it) could not do it.
    #[error("call could not be initiated: {0}")]
    NoMedia(String),
    /// 20109: a SIP phone login whose sipNumber is registered on no media server.
    #[error("SIP device not registered")]
    NotRegistered,
    /// 20110.
    #[error("no pstnNumber bound to the agent")]
    NoPstnNumber,
    /// 20111.
    #[error("unknown command")]
    UnknownCommand,
    /// 20106.
    #[error("supervisor role required")]
    SupervisorRequired,
    /// 20003.
    #[error("queue not found")]
    QueueNotFound,
    /// 20107.
    #[error("target agent not found or not logged in")]
    TargetNotFound,
    /// 20108.
    #[error("target agent not available")]
    TargetUnavailable,
    /// 20113.
    #[error("target is the agent itself")]
    TargetIsSelf,
}

impl CommandError {
    /// The statusCode.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Param(_) => "10004",
            Self::Unavailable(_) | Self::NoMedia(_) => "10005",
            Self::AtCapacity => "10008",
            Self::DisplayNumNotAllowed => "20008",
            Self::WrongCallState(_) => "20105",
            Self::AuthFirst => "20100",
            Self::AuthFailed | Self::TooManyAttempts => "20101",
            Self::AgentDisabled => "20102",
            Self::NotLoggedIn => "20103",
            Self::WrongState => "20104",
            Self::NotRegistered => "20109",
            Self::NoPstnNumber => "20110",
            Self::UnknownCommand => "20111",
            Self::SupervisorRequired => "20106",
            Self::QueueNotFound => "20003",
            Self::TargetNotFound => "20107",
            Self::TargetUnavailable => "20108",
            Self::TargetIsSelf => "20113",
        }
    }

    /// The HTTP status of the code when it answers a REST request (§2).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Param(_) | Self::UnknownCommand | Self::TargetIsSelf => 400,
            Self::Unavailable(_) | Self::NoMedia(_) => 503,
            Self::AtCapacity => 429,
            Self::DisplayNumNotAllowed => 403,
            Self::WrongCallState(_) | Self::TargetUnavailable => 409,
            Self::AuthFirst | Self::AuthFailed | Self::TooManyAttempts => 401,
            Self::AgentDisabled | Self::SupervisorRequired => 403,
            Self::QueueNotFound | Self::TargetNotFound => 404,
            Self::NotLoggedIn | Self::WrongState | Self::NotRegistered | Self::NoPstnNumber => 409,
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e.unstorable_param() {
            Some(message) => Self::Param(message),
            None => Self::Unavailable(e),
        }
    }
}

impl From<crate::domain::ParamError> for CommandError {
    fn from(e: crate::domain::ParamError) -> Self {
        Self::Param(e.0)
    }
}

impl From<super::machine::TableRefusal> for CommandError {
    fn from(r: super::machine::TableRefusal) -> Self {
        match r {
            super::machine::TableRefusal::NotLoggedIn => Self::NotLoggedIn,
            super::machine::TableRefusal::NotInThisState => Self::WrongState,
        }
    }
}

impl From<crate::store::agent_calls::NoRoom> for CommandError {
    fn from(_: crate::store::agent_calls::NoRoom) -> Self {
        Self::AtCapacity
    }
}

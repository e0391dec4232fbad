//! The statuscodes of the agent API (agents' contract §2) and their HTTP statuses: the
//! common `10001…10008` of click-to-call and the `200xx` codes of agents, queues, pools
//! and sessions. Management answers carry the HTTP status of the table, unlike the
//! click-to-call endpoints.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::json;

use crate::agents::error::CommandError;
use crate::api::error::{ApiError, ApiStatus};
use crate::domain::ParamError;
use crate::store::StoreError;
use crate::store::agents::AgentWriteError;
use crate::store::numbers::NumberWriteError;
use crate::store::queues::QueueWriteError;

/// A refused agent-API request.
#[derive(Debug, thiserror::Error)]
pub enum CtiError {
    /// One of the errors every endpoint shares (authentication, JSON, application,
    /// parameters, limits, the platform failing).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 20001.
    #[error("agent not found")]
    AgentNotFound,
    /// 20002.
    #[error("agentNo already exists in this application")]
    AgentExists,
    /// 20003.
    #[error("queue not found")]
    QueueNotFound,
    /// 20004: the resource is named by something else (the text says by what).
    #[error("{0}")]
    InUse(String),
    /// 20005.
    #[error("number not granted to this account")]
    NumberNotGranted,
    /// 20006.
    #[error("caller-id pool not found")]
    PoolNotFound,
    /// 20007.
    #[error("sipNumber already in use")]
    SipNumberTaken,
    /// 20008.
    #[error("displayNum not allowed for this application")]
    DisplayNumNotAllowed,
    /// 20101 before the upgrade: the page's origin is not among `allowedOrigins`.
    #[error("origin not allowed for this application")]
    OriginRefused,
    /// A refused agent command (§2 codes 10004, 10005, 201xx).
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<ParamError> for CtiError {
    fn from(e: ParamError) -> Self {
        Self::Api(e.into())
    }
}

impl From<StoreError> for CtiError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl From<AgentWriteError> for CtiError {
    fn from(e: AgentWriteError) -> Self {
        match e {
            AgentWriteError::Exists => Self::AgentExists,
            AgentWriteError::NotFound => Self::AgentNotFound,
            AgentWriteError::SipNumberTaken => Self::SipNumberTaken,
            AgentWriteError::QueueNotFound => Self::QueueNotFound,
            AgentWriteError::PoolNotFound => Self::PoolNotFound,
            AgentWriteError::Store(e) => e.into(),
        }
    }
}

impl From<QueueWriteError> for CtiError {
    fn from(e: QueueWriteError) -> Self {
        match e {
            QueueWriteError::QueueNotFound => Self::QueueNotFound,
            QueueWriteError::Store(e) => e.into(),
        }
    }
}

impl From<NumberWriteError> for CtiError {
    fn from(e: NumberWriteError) -> Self {
        match e {
            NumberWriteError::NotGranted => Self::NumberNotGranted,
            NumberWriteError::OtherApplication => {
                Self::InUse("number routed by another application".into())
            }
            NumberWriteError::QueueNotFound => Self::QueueNotFound,
            NumberWriteError::AgentNotFound => Self::AgentNotFound,
            NumberWriteError::Store(e) => e.into(),
        }
    }
}

impl CtiError {
    /// The statusCode.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(e) => e.ctc_code(),
            Self::AgentNotFound => "20001",
            Self::AgentExists => "20002",
            Self::QueueNotFound => "20003",
            Self::InUse(_) => "20004",
            Self::NumberNotGranted => "20005",
            Self::PoolNotFound => "20006",
            Self::SipNumberTaken => "20007",
            Self::DisplayNumNotAllowed => "20008",
            Self::OriginRefused => "20101",
            Self::Command(e) => e.code(),
        }
    }

    /// The HTTP status of the contract's table.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Api(e) => match e {
                ApiError::Auth | ApiError::SidMismatch => StatusCode::UNAUTHORIZED,
                ApiError::Json(_) | ApiError::Param(_) => StatusCode::BAD_REQUEST,
                ApiError::App(_) | ApiError::NotFound(_) | ApiError::UnknownRoute(_) => {
                    StatusCode::NOT_FOUND
                }
                ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
                ApiError::State(_) => StatusCode::CONFLICT,
                ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
                ApiError::Unavailable(_)
                | ApiError::ShuttingDown
                | ApiError::NoMedia
                | ApiError::Initiate(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::AgentNotFound
            | Self::QueueNotFound
            | Self::NumberNotGranted
            | Self::PoolNotFound => StatusCode::NOT_FOUND,
            Self::AgentExists | Self::InUse(_) | Self::SipNumberTaken => StatusCode::CONFLICT,
            Self::DisplayNumNotAllowed | Self::OriginRefused => StatusCode::FORBIDDEN,
            Self::Command(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
        }
    }

    /// The answer: `{"statusCode","statusMsg"}` with the table's HTTP status.
    pub fn response(&self) -> HttpResponse {
        if let Self::Api(ApiError::Unavailable(e)) | Self::Command(CommandError::Unavailable(e)) =
            self
        {
            tracing::error!(error = %e, "request failed inside the platform");
        }
        let mut response = HttpResponse::build(self.http_status())
            .json(json!({"statusCode": self.code(), "statusMsg": self.to_string()}));
        response.extensions_mut().insert(ApiStatus(self.code()));
        response
    }
}

//! Every error a customer endpoint can answer with, and the one place that maps it to the
//! contract's statuscodes: `statuscode` `-1…-7` for notices, captchas, prompts and CDRs
//! (API.md §2), `statusCode` `10001…10008` for click-to-call (API.md §6).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use crate::domain::{ParamError, RequestId};
use crate::store::StoreError;

/// A failed customer request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad or missing credentials, a disabled account, or a path sid that is not the header's.
    #[error("authentication failed")]
    Auth,
    /// Valid-looking credentials for another account than the path names.
    #[error("authentication failed: the AccountSid in the path is not the one in the credentials")]
    SidMismatch,
    /// The body is not a JSON object.
    #[error("{0}")]
    Json(String),
    /// The appid / applicationSid is missing, unknown or another account's.
    #[error("{0}")]
    App(String),
    /// A parameter error naming the field.
    #[error("{0}")]
    Param(String),
    /// The body is larger than the endpoint takes.
    #[error("{0}")]
    TooLarge(String),
    /// A platform limit (queue full, captcha frequency).
    #[error("{0}")]
    Limit(String),
    /// The conversation, prompt or record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The action is not allowed in the conversation's current state.
    #[error("{0}")]
    State(String),
    /// No such route (an unknown click-to-call API version): HTTP 404.
    #[error("{0}")]
    UnknownRoute(String),
    /// The route exists, not with this method: HTTP 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No media server is connected: the call could not be initiated.
    #[error("no media server available")]
    NoMedia,
    /// The call could not be initiated, for the reason given.
    #[error("{0}")]
    Initiate(String),
    /// The platform's worker threads for slow work (password hashing) are gone: the
    /// process is shutting down.
    #[error("the platform is shutting down, retry later")]
    ShuttingDown,
    /// The platform could not take the request right now (the database failed).
    #[error("service temporarily unavailable, retry later")]
    Unavailable(#[source] StoreError),
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        Self::Param(e.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.unstorable_param() {
            Some(message) => Self::Param(message),
            None => Self::Unavailable(e),
        }
    }
}

/// The `statuscode`/`statusCode` an error answer carries, kept with the response for the
/// request metrics (`api::observe`).
#[derive(Debug, Clone, Copy)]
pub struct ApiStatus(pub &'static str);

/// Body of a notice-style status (`statuscode`, `statusmsg`, `requestid`).
#[derive(Serialize)]
struct NoticeStatus<'a> {
    statuscode: &'static str,
    statusmsg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    requestid: Option<&'a str>,
}

/// Body of a click-to-call status (`statusCode`, `statusMsg`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CtcStatus {
    status_code: &'static str,
    status_msg: String,
}

impl ApiError {
    /// An idempotency key repeated with a different request (-4 / 10004).
    pub fn key_reused() -> Self {
        Self::Param("Idempotency-Key was already used with a different request".into())
    }

    fn notice_code(&self) -> &'static str {
        match self {
            Self::Auth | Self::SidMismatch => "-1",
            Self::Json(_) => "-2",
            Self::App(_) => "-3",
            Self::Param(_)
            | Self::TooLarge(_)
            | Self::State(_)
            | Self::UnknownRoute(_)
            | Self::MethodNotAllowed(_) => "-4",
            Self::Unavailable(_) | Self::ShuttingDown | Self::NoMedia | Self::Initiate(_) => "-5",
            Self::Limit(_) => "-6",
            Self::NotFound(_) => "-7",
        }
    }

    /// The click-to-call statusCode (10001…10008) of this error.
    pub(super) fn ctc_code(&self) -> &'static str {
        match self {
            Self::Auth | Self::SidMismatch => "10001",
            Self::Json(_) => "10002",
            Self::App(_) => "10003",
            Self::Param(_)
            | Self::TooLarge(_)
            | Self::UnknownRoute(_)
            | Self::MethodNotAllowed(_) => "10004",
            Self::Unavailable(_) | Self::ShuttingDown | Self::NoMedia | Self::Initiate(_) => {
                "10005"
            }
            Self::NotFound(_) => "10006",
            Self::State(_) => "10007",
            Self::Limit(_) => "10008",
        }
    }

    /// HTTP status: 200 as the contract says, except 413 for oversized bodies, 404 for
    /// unknown records (§8) and 503 when the platform itself failed.
    pub(super) fn http_status(&self, ctc: bool) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) if !ctc => StatusCode::NOT_FOUND,
            Self::UnknownRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }

    fn log(&self) {
        if let Self::Unavailable(e) = self {
            tracing::error!(error = %e, "request failed inside the platform");
        }
    }

    /// The notice-style answer; `request_id` once authentication passed.
    pub fn notice_response(&self, request_id: Option<&RequestId>) -> HttpResponse {
        self.log();
        let body = NoticeStatus {
            statuscode: self.notice_code(),
            statusmsg: self.to_string(),
            requestid: request_id.map(RequestId::as_str),
        };
        let mut response = HttpResponse::build(self.http_status(false)).json(body);
        response
            .extensions_mut()
            .insert(ApiStatus(self.notice_code()));
        response
    }

    /// The click-to-call-style answer.
    pub fn ctc_response(&self) -> HttpResponse {
        self.log();
        let mut response = HttpResponse::build(self.http_status(true)).json(CtcStatus {
            status_code: self.ctc_code(),
            status_msg: self.to_string(),
        });
        response.extensions_mut().insert(ApiStatus(self.ctc_code()));
        response
    }
}

/// The success answer of a click-to-call action (`00000`), with the conversation on click2call.
pub fn ctc_success(conversation_sid: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({"statusCode": "00000", "statusMsg": "success"});
    if let Some(sid) = conversation_sid {
        body["conversationSid"] = sid.into();
    }
    body
}

/// What a successful request answers: a new body, or the stored body of the first request
/// with the same idempotency key.
#[derive(Debug)]
pub enum Reply {
    /// A fresh answer.
    Fresh(String),
    /// The stored first answer, replayed verbatim.
    Replayed(String),
}

impl Reply {
    /// The HTTP response (always 200).
    pub fn into_response(self) -> HttpResponse {
        let (body, replayed) = match self {
            Reply::Fresh(body) => (body, false),
            Reply::Replayed(body) => (body, true),
        };
        let mut response = HttpResponse::Ok();
        response.content_type("application/json");
        if replayed {
            response.insert_header(("Idempotent-Replayed", "true"));
            // The replayed body names the first request: so does the header.
            if let Some(first) = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b["requestid"].as_str().map(str::to_string))
            {
                response.insert_header(("X-Request-Id", first));
            }
        }
        response.body(body)
    }
}

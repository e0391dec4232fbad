//! What every call-placing endpoint shares: finding the application (-3 / 10003),
//! checking caller ids and prompts against it, and handing the acceptance to the store.

use std::sync::Arc;

use actix_web::web::Payload;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{ApiError, Reply};
use super::{AppState, body};
use crate::config::CaptchaLimits;
use crate::domain::credentials::is_hex32;
use crate::domain::webhook_url::WebhookUrl;
use crate::domain::{Fields, PhoneNumber, PromptName, RequestId};
use crate::store::StoreError;
use crate::store::accept::{AcceptOutcome, Acceptance, CallRow, CaptchaWindow, RequestRow};
use crate::store::accounts::AccountRecord;
use crate::store::applications::ApplicationRecord;
use crate::store::idempotency::IdempotencyClaim;
use crate::webhooks::guard::check_targets;

/// The application `app_id` of `account`, or -3 / 10003; `field` names it in the message.
pub async fn application(
    state: &AppState,
    account: &AccountRecord,
    field: &str,
    app_id: Option<&str>,
) -> Result<Arc<ApplicationRecord>, ApiError> {
    let app_id = app_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::App(format!("missing {field}")))?;
    if !is_hex32(app_id) {
        return Err(ApiError::App(format!("{field} must be 32 hex digits")));
    }
    let app = state.store.find_app(&account.sid, app_id).await?;
    app.ok_or_else(|| ApiError::App(format!("{field} not found in this account")))
}

/// A notice or captcha request read up to its fields: the body (-2), its idempotency
/// claim (-4) and the application of its `appid` (-3).
pub struct BodyRequest {
    /// The JSON object.
    pub body: Map<String, Value>,
    /// Its Idempotency-Key, if any.
    pub claim: Option<IdempotencyClaim>,
    /// The application named by `appid`.
    pub app: Arc<ApplicationRecord>,
}

impl BodyRequest {
    /// Reads the body and finds the application of its `appid`.
    pub async fn read(
        state: &AppState,
        req: &HttpRequest,
        account: &AccountRecord,
        payload: Payload,
    ) -> Result<Self, ApiError> {
        let body = body::json_object(req, payload).await?;
        let claim = body::idempotency_claim(req, &body)?;
        let app_id = Fields(&body)
            .opt_str("appid")
            .map_err(|e| ApiError::App(e.0))?;
        let app = application(state, account, "appid", app_id).await?;
        Ok(Self { body, claim, app })
    }
}

/// Refuses caller ids the application may not display.
pub fn check_caller_ids<'a>(
    app: &ApplicationRecord,
    numbers: impl IntoIterator<Item = (&'a str, &'a PhoneNumber)>,
) -> Result<(), ApiError> {
    for (field, number) in numbers {
        if !app.may_display(number.as_str()) {
            return Err(ApiError::Param(format!(
                "{field} {number} is not an allowed caller id of this application"
            )));
        }
    }
    Ok(())
}

/// Refuses prompts the application does not have.
pub async fn check_prompts<'a, F: AsRef<str>>(
    state: &AppState,
    app: &ApplicationRecord,
    prompts: impl IntoIterator<Item = (F, &'a PromptName)>,
) -> Result<(), ApiError> {
    for (field, name) in prompts {
        if !state
            .store
            .prompt_exists(&app.app_id, name.as_str())
            .await?
        {
            return Err(ApiError::Param(format!(
                "{}: prompt {name} not found",
                field.as_ref()
            )));
        }
    }
    Ok(())
}

/// Writes the acceptance and turns the store's verdict into the reply. With no media
/// server connected, nothing is written: -5 / 10005.
pub async fn submit(state: &AppState, acceptance: Acceptance) -> Result<Reply, ApiError> {
    if !state.media.any_up() {
        return Err(ApiError::NoMedia);
    }
    let response = acceptance.response.clone();
    match state.store.accept(acceptance).await? {
        AcceptOutcome::Accepted => {
            state.orchestrator.wake();
            Ok(Reply::Fresh(response))
        }
        AcceptOutcome::Replayed(first) => Ok(Reply::Replayed(first)),
        AcceptOutcome::KeyReused => Err(ApiError::key_reused()),
        AcceptOutcome::QueueFull { limit } => Err(ApiError::Limit(format!(
            "the account's call queue is full ({limit} calls)"
        ))),
        AcceptOutcome::CaptchaLimited(window) => Err(ApiError::Limit(match window {
            CaptchaWindow::Minute(n) => {
                format!("captcha limit reached: at most {n} per minute to this number")
            }
            CaptchaWindow::Hour(n) => {
                format!("captcha limit reached: at most {n} per hour to this number")
            }
            CaptchaWindow::Day(n) => {
                format!("captcha limit reached: at most {n} per day to this number")
            }
        })),
    }
}

/// Serializes a reply or stored parameters (plain structs, which always serialize).
pub fn to_json(value: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|e| ApiError::Unavailable(StoreError::Corrupt(e.to_string())))
}

/// Reads JSON the platform stored itself (a CDR body); unreadable means corrupt storage.
pub fn stored_json(text: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::Unavailable(StoreError::Corrupt(e.to_string())))
}

/// The answer of an endpoint in the notice dialect: the JSON it built, or its error.
pub fn notice_reply(result: Result<Value, ApiError>) -> HttpResponse {
    match result.and_then(|body| to_json(&body)) {
        Ok(body) => Reply::Fresh(body).into_response(),
        Err(e) => e.notice_response(None),
    }
}

/// The parts of an accepted request that every kind has.
pub struct NewRequest<'a> {
    /// Its `RQ…` id.
    pub request_id: &'a RequestId,
    /// Its account.
    pub account: &'a AccountRecord,
    /// Its application.
    pub app: &'a ApplicationRecord,
    /// `notice`, `captcha` or `click2call`.
    pub kind: &'static str,
    /// Caller id asked for.
    pub from: Option<&'a PhoneNumber>,
    /// Customer data echoed in callbacks.
    pub userdata: Option<String>,
    /// Acceptance time.
    pub now: DateTime<Utc>,
    /// Its idempotency key, if any.
    pub claim: Option<IdempotencyClaim>,
}

impl NewRequest<'_> {
    /// The acceptance to submit: `params` is stored with the request, `response` is the
    /// body answered now and replayed for a repeat of the idempotency key.
    pub fn into_acceptance(
        self,
        params: &impl Serialize,
        calls: Vec<CallRow>,
        conversation_id: Option<String>,
        captcha_limits: Option<CaptchaLimits>,
        response: String,
    ) -> Result<Acceptance, ApiError> {
        for call in &calls {
            tracing::info!(call = %call.id, kind = self.kind, to = %crate::telemetry::mask::Masked(&call.to_number), "accepted");
        }
        Ok(Acceptance {
            request: RequestRow {
                id: self.request_id.to_string(),
                account_sid: self.account.sid.clone(),
                app_id: self.app.app_id.clone(),
                kind: self.kind,
                from_number: self.from.map(PhoneNumber::to_string),
                userdata: self.userdata,
                params: to_json(params)?,
                created_at: self.now.timestamp_millis(),
            },
            calls,
            conversation_id,
            idempotency: self.claim,
            captcha_limits,
            response,
        })
    }
}

/// Refuses callback URLs that point at private or reserved addresses (§7), unless the
/// installation allows them.
pub async fn check_urls<'a>(
    state: &AppState,
    urls: impl IntoIterator<Item = (&'static str, &'a WebhookUrl)>,
) -> Result<(), ApiError> {
    check_targets(urls, state.settings.allow_private_webhooks)
        .await
        .map_err(|e| ApiError::Param(e.to_string()))
}

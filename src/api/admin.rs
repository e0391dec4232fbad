//! The operator API (API.md §10): `Authorization: Bearer $VOICEPAAS_ADMIN_TOKEN`; every
//! route answers 404 when the token is unset, as if the API did not exist. Errors are
//! plain HTTP statuses with `{"error": "..."}`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::auth::{self, AdminRefusal};
use super::error::ApiError;
use super::{AppState, body, placement};
use crate::domain::application::AppSettings;
use crate::domain::application::MAX_NAME_BYTES;
use crate::domain::limits::AccountPatch;
use crate::domain::{Fields, check_label};

/// A refused operator request: its HTTP status, message and, where the contract names
/// one, its statusCode.
pub(super) struct AdminError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl AdminError {
    /// A refusal with this status and message.
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }

    /// The same refusal carrying the contract's `statusCode`.
    pub(super) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl From<ApiError> for AdminError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::TooLarge(m) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::Unavailable(err) => {
                tracing::error!(error = %err, "operator request failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service temporarily unavailable",
                )
            }
            other => Self::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl From<crate::domain::ParamError> for AdminError {
    fn from(e: crate::domain::ParamError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.0)
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

pub(super) fn no_account(sid: &str) -> AdminError {
    AdminError::new(
        StatusCode::NOT_FOUND,
        format!("account {} not found", crate::domain::phone::printable(sid)),
    )
}

/// Checks the bearer token, runs `handle`, renders its status and JSON.
pub(super) async fn operator<F>(state: &AppState, req: &HttpRequest, handle: F) -> HttpResponse
where
    F: std::future::Future<Output = Result<(StatusCode, Value), AdminError>>,
{
    let result = match auth::admin(state, req) {
        Err(AdminRefusal::Disabled) => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "the operator API is off (VOICEPAAS_ADMIN_TOKEN is unset)",
        )),
        Err(AdminRefusal::BadToken) => Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "a valid Authorization: Bearer token is required",
        )),
        Ok(()) => handle.await,
    };
    match result {
        Ok((status, body)) => HttpResponse::build(status).json(body),
        Err(AdminError {
            status,
            message,
            code,
        }) => {
            let mut body = json!({"error": message});
            if let Some(code) = code {
                body["statusCode"] = code.into();
            }
            HttpResponse::build(status).json(body)
        }
    }
}

/// `POST /admin/accounts` `{"name"}` → 201 `{"accountSid","authToken"}`.
pub async fn create_account(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> HttpResponse {
    operator(&state, &req, async {
        let body = body::json_object(&req, payload).await?;
        Fields(&body).only(&["name"])?;
        let name = Fields(&body).req_str("name")?;
        check_label("name", name, MAX_NAME_BYTES)?;
        let (account, token) = state.store.create_account(name).await?;
        Ok((
            StatusCode::CREATED,
            json!({"accountSid": account.sid, "authToken": token}),
        ))
    })
    .await
}

/// `GET /admin/accounts`.
pub async fn list_accounts(state: Data<AppState>, req: HttpRequest) -> HttpResponse {
    operator(&state, &req, async {
        Ok((
            StatusCode::OK,
            json!({"accounts": state.store.list_accounts().await?}),
        ))
    })
    .await
}

/// `PATCH /admin/accounts/{sid}`: limits and enabled.
pub async fn update_account(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    operator(&state, &req, async {
        let body = body::json_object(&req, payload).await?;
        let patch = AccountPatch::parse(Fields(&body))?;
        let account = state
            .store
            .update_account(&sid, &patch)
            .await?
            .ok_or_else(|| no_account(&sid))?;
        Ok((
            StatusCode::OK,
            serde_json::to_value(account).unwrap_or_default(),
        ))
    })
    .await
}

/// `POST /admin/accounts/{sid}/token`: a new auth token (the old one stops working).
pub async fn rotate_token(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
) -> HttpResponse {
    operator(&state, &req, async {
        let token = state
            .store
            .rotate_token(&sid)
            .await?
            .ok_or_else(|| no_account(&sid))?;
        Ok((
            StatusCode::OK,
            json!({"accountSid": sid.as_str(), "authToken": token}),
        ))
    })
    .await
}

/// `POST /admin/accounts/{sid}/applications` → 201 `{"appId","signingSecret"}`.
pub async fn create_app(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    operator(&state, &req, async {
        let body = body::json_object(&req, payload).await?;
        let settings = AppSettings::parse(Fields(&body), true)?;
        placement::check_urls(&state, settings.urls()).await?;
        // A new application has no prompts yet: a musicOnHold is refused as unknown.
        super::cti::settings::check_patch(&state, "", &settings.cti).await?;
        state
            .store
            .find_account(&sid)
            .await?
            .ok_or_else(|| no_account(&sid))?;
        let app = state.store.create_app(&sid, &settings).await?;
        let mut shown = app.to_json();
        shown["signingSecret"] = app.signing_secret.expose().into();
        Ok((StatusCode::CREATED, shown))
    })
    .await
}

/// `GET /admin/accounts/{sid}/applications`.
pub async fn list_apps(state: Data<AppState>, req: HttpRequest, sid: Path<String>) -> HttpResponse {
    operator(&state, &req, async {
        state
            .store
            .find_account(&sid)
            .await?
            .ok_or_else(|| no_account(&sid))?;
        let apps: Vec<Value> = state
            .store
            .list_apps(&sid)
            .await?
            .iter()
            .map(|a| a.to_json())
            .collect();
        Ok((StatusCode::OK, json!({"applications": apps})))
    })
    .await
}

/// `PATCH /admin/accounts/{sid}/applications/{appId}`.
pub async fn update_app(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String)>,
    payload: Payload,
) -> HttpResponse {
    let (sid, app_id) = path.into_inner();
    operator(&state, &req, async {
        let body = body::json_object(&req, payload).await?;
        let settings = AppSettings::parse(Fields(&body), false)?;
        placement::check_urls(&state, settings.urls()).await?;
        super::cti::settings::check_patch(&state, &app_id, &settings.cti).await?;
        let app = state.store.update_app(&sid, &app_id, &settings).await?;
        let app = app.ok_or_else(|| {
            AdminError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "application {} not found in this account",
                    crate::domain::phone::printable(&app_id)
                ),
            )
        })?;
        Ok((StatusCode::OK, app.to_json()))
    })
    .await
}

//! The agent API (agents' contract §3): agents, their tokens, caller-id pools and CTI
//! settings under `/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/…`.
//! Answers are `{"statusCode","statusMsg",…}` with the HTTP statuses of §2.

pub mod agents;
pub mod commands;
pub mod error;
pub mod numbers;
pub mod outbound;
pub mod pools;
pub mod queues;
pub mod settings;
pub mod socket;

use std::future::Future;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::{Payload, Query};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiStatus};
use super::{AppState, auth, body, placement};
use crate::store::accounts::AccountRecord;
use crate::store::applications::ApplicationRecord;
use crate::store::idempotency::{IdempotencyClaim, Replay};
use error::CtiError;

/// What every agent-API handler starts from: the authenticated account and the
/// application named in the path.
pub struct CtiContext {
    /// The account of the Basic credentials.
    pub account: Arc<AccountRecord>,
    /// The application of the path.
    pub app: Arc<ApplicationRecord>,
}

/// Checks the path's version, the credentials and the application, then runs `handle`
/// and renders its result.
pub async fn cti_style<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    (version, sid, app_id): (&str, &str, &str),
    handle: F,
) -> HttpResponse
where
    F: FnOnce(CtiContext) -> Fut,
    Fut: Future<Output = Result<HttpResponse, CtiError>>,
{
    let checked = async {
        if !state.settings.soft_versions.iter().any(|v| v == version) {
            let known = state.settings.soft_versions.join(", ");
            return Err(ApiError::UnknownRoute(format!(
                "unknown API version {version:?} (this server accepts {known})"
            ))
            .into());
        }
        let account = auth::customer(state, req, sid).await?;
        let app = placement::application(state, &account, "applicationSid", Some(app_id)).await?;
        handle(CtiContext { account, app }).await
    };
    match checked.await {
        Ok(response) => response,
        Err(e) => e.response(),
    }
}

/// The success body: `{"statusCode":"00000","statusMsg":"success"}` and the members of
/// `fields` (a JSON object).
fn success_body(fields: Value) -> Value {
    let mut body = json!({"statusCode": "00000", "statusMsg": "success"});
    if let (Value::Object(out), Value::Object(fields)) = (&mut body, fields) {
        out.extend(fields);
    }
    body
}

/// The success answer with `fields` and this HTTP status.
pub fn success(status: StatusCode, fields: Value) -> HttpResponse {
    let mut response = HttpResponse::build(status).json(success_body(fields));
    response.extensions_mut().insert(ApiStatus("00000"));
    response
}

/// A create's body and its Idempotency-Key claim.
pub struct CreateBody {
    /// The JSON object.
    pub body: Map<String, Value>,
    /// Its Idempotency-Key, if any.
    pub claim: Option<IdempotencyClaim>,
}

/// Reads a JSON body (10002 if it is not an object) and its Idempotency-Key.
pub async fn read_body(req: &HttpRequest, payload: Payload) -> Result<CreateBody, CtiError> {
    let body = body::json_object(req, payload).await?;
    let claim = body::idempotency_claim(req, &body)?;
    Ok(CreateBody { body, claim })
}

/// Runs a create under its Idempotency-Key (API.md §1a): a repeat gets the first answer
/// (HTTP 201, `Idempotent-Replayed: true`), another request under the same key 10004.
pub async fn idempotent_create<Fut>(
    state: &AppState,
    account: &AccountRecord,
    claim: Option<&IdempotencyClaim>,
    create: Fut,
) -> Result<HttpResponse, CtiError>
where
    Fut: Future<Output = Result<Value, CtiError>>,
{
    if let Some(claim) = claim {
        match state.store.idempotent_replay(&account.sid, claim).await? {
            Some(Replay::Same(stored)) => {
                return Ok(HttpResponse::Created()
                    .content_type("application/json")
                    .insert_header(("Idempotent-Replayed", "true"))
                    .body(stored));
            }
            Some(Replay::Different) => return Err(ApiError::key_reused().into()),
            None => {}
        }
    }
    let text = success_body(create.await?).to_string();
    if let Some(claim) = claim {
        state
            .store
            .remember_reply(&account.sid, claim, &text)
            .await?;
    }
    let mut response = HttpResponse::Created()
        .content_type("application/json")
        .body(text);
    response.extensions_mut().insert(ApiStatus("00000"));
    Ok(response)
}

/// The query string as `T` (10004 if it does not fit).
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, CtiError> {
    Ok(Query::<T>::from_query(req.query_string())
        .map_err(|e| ApiError::Param(format!("bad query: {e}")))?
        .into_inner())
}

/// A list's page size (1–1000, default 100) and where it starts (the `cursor` this API
/// gave with the previous page: the last key of that page).
pub fn page(
    page_size: Option<&str>,
    cursor: Option<&str>,
) -> Result<(i64, Option<String>), CtiError> {
    let size = super::cdrs::page_size(page_size)?;
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::Param("cursor is not one this API gave".into()))?,
        ),
    };
    Ok((size, after))
}

/// A page of a list: `rows` as the store gave them (asked for one more than `size`, so a
/// row past the page says another page follows), answered as `{…, key: [...],
/// "nextCursor"}`; the last page has no cursor.
pub fn page_answer<T>(
    key: &str,
    mut rows: Vec<T>,
    size: i64,
    key_of: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
) -> HttpResponse {
    let more = rows.len() as i64 > size;
    rows.truncate(usize::try_from(size).unwrap_or(0));
    let mut fields = json!({ key: rows.iter().map(&to_json).collect::<Vec<_>>() });
    if more && let Some(last) = rows.last() {
        fields["nextCursor"] = URL_SAFE_NO_PAD.encode(key_of(last)).into();
    }
    success(StatusCode::OK, fields)
}

/// Refuses a prompt the application does not have (10004 `unknown prompt x`).
pub async fn prompts_exist<'a>(
    state: &AppState,
    app_id: &str,
    prompts: impl IntoIterator<Item = &'a crate::domain::PromptName>,
) -> Result<(), ApiError> {
    for prompt in prompts {
        if !state.store.prompt_exists(app_id, prompt.as_str()).await? {
            return Err(ApiError::Param(format!("unknown prompt {prompt}")));
        }
    }
    Ok(())
}

/// The query of a list that only pages (`pageSize`, `cursor`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageQuery {
    page_size: Option<String>,
    cursor: Option<String>,
}

/// A list endpoint that only pages: reads [`PageQuery`], asks `fetch(after, limit)` for one
/// row more than the page, and answers the page under `key` ([`page_answer`]).
pub async fn paged_list<T, Fut>(
    req: &HttpRequest,
    key: &str,
    fetch: impl FnOnce(Option<String>, i64) -> Fut,
    key_of: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Value,
) -> Result<HttpResponse, CtiError>
where
    Fut: Future<Output = Result<Vec<T>, crate::store::StoreError>>,
{
    let q: PageQuery = query(req)?;
    let (size, after) = page(q.page_size.as_deref(), q.cursor.as_deref())?;
    let rows = fetch(after, size + 1).await?;
    Ok(page_answer(key, rows, size, key_of, to_json))
}

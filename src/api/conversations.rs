//! Click-to-call (API.md §6): `POST /{SoftVersion}/Accounts/{AccountSid}/Applications/
//! {ApplicationSid}/ctc/Conversations` (`click2call`) and `…/Conversations/{ConversationSid}`
//! (`cancelCall`, `addCall`).

use std::future::Future;
use std::sync::Arc;

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::{Map, Value};

use super::error::{ApiError, Reply, ctc_success};
use super::placement::NewRequest;
use super::{AppState, auth, body, placement};
use crate::domain::click2call::{AddCall, Click2Call, StoredClick2Call};
use crate::domain::{ConversationId, Fields};
use crate::orchestrator::Refused;
use crate::store::accept::CallRow;
use crate::store::accounts::AccountRecord;
use crate::store::applications::ApplicationRecord;
use crate::store::conversations::ConversationState;
use crate::store::idempotency::{IdempotencyClaim, Replay};

/// A request of the conversation endpoints after version, auth, body and application checks.
struct CtcRequest {
    version: String,
    account: Arc<AccountRecord>,
    app: Arc<ApplicationRecord>,
    body: Map<String, Value>,
    claim: Option<IdempotencyClaim>,
}

impl CtcRequest {
    fn fields(&self) -> Fields<'_> {
        Fields(&self.body)
    }

    fn action(&self) -> Result<&str, ApiError> {
        Ok(self.fields().req_str("action")?)
    }
}

/// Runs `handle` after the checks every conversation endpoint shares, and renders the
/// result with click-to-call statuscodes.
async fn ctc_style<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    version: &str,
    sid: &str,
    app_id: &str,
    payload: Payload,
    handle: F,
) -> HttpResponse
where
    F: FnOnce(CtcRequest) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    if !state.settings.soft_versions.iter().any(|v| v == version) {
        let known = state.settings.soft_versions.join(", ");
        return ApiError::UnknownRoute(format!(
            "unknown API version {version:?} (this server accepts {known})"
        ))
        .ctc_response();
    }
    let checked = async {
        let account = auth::customer(state, req, sid).await?;
        let body = body::json_object(req, payload).await?;
        let claim = body::idempotency_claim(req, &body)?;
        let app = placement::application(state, &account, "applicationSid", Some(app_id)).await?;
        handle(CtcRequest {
            version: version.to_string(),
            account,
            app,
            body,
            claim,
        })
        .await
    };
    match checked.await {
        Ok(reply) => reply.into_response(),
        Err(e) => e.ctc_response(),
    }
}

/// `POST …/ctc/Conversations`: the `click2call` action.
pub async fn create(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String, String)>,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    ctc_style(&state, &req, &version, &sid, &app_id, payload, |ctc| {
        click2call(&state, &req, ctc)
    })
    .await
}

async fn click2call(
    state: &AppState,
    req: &HttpRequest,
    ctc: CtcRequest,
) -> Result<Reply, ApiError> {
    match ctc.action()? {
        "click2call" => {}
        "cancelCall" | "addCall" => {
            return Err(ApiError::Param(format!(
                "action {} needs the conversationSid in the path",
                ctc.action()?
            )));
        }
        _ => return Err(ApiError::Param("action must be click2call".into())),
    }
    let stored = StoredClick2Call {
        api_version: ctc.version.clone(),
        call: Click2Call::parse(ctc.fields())?,
    };
    let call = &stored.call;
    placement::check_caller_ids(&ctc.app, call.caller_ids())?;
    placement::check_prompts(state, &ctc.app, call.prompts()).await?;
    placement::check_urls(state, call.urls()).await?;

    let now = Utc::now();
    let request_id = super::observe::request_id(state, req);
    let conversation_id = state.ids.conversation(now).to_string();
    let caller_leg = CallRow {
        id: state.ids.call(now).to_string(),
        to_number: call.caller.to_string(),
        conversation_id: Some(conversation_id.clone()),
        leg_seq: 0,
    };
    let response = placement::to_json(&ctc_success(Some(&conversation_id)))?;
    let request = NewRequest {
        request_id: &request_id,
        account: &ctc.account,
        app: &ctc.app,
        kind: "click2call",
        from: call.caller_cli.as_ref(),
        userdata: call.user_data.clone(),
        now,
        claim: ctc.claim.clone(),
    };
    let acceptance = request.into_acceptance(
        &stored,
        vec![caller_leg],
        Some(conversation_id),
        None,
        response,
    )?;
    placement::submit(state, acceptance).await
}

/// `POST …/ctc/Conversations/{ConversationSid}`: the `cancelCall` and `addCall` actions.
pub async fn act(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String, String, String)>,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, conversation) = path.into_inner();
    let state = &state;
    ctc_style(
        state,
        &req,
        &version,
        &sid,
        &app_id,
        payload,
        |ctc| async move {
            match ctc.action()? {
                "cancelCall" => cancel_call(state, &ctc, &conversation).await,
                "addCall" => add_call(state, &ctc, &conversation).await,
                "click2call" => Err(ApiError::Param(
                    "action click2call is posted to …/ctc/Conversations without a conversationSid"
                        .into(),
                )),
                _ => Err(ApiError::Param(
                    "action must be cancelCall or addCall".into(),
                )),
            }
        },
    )
    .await
}

fn not_found() -> ApiError {
    ApiError::NotFound("conversation not found".into())
}

async fn cancel_call(
    state: &AppState,
    ctc: &CtcRequest,
    conversation: &str,
) -> Result<Reply, ApiError> {
    if let Some(replay) = replay(state, ctc).await? {
        return Ok(replay);
    }
    let id = live_conversation(state, ctc, conversation).await?;
    state
        .orchestrator
        .cancel(id.as_str())
        .await
        .map_err(refused)?;
    succeed(state, ctc).await
}

async fn add_call(
    state: &AppState,
    ctc: &CtcRequest,
    conversation: &str,
) -> Result<Reply, ApiError> {
    let add = AddCall::parse(ctc.fields())?;
    placement::check_caller_ids(
        &ctc.app,
        add.dial.callee_cli.iter().map(|n| ("calleeCli", n)),
    )?;
    placement::check_prompts(state, &ctc.app, add.prompts()).await?;
    if let Some(replay) = replay(state, ctc).await? {
        return Ok(replay);
    }
    let id = live_conversation(state, ctc, conversation).await?;
    state
        .orchestrator
        .add_call(id.as_str(), add)
        .await
        .map_err(refused)?;
    succeed(state, ctc).await
}

/// The conversation, known in this account and application (10006) and not ended (10007).
async fn live_conversation(
    state: &AppState,
    ctc: &CtcRequest,
    conversation: &str,
) -> Result<ConversationId, ApiError> {
    let id = ConversationId::parse(conversation).ok_or_else(not_found)?;
    match state
        .store
        .conversation_state(&ctc.account.sid, &ctc.app.app_id, id.as_str())
        .await?
    {
        None => Err(not_found()),
        Some(ConversationState::Ended) => {
            Err(ApiError::State("conversation has already ended".into()))
        }
        Some(_) => Ok(id),
    }
}

/// The first response to a repeat of the request's idempotency key.
async fn replay(state: &AppState, ctc: &CtcRequest) -> Result<Option<Reply>, ApiError> {
    let Some(claim) = &ctc.claim else {
        return Ok(None);
    };
    match state
        .store
        .idempotent_replay(&ctc.account.sid, claim)
        .await?
    {
        Some(Replay::Same(first)) => Ok(Some(Reply::Replayed(first))),
        Some(Replay::Different) => Err(ApiError::key_reused()),
        None => Ok(None),
    }
}

/// `00000`, kept for the idempotency key.
async fn succeed(state: &AppState, ctc: &CtcRequest) -> Result<Reply, ApiError> {
    let response = placement::to_json(&ctc_success(None))?;
    if let Some(claim) = &ctc.claim {
        state
            .store
            .remember_reply(&ctc.account.sid, claim, &response)
            .await?;
    }
    Ok(Reply::Fresh(response))
}

fn refused(r: Refused) -> ApiError {
    match r {
        Refused::State(why) => ApiError::State(why),
        Refused::NoMedia(why) => ApiError::Initiate(why),
        Refused::Unavailable(e) => ApiError::Unavailable(e),
    }
}

//! Agents (agents' contract §3.1) and their tokens (§1): `…/Agents`,
//! `…/Agents/{agentNo}`, `…/Agents/{agentNo}/Tokens`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::CtiError;
use super::{
    CtiContext, cti_style, idempotent_create, page, page_answer, query, read_body, success,
};
use crate::agents::bus::revoked_payload;
use crate::agents::machine::{Input, LogoutCause};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::cdr::format_time;
use crate::domain::Fields;
use crate::domain::agent::{AgentNo, AgentRole, AgentSpec, NewAgent};
use crate::domain::credentials::{hash_password, new_agent_token};
use crate::domain::time::now_ms;
use crate::store::agents::{AgentFilter, AgentRecord};

/// Path of the collection: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;
/// Path of one agent: version, AccountSid, ApplicationSid, agentNo.
type AgentPath = Path<(String, String, String, String)>;

/// Hashes a password on the blocking pool (Argon2 takes tens of milliseconds).
async fn hash_off_thread(pwd: Option<String>) -> Result<Option<String>, CtiError> {
    let Some(pwd) = pwd else { return Ok(None) };
    match actix_web::web::block(move || hash_password(&pwd)).await {
        Ok(Ok(hash)) => Ok(Some(hash)),
        Ok(Err(e)) => Err(ApiError::Param(format!("pwd cannot be stored: {e}")).into()),
        Err(_) => Err(ApiError::ShuttingDown.into()),
    }
}

/// The agent numbered as the path says, or 20001.
async fn existing(
    state: &AppState,
    ctx: &CtiContext,
    agent_no: &str,
) -> Result<AgentRecord, CtiError> {
    if AgentNo::parse("agentNo", agent_no).is_err() {
        return Err(CtiError::AgentNotFound);
    }
    state
        .store
        .find_agent(&ctx.app.app_id, agent_no)
        .await?
        .ok_or(CtiError::AgentNotFound)
}

/// `POST …/Agents`: 201 with the new agent.
pub async fn create(
    state: Data<AppState>,
    req: HttpRequest,
    path: AppPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let create = read_body(req, payload).await?;
        let new = NewAgent::parse(Fields(&create.body))?;
        let tz = state.settings.timezone;
        idempotent_create(state, &ctx.account, create.claim.as_ref(), async {
            let pwd_hash = hash_off_thread(new.spec.pwd.clone())
                .await?
                .unwrap_or_default();
            let agent = state
                .store
                .create_agent(
                    &ctx.app.app_id,
                    &new,
                    &pwd_hash,
                    state.settings.sip_number_base,
                )
                .await?;
            Ok(json!({"agent": agent.to_json(tz)}))
        })
        .await
    })
    .await
}

/// Query of the agent list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentListQuery {
    page_size: Option<String>,
    cursor: Option<String>,
    queue_sid: Option<String>,
    role: Option<String>,
}

/// `GET …/Agents?pageSize&cursor&queueSid&role`: by agentNo.
pub async fn list(state: Data<AppState>, req: HttpRequest, path: AppPath) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let q: AgentListQuery = query(req)?;
        let (size, after) = page(q.page_size.as_deref(), q.cursor.as_deref())?;
        let role = match q.role.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => Some(
                AgentRole::from_word(r)
                    .ok_or_else(|| ApiError::Param("role must be agent or supervisor".into()))?,
            ),
        };
        let filter = AgentFilter {
            queue_sid: q.queue_sid.filter(|s| !s.is_empty()),
            role,
        };
        let agents = state
            .store
            .list_agents(&ctx.app.app_id, &filter, after.as_deref(), size + 1)
            .await?;
        let tz = state.settings.timezone;
        Ok(page_answer(
            "agents",
            agents,
            size,
            |a| &a.agent_no,
            |a| a.to_json(tz),
        ))
    })
    .await
}

/// `GET …/Agents/{agentNo}`.
pub async fn get(state: Data<AppState>, req: HttpRequest, path: AgentPath) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let agent = existing(state, &ctx, &agent_no).await?;
        Ok(success(
            StatusCode::OK,
            json!({"agent": agent.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `PATCH …/Agents/{agentNo}`: changes the fields given, answers the whole agent.
pub async fn update(
    state: Data<AppState>,
    req: HttpRequest,
    path: AgentPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &agent_no).await?;
        let change = read_body(req, payload).await?;
        let spec = AgentSpec::parse_change(Fields(&change.body), &agent_no)?;
        let pwd_hash = hash_off_thread(spec.pwd.clone()).await?;
        let agent = state
            .store
            .update_agent(&ctx.app.app_id, &agent_no, &spec, pwd_hash.as_deref())
            .await?;
        if spec.enabled == Some(false) {
            // Logged out (after its call, if it is in one); its socket closes with 4005
            // once the logout is sent.
            state
                .agents
                .change(&ctx.app.app_id, &agent_no, move |current| {
                    let logout = Input::Logout {
                        cause: LogoutCause::Disabled,
                        forced_by: String::new(),
                    };
                    Ok((current.is_some().then_some(logout), ()))
                })
                .await?;
        }
        Ok(success(
            StatusCode::OK,
            json!({"agent": agent.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `DELETE …/Agents/{agentNo}`: the agent, its memberships and its tokens.
pub async fn delete(state: Data<AppState>, req: HttpRequest, path: AgentPath) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &agent_no).await?;
        if state
            .store
            .live_session(&ctx.app.app_id, &agent_no)
            .await?
            .is_some()
        {
            return Err(CtiError::InUse(
                "agent is logged in (log it out or disable it first)".into(),
            ));
        }
        if !state.store.delete_agent(&ctx.app.app_id, &agent_no).await? {
            return Err(CtiError::AgentNotFound);
        }
        Ok(success(StatusCode::OK, json!({})))
    })
    .await
}

/// `POST …/Agents/{agentNo}/Tokens` `{"ttl"}` (60–86400 s, default 600): 201 with a new
/// token, shown only here. An Idempotency-Key is not honoured here: replaying the answer
/// would mean keeping the token itself, and a second token costs nothing.
pub async fn mint_token(
    state: Data<AppState>,
    req: HttpRequest,
    path: AgentPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &agent_no).await?;
        let body = read_body(req, payload).await?.body;
        let ttl = Fields(&body).opt_int("ttl", 60, 86_400)?.unwrap_or(600);
        let token = new_agent_token();
        let expires_at = now_ms() + ttl * 1000;
        if !state
            .store
            .mint_agent_token(&ctx.app.app_id, &agent_no, &token, expires_at)
            .await?
        {
            return Err(CtiError::AgentNotFound);
        }
        Ok(success(
            StatusCode::CREATED,
            json!({"token": token, "expiresAt": format_time(expires_at, state.settings.timezone)}),
        ))
    })
    .await
}

/// `DELETE …/Agents/{agentNo}/Tokens`: revokes every token of the agent.
pub async fn revoke_tokens(
    state: Data<AppState>,
    req: HttpRequest,
    path: AgentPath,
) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &agent_no).await?;
        state
            .store
            .revoke_agent_tokens(&ctx.app.app_id, &agent_no)
            .await?;
        // Sockets opened with a token close (4001), on whichever replica holds them.
        let payload = revoked_payload(&ctx.app.app_id, &agent_no);
        state.agents.bus().deliver(&payload);
        state.store.notify_agents(&payload).await?;
        Ok(success(StatusCode::OK, json!({})))
    })
    .await
}

//! Caller-id pools (agents' contract §3.4): `…/CallerIdPools`, `…/CallerIdPools/{poolSid}`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::CtiError;
use super::{CtiContext, cti_style, idempotent_create, paged_list, read_body, success};
use crate::api::AppState;
use crate::domain::Fields;
use crate::domain::caller_id_pool::PoolSpec;
use crate::store::caller_id_pools::{PoolDeletion, PoolRecord};

/// Path of the collection: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;
/// Path of one pool: version, AccountSid, ApplicationSid, poolSid.
type PoolPath = Path<(String, String, String, String)>;

/// Refuses numbers outside the application's `allowedCallerIds` (20008).
fn check_numbers(ctx: &CtiContext, spec: &PoolSpec) -> Result<(), CtiError> {
    if spec
        .numbers
        .iter()
        .flatten()
        .any(|n| !ctx.app.may_display(n.as_str()))
    {
        return Err(CtiError::DisplayNumNotAllowed);
    }
    Ok(())
}

async fn existing(
    state: &AppState,
    ctx: &CtiContext,
    pool_sid: &str,
) -> Result<PoolRecord, CtiError> {
    if crate::domain::ids::PoolId::parse(pool_sid).is_none() {
        return Err(CtiError::PoolNotFound);
    }
    state
        .store
        .find_pool(&ctx.app.app_id, pool_sid)
        .await?
        .ok_or(CtiError::PoolNotFound)
}

/// `POST …/CallerIdPools`: 201 with the new pool.
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
        let spec = PoolSpec::parse(Fields(&create.body), true)?;
        check_numbers(&ctx, &spec)?;
        idempotent_create(state, &ctx.account, create.claim.as_ref(), async {
            let pool_sid = state.ids.pool(chrono::Utc::now());
            let pool = state
                .store
                .create_pool(&ctx.app.app_id, pool_sid.as_str(), &spec)
                .await?;
            Ok(json!({"callerIdPool": pool.to_json(state.settings.timezone)}))
        })
        .await
    })
    .await
}

/// `GET …/CallerIdPools?pageSize&cursor`: by poolSid.
pub async fn list(state: Data<AppState>, req: HttpRequest, path: AppPath) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let tz = state.settings.timezone;
        let app_id = &ctx.app.app_id;
        paged_list(
            req,
            "callerIdPools",
            |after, limit| async move {
                state
                    .store
                    .list_pools(app_id, after.as_deref(), limit)
                    .await
            },
            |p| &p.pool_sid,
            |p| p.to_json(tz),
        )
        .await
    })
    .await
}

/// `GET …/CallerIdPools/{poolSid}`.
pub async fn get(state: Data<AppState>, req: HttpRequest, path: PoolPath) -> HttpResponse {
    let (version, sid, app_id, pool_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let pool = existing(state, &ctx, &pool_sid).await?;
        Ok(success(
            StatusCode::OK,
            json!({"callerIdPool": pool.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `PATCH …/CallerIdPools/{poolSid}`: changes the fields given.
pub async fn update(
    state: Data<AppState>,
    req: HttpRequest,
    path: PoolPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, pool_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &pool_sid).await?;
        let change = read_body(req, payload).await?;
        let spec = PoolSpec::parse(Fields(&change.body), false)?;
        check_numbers(&ctx, &spec)?;
        let pool = state
            .store
            .update_pool(&ctx.app.app_id, &pool_sid, &spec)
            .await?
            .ok_or(CtiError::PoolNotFound)?;
        Ok(success(
            StatusCode::OK,
            json!({"callerIdPool": pool.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `DELETE …/CallerIdPools/{poolSid}`: 20004 while an agent names it.
pub async fn delete(state: Data<AppState>, req: HttpRequest, path: PoolPath) -> HttpResponse {
    let (version, sid, app_id, pool_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &pool_sid).await?;
        match state.store.delete_pool(&ctx.app.app_id, &pool_sid).await? {
            PoolDeletion::Deleted => Ok(success(StatusCode::OK, json!({}))),
            PoolDeletion::NotFound => Err(CtiError::PoolNotFound),
            PoolDeletion::InUseBy(agent_no) => Err(CtiError::InUse(format!(
                "caller-id pool in use by agent {agent_no}"
            ))),
        }
    })
    .await
}

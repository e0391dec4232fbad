//! Queues (agents' contract §3.2): `…/Queues`, `…/Queues/{queueSid}`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::CtiError;
use super::{
    CtiContext, cti_style, idempotent_create, paged_list, prompts_exist, read_body, success,
};
use crate::api::AppState;
use crate::domain::Fields;
use crate::domain::ids::QueueId;
use crate::domain::queue::QueueSettings;
use crate::store::queues::{QueueDeletion, QueueRecord};

/// Path of the collection: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;
/// Path of one queue: version, AccountSid, ApplicationSid, queueSid.
type QueuePath = Path<(String, String, String, String)>;

/// Queue `queue_sid` of the context's application, else 20003.
async fn existing(
    state: &AppState,
    ctx: &CtiContext,
    queue_sid: &str,
) -> Result<QueueRecord, CtiError> {
    if QueueId::parse(queue_sid).is_none() {
        return Err(CtiError::QueueNotFound);
    }
    state
        .store
        .find_queue(&ctx.app.app_id, queue_sid)
        .await?
        .ok_or(CtiError::QueueNotFound)
}

/// Checks what the settings name outside the queue: itself as overflow (10004), prompts
/// (10004); queues are checked by the store's write.
async fn check(
    state: &AppState,
    ctx: &CtiContext,
    queue_sid: &str,
    settings: &QueueSettings,
) -> Result<(), CtiError> {
    settings.check_overflow(queue_sid)?;
    prompts_exist(state, &ctx.app.app_id, settings.names().prompts).await?;
    Ok(())
}

/// `POST …/Queues`: 201 with the new queue.
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
        let settings = QueueSettings::default().apply(Fields(&create.body), true)?;
        let queue_sid = state.ids.queue(chrono::Utc::now());
        check(state, &ctx, queue_sid.as_str(), &settings).await?;
        idempotent_create(state, &ctx.account, create.claim.as_ref(), async {
            let queue = state
                .store
                .put_queue(&ctx.app.app_id, queue_sid.as_str(), &settings, true)
                .await?
                .ok_or(CtiError::QueueNotFound)?;
            Ok(json!({"queue": queue.to_json(state.settings.timezone)}))
        })
        .await
    })
    .await
}

/// `GET …/Queues?pageSize&cursor`: by queueSid.
pub async fn list(state: Data<AppState>, req: HttpRequest, path: AppPath) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let tz = state.settings.timezone;
        let app_id = &ctx.app.app_id;
        paged_list(
            req,
            "queues",
            |after, limit| async move {
                state
                    .store
                    .list_queues(app_id, after.as_deref(), limit)
                    .await
            },
            |q| &q.queue_sid,
            |q| q.to_json(tz),
        )
        .await
    })
    .await
}

/// `GET …/Queues/{queueSid}`.
pub async fn get(state: Data<AppState>, req: HttpRequest, path: QueuePath) -> HttpResponse {
    let (version, sid, app_id, queue_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let queue = existing(state, &ctx, &queue_sid).await?;
        Ok(success(
            StatusCode::OK,
            json!({"queue": queue.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `PATCH …/Queues/{queueSid}`: changes the fields given.
pub async fn update(
    state: Data<AppState>,
    req: HttpRequest,
    path: QueuePath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, queue_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let queue = existing(state, &ctx, &queue_sid).await?;
        let change = read_body(req, payload).await?;
        let settings = queue.settings.apply(Fields(&change.body), false)?;
        check(state, &ctx, &queue_sid, &settings).await?;
        let queue = state
            .store
            .put_queue(&ctx.app.app_id, &queue_sid, &settings, false)
            .await?
            .ok_or(CtiError::QueueNotFound)?;
        Ok(success(
            StatusCode::OK,
            json!({"queue": queue.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `DELETE …/Queues/{queueSid}`: 20004 while a route or an overflow names it.
pub async fn delete(state: Data<AppState>, req: HttpRequest, path: QueuePath) -> HttpResponse {
    let (version, sid, app_id, queue_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        existing(state, &ctx, &queue_sid).await?;
        match state
            .store
            .delete_queue(&ctx.app.app_id, &queue_sid)
            .await?
        {
            QueueDeletion::Deleted => Ok(success(StatusCode::OK, json!({}))),
            QueueDeletion::NotFound => Err(CtiError::QueueNotFound),
            QueueDeletion::InUse(by) => Err(CtiError::InUse(by)),
        }
    })
    .await
}

/// `GET …/Queues/{queueSid}/Live`: the queueEvent counters, the waiting callers
/// (`members`) and the members' states (`agents`), never masked.
pub async fn live(state: Data<AppState>, req: HttpRequest, path: QueuePath) -> HttpResponse {
    let (version, sid, app_id, queue_sid) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let queue = existing(state, &ctx, &queue_sid).await?;
        let live = crate::acd::live::load(&state.store, &queue).await?;
        let now = crate::domain::time::now_ms();
        Ok(success(
            StatusCode::OK,
            json!({"queue": live.to_json(now, state.settings.timezone)}),
        ))
    })
    .await
}

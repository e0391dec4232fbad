//! CTI settings (agents' contract §3.5): `GET|PATCH …/CtiSettings`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::CtiError;
use super::{cti_style, read_body, success};
use crate::api::error::ApiError;
use crate::api::{AppState, placement};
use crate::domain::Fields;
use crate::domain::cti::{CTI_FIELDS, CtiPatch};

/// Path: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;

/// `GET …/CtiSettings`.
pub async fn get(state: Data<AppState>, req: HttpRequest, path: AppPath) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        Ok(success(
            StatusCode::OK,
            json!({"ctiSettings": ctx.app.cti.to_json()}),
        ))
    })
    .await
}

/// Checks what a settings change names outside itself: the event URL's target (the
/// webhook guard) and the hold music prompt (10004 `unknown prompt x`).
pub async fn check_patch(state: &AppState, app_id: &str, patch: &CtiPatch) -> Result<(), ApiError> {
    if let Some(Some(url)) = &patch.event_url {
        placement::check_urls(state, [("eventUrl", url)]).await?;
    }
    if let Some(Some(prompt)) = &patch.music_on_hold {
        super::prompts_exist(state, app_id, [prompt]).await?;
    }
    Ok(())
}

/// `PATCH …/CtiSettings`: changes the fields given, answers all of them.
pub async fn update(
    state: Data<AppState>,
    req: HttpRequest,
    path: AppPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let change = read_body(req, payload).await?;
        let fields = Fields(&change.body);
        fields.only(CTI_FIELDS)?;
        let patch = CtiPatch::parse(fields)?;
        check_patch(state, &ctx.app.app_id, &patch).await?;
        let settings = state
            .store
            .update_cti(&ctx.app.app_id, &patch)
            .await?
            .ok_or_else(|| {
                CtiError::from(ApiError::App(
                    "applicationSid not found in this account".into(),
                ))
            })?;
        Ok(success(
            StatusCode::OK,
            json!({"ctiSettings": settings.to_json()}),
        ))
    })
    .await
}

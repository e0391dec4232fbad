//! Inbound numbers routed by an application (agents' contract §3.3):
//! `…/Numbers`, `…/Numbers/{number}`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::CtiError;
use super::{cti_style, paged_list, prompts_exist, read_body, success};
use crate::api::AppState;
use crate::domain::number::NumberRouting;
use crate::domain::{Fields, PhoneNumber};

/// Path of the collection: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;
/// Path of one number: version, AccountSid, ApplicationSid, number.
type NumberPath = Path<(String, String, String, String)>;

/// The number of the path; one that is not a phone number is granted to nobody (20005).
fn number_in_path(raw: &str) -> Result<PhoneNumber, CtiError> {
    PhoneNumber::parse("number", raw).map_err(|_| CtiError::NumberNotGranted)
}

/// `PUT …/Numbers/{number}`: creates (201) or replaces (200) the application's route.
pub async fn put(
    state: Data<AppState>,
    req: HttpRequest,
    path: NumberPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, number) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let number = number_in_path(&number)?;
        let body = read_body(req, payload).await?;
        let routing = NumberRouting::parse(Fields(&body.body))?;
        prompts_exist(state, &ctx.app.app_id, routing.names().prompts).await?;
        let created = state
            .store
            .route_number(&ctx.account.sid, &ctx.app.app_id, number.as_str(), &routing)
            .await?;
        let record = state
            .store
            .find_number(&ctx.app.app_id, number.as_str())
            .await?
            .ok_or(CtiError::NumberNotGranted)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(success(
            status,
            json!({"number": record.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `GET …/Numbers?pageSize&cursor`: the application's routed numbers, by number.
pub async fn list(state: Data<AppState>, req: HttpRequest, path: AppPath) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let tz = state.settings.timezone;
        let app_id = &ctx.app.app_id;
        paged_list(
            req,
            "numbers",
            |after, limit| async move {
                state
                    .store
                    .list_numbers(app_id, after.as_deref(), limit)
                    .await
            },
            |n| &n.number,
            |n| n.to_json(tz),
        )
        .await
    })
    .await
}

/// `GET …/Numbers/{number}`: 20005 unless the application routes it.
pub async fn get(state: Data<AppState>, req: HttpRequest, path: NumberPath) -> HttpResponse {
    let (version, sid, app_id, number) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let number = number_in_path(&number)?;
        let record = state
            .store
            .find_number(&ctx.app.app_id, number.as_str())
            .await?
            .ok_or(CtiError::NumberNotGranted)?;
        Ok(success(
            StatusCode::OK,
            json!({"number": record.to_json(state.settings.timezone)}),
        ))
    })
    .await
}

/// `DELETE …/Numbers/{number}`: removes the route (the grant stays); calls to the number
/// are refused from then on.
pub async fn delete(state: Data<AppState>, req: HttpRequest, path: NumberPath) -> HttpResponse {
    let (version, sid, app_id, number) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let number = number_in_path(&number)?;
        if state
            .store
            .unroute_number(&ctx.app.app_id, number.as_str())
            .await?
        {
            Ok(success(StatusCode::OK, json!({})))
        } else {
            Err(CtiError::NumberNotGranted)
        }
    })
    .await
}

//! `POST /admin/sandbox/inbound` (agents' contract §12): a simulated caller dials one of
//! the platform's numbers, for trying inbound routing without a phone. Only the sandbox
//! knows how; on FreeSWITCH nodes the route answers 404.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::admin::{AdminError, operator};
use super::{AppState, body};
use crate::domain::{Fields, PhoneNumber};

/// `POST /admin/sandbox/inbound` `{"from","to"}` → 201 `{"callSid"}`: the caller's leg.
/// 404 with statusCode 20005 when `to` is not granted to an account; 404 when the media
/// server is not the sandbox.
pub async fn inbound(state: Data<AppState>, req: HttpRequest, payload: Payload) -> HttpResponse {
    operator(&state, &req, async {
        let body = body::json_object(&req, payload).await?;
        let fields = Fields(&body);
        fields.only(&["from", "to"])?;
        let from = PhoneNumber::parse("from", fields.req_str("from")?)?;
        let to = PhoneNumber::parse("to", fields.req_str("to")?)?;
        if state.store.find_grant(to.as_str()).await?.is_none() {
            return Err(AdminError::new(
                StatusCode::NOT_FOUND,
                format!("number {to} is not granted to an account"),
            )
            .with_code("20005"));
        }
        let call_sid = state.ids.call(chrono::Utc::now());
        match state
            .media
            .dial_in(from.as_str(), to.as_str(), call_sid.as_str())
            .await
        {
            Ok(true) => Ok((StatusCode::CREATED, json!({"callSid": call_sid}))),
            Ok(false) => Err(AdminError::new(
                StatusCode::NOT_FOUND,
                "simulated callers need the sandbox media server",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "the sandbox could not place a simulated caller");
                Err(AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no media server is connected; retry",
                ))
            }
        }
    })
    .await
}

//! `POST /Accounts/{AccountSid}/VoiceCaptchas` (API.md §4). The code never reaches a log.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::error::{ApiError, Reply};
use super::placement::{BodyRequest, NewRequest};
use super::{AppState, notice_style, placement};
use crate::domain::captcha::VoiceCaptcha;
use crate::domain::{Fields, RequestId};
use crate::store::accept::CallRow;
use crate::store::accounts::AccountRecord;

/// Answer of an accepted captcha.
#[derive(Serialize)]
struct CaptchaAccepted<'a> {
    statuscode: &'static str,
    statusmsg: &'static str,
    requestid: &'a str,
    callid: &'a str,
}

/// `POST /Accounts/{AccountSid}/VoiceCaptchas`.
pub async fn create(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    let (state, req) = (&state, &req);
    notice_style(state, req, &sid, |account, request_id| async move {
        place(state, req, &account, payload, &request_id).await
    })
    .await
}

async fn place(
    state: &AppState,
    req: &HttpRequest,
    account: &AccountRecord,
    payload: Payload,
    request_id: &RequestId,
) -> Result<Reply, ApiError> {
    let BodyRequest { body, claim, app } = BodyRequest::read(state, req, account, payload).await?;
    let captcha = VoiceCaptcha::parse(Fields(&body))?;
    placement::check_caller_ids(&app, captcha.from.iter().map(|n| ("from", n)))?;

    let now = Utc::now();
    let call = CallRow {
        id: state.ids.call(now).to_string(),
        to_number: captcha.to.to_string(),
        conversation_id: None,
        leg_seq: 0,
    };
    let response = placement::to_json(&CaptchaAccepted {
        statuscode: "0",
        statusmsg: "succ",
        requestid: request_id.as_str(),
        callid: &call.id,
    })?;
    let request = NewRequest {
        request_id,
        account,
        app: &app,
        kind: "captcha",
        from: captcha.from.as_ref(),
        userdata: captcha.userdata,
        now,
        claim,
    };
    let acceptance = request.into_acceptance(
        &captcha.script,
        vec![call],
        None,
        Some(state.settings.captcha_limits),
        response,
    )?;
    placement::submit(state, acceptance).await
}

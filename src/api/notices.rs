//! `POST /Accounts/{AccountSid}/VoiceNotices` and `…/BatchVoiceNotices` (API.md §2, §3).

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;

use super::error::{ApiError, Reply};
use super::placement::{BodyRequest, NewRequest};
use super::{AppState, notice_style, placement};
use crate::domain::notice::VoiceNotice;
use crate::domain::{Fields, RequestId};
use crate::store::accept::CallRow;
use crate::store::accounts::AccountRecord;

/// Answer of an accepted notice.
#[derive(Serialize)]
struct NoticeAccepted<'a> {
    statuscode: &'static str,
    statusmsg: &'static str,
    requestid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callids: Option<Vec<CalleeCall<'a>>>,
}

/// One callee of a batch and its call.
#[derive(Serialize)]
struct CalleeCall<'a> {
    to: &'a str,
    callid: &'a str,
}

/// `POST /Accounts/{AccountSid}/VoiceNotices`.
pub async fn single(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    handle(&state, &req, &sid, payload, false).await
}

/// `POST /Accounts/{AccountSid}/BatchVoiceNotices`.
pub async fn batch(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    handle(&state, &req, &sid, payload, true).await
}

async fn handle(
    state: &AppState,
    req: &HttpRequest,
    sid: &str,
    payload: Payload,
    batch: bool,
) -> HttpResponse {
    notice_style(state, req, sid, |account, request_id| async move {
        place(state, req, &account, payload, &request_id, batch).await
    })
    .await
}

async fn place(
    state: &AppState,
    req: &HttpRequest,
    account: &AccountRecord,
    payload: Payload,
    request_id: &RequestId,
    batch: bool,
) -> Result<Reply, ApiError> {
    let BodyRequest { body, claim, app } = BodyRequest::read(state, req, account, payload).await?;
    let notice = VoiceNotice::parse(Fields(&body), batch)?;
    placement::check_caller_ids(&app, notice.from.iter().map(|n| ("from", n)))?;
    placement::check_prompts(state, &app, notice.script.prompts()).await?;

    let now = Utc::now();
    let calls: Vec<CallRow> = notice
        .to
        .iter()
        .map(|to| CallRow {
            id: state.ids.call(now).to_string(),
            to_number: to.to_string(),
            conversation_id: None,
            leg_seq: 0,
        })
        .collect();
    let response = NoticeAccepted {
        statuscode: "0",
        statusmsg: "succ",
        requestid: request_id.as_str(),
        callid: if batch {
            None
        } else {
            calls.first().map(|c| c.id.as_str())
        },
        callids: batch.then(|| {
            calls
                .iter()
                .map(|c| CalleeCall {
                    to: &c.to_number,
                    callid: &c.id,
                })
                .collect()
        }),
    };
    let response = placement::to_json(&response)?;
    let request = NewRequest {
        request_id,
        account,
        app: &app,
        kind: "notice",
        from: notice.from.as_ref(),
        userdata: notice.userdata,
        now,
        claim,
    };
    let acceptance = request.into_acceptance(&notice.script, calls, None, None, response)?;
    placement::submit(state, acceptance).await
}

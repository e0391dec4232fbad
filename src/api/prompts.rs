//! Prompts (API.md §9): `PUT`, `GET` (list) and `DELETE`
//! `/Accounts/{AccountSid}/Applications/{AppId}/Prompts[/{name}]`.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::{AppState, auth, body, placement};
use crate::domain::PromptName;
use crate::domain::prompt::{MAX_PROMPT_BYTES, check_wav};
use crate::store::applications::ApplicationRecord;

async fn authorized_app(
    state: &AppState,
    req: &HttpRequest,
    sid: &str,
    app_id: &str,
) -> Result<std::sync::Arc<ApplicationRecord>, ApiError> {
    let account = auth::customer(state, req, sid).await?;
    placement::application(state, &account, "appid", Some(app_id)).await
}

/// `PUT …/Prompts/{name}` with a WAV body (8 or 16 kHz mono PCM, ≤ 10 MB).
pub async fn put(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String, String)>,
    payload: Payload,
) -> HttpResponse {
    let (sid, app_id, name) = path.into_inner();
    placement::notice_reply(
        async {
            let app = authorized_app(&state, &req, &sid, &app_id).await?;
            let name = PromptName::parse("name", &name)?;
            let wav = body::read_limited(&req, payload, MAX_PROMPT_BYTES).await?;
            let info = check_wav(&wav)?;
            let meta = state
                .store
                .put_prompt(&app.app_id, name.as_str(), &wav, info)
                .await?;
            Ok(json!({"statuscode": "0", "statusmsg": "succ", "prompt": meta}))
        }
        .await,
    )
}

/// `GET …/Prompts`: the application's prompts by name.
pub async fn list(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String)>,
) -> HttpResponse {
    let (sid, app_id) = path.into_inner();
    placement::notice_reply(
        async {
            let app = authorized_app(&state, &req, &sid, &app_id).await?;
            let prompts = state.store.list_prompts(&app.app_id).await?;
            Ok(json!({"statuscode": "0", "statusmsg": "succ", "prompts": prompts}))
        }
        .await,
    )
}

/// `DELETE …/Prompts/{name}`; HTTP 404 with -7 if there is no such prompt.
pub async fn delete(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String, String)>,
) -> HttpResponse {
    let (sid, app_id, name) = path.into_inner();
    placement::notice_reply(
        async {
            let app = authorized_app(&state, &req, &sid, &app_id).await?;
            if !state.store.delete_prompt(&app.app_id, &name).await? {
                return Err(ApiError::NotFound(format!(
                    "prompt {} not found",
                    crate::domain::phone::printable(&name)
                )));
            }
            Ok(json!({"statuscode": "0", "statusmsg": "succ"}))
        }
        .await,
    )
}

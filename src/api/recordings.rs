//! Recordings of click-to-call conversations: `GET /Accounts/{AccountSid}/Recordings/{name}`,
//! the `recordingUrl` of a CDR (API.md §6.2). The media server writes the file under
//! `VOICEPAAS_RECORDINGS_DIR` (a directory it shares with the platform).

use actix_web::http::header::ContentType;
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};

use super::error::ApiError;
use super::{AppState, auth};
use crate::domain::ConversationId;

/// `GET …/Recordings/{ConversationSid}.wav`: the WAV file.
pub async fn get(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String)>,
) -> HttpResponse {
    let (sid, name) = path.into_inner();
    let found = async {
        let account = auth::customer(&state, &req, &sid).await?;
        let id = name
            .strip_suffix(".wav")
            .and_then(ConversationId::parse)
            .ok_or_else(|| {
                ApiError::Param("invalid recording name (expected <conversationSid>.wav)".into())
            })?;
        let missing = || ApiError::NotFound("recording not found".into());
        if !state.store.has_recording(&account.sid, id.as_str()).await? {
            return Err(missing());
        }
        let file = state
            .settings
            .recordings_dir
            .join(format!("{}.wav", id.as_str()));
        tokio::fs::read(&file).await.map_err(|_| missing())
    };
    match found.await {
        Ok(wav) => HttpResponse::Ok()
            .content_type(ContentType(mime_wav()))
            .body(wav),
        Err(e) => e.notice_response(None),
    }
}

fn mime_wav() -> actix_web::mime::Mime {
    "audio/wav"
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM)
}

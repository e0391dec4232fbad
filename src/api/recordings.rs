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
        let opened = tokio::fs::File::open(&file).await.map_err(|_| missing())?;
        let len = opened.metadata().await.map_err(|_| missing())?.len();
        Ok((opened, len))
    };
    match found.await {
        // Streamed from disk a chunk at a time: an hour-long recording is not read into
        // memory.
        Ok((file, len)) => HttpResponse::Ok()
            .content_type(ContentType(mime_wav()))
            .no_chunking(len)
            .streaming(chunks(file)),
        Err(e) => e.notice_response(None),
    }
}

/// Bytes read from the file per chunk of the answer.
const CHUNK: usize = 64 * 1024;

/// The file's contents as a stream of chunks.
fn chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, std::io::Error>> {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((actix_web::web::Bytes::from(buf), file)))
    })
}

fn mime_wav() -> actix_web::mime::Mime {
    "audio/wav"
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM)
}

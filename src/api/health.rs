//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers and at
//! least one media server is connected) (API.md §11).

use actix_web::HttpResponse;
use actix_web::web::Data;
use serde_json::json;

use super::AppState;

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers and a media server is connected, else
/// 503; the body says what is up.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    let database = match state.store.ping().await {
        Ok(()) => state.store.backend(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            "unreachable"
        }
    };
    let (up, nodes) = state.media.up();
    let ready = database != "unreachable" && up > 0;
    let status = if ready { "ready" } else { "unavailable" };
    let body = json!({"status": status, "database": database, "media": {"up": up, "nodes": nodes}});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

//! `GET /healthz` (the process is up) and `GET /readyz` (the database answers) (API.md §11).

use actix_web::HttpResponse;
use actix_web::web::Data;
use serde_json::json;

use super::AppState;

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers, else 503 saying what is down.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({"status": "ready", "database": state.store.backend()}))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}

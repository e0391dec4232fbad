//! `GET /healthz` (the process is up), `GET /readyz` (the database answers and at
//! least one media server is connected) and `GET /metrics` (API.md §11).

use actix_web::HttpResponse;
use actix_web::web::Data;
use serde_json::json;

use super::AppState;
use crate::telemetry::metrics::Snapshot;

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

/// The content type of `/metrics`: Prometheus' text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: this process's metrics and the database's call and outbox figures
/// (left out, with a warning in the log, when the database does not answer).
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    let figures = async {
        Ok::<_, crate::store::StoreError>(Snapshot {
            calls: state.store.call_counts().await?,
            outbox: state.store.outbox_counts().await?,
        })
    };
    let snapshot = match figures.await {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: database figures unavailable");
            None
        }
    };
    HttpResponse::Ok()
        .content_type(METRICS_CONTENT_TYPE)
        .body(crate::telemetry::metrics::metrics().render(snapshot.as_ref()))
}

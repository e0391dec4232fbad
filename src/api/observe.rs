//! Around every HTTP request: a request id (`RQ…`, the `requestid` of notice-style
//! answers and the `X-Request-Id` header of every answer), a `request` span carrying it so
//! every log line of the request shows it, the request's metrics, and one access-log line
//! (target `voicepaas::access`, level info).

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpMessage, HttpRequest};
use chrono::Utc;
use tracing::Instrument;

use super::AppState;
use super::error::ApiStatus;
use crate::domain::RequestId;
use crate::telemetry::metrics::metrics;

/// The answer header naming the request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware (`actix_web::middleware::from_fn(observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = match req.app_data::<Data<AppState>>() {
        Some(state) => state.ids.request(Utc::now()),
        None => return next.call(req).await,
    };
    req.extensions_mut().insert(id.clone());
    let method = method_name(req.method());
    let route = route_pattern(req.match_pattern());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let result = next.call(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let (status, statuscode) = match &result {
        Ok(res) => {
            let status = res.status().as_u16();
            let given = res.response().extensions().get::<ApiStatus>().map(|s| s.0);
            (status, given.unwrap_or_else(|| success_code(route, status)))
        }
        Err(e) => (e.as_response_error().status_code().as_u16(), ""),
    };
    metrics().http_request(method, route, status, statuscode, took);
    span.in_scope(|| {
        tracing::info!(target: "voicepaas::access", status, statuscode, latency_ms = took.as_millis() as u64, "answered");
    });
    result.map(|mut res| {
        // A replayed answer already names the request it answers.
        if !res.headers().contains_key(X_REQUEST_ID)
            && let Ok(value) = HeaderValue::from_str(id.as_str())
        {
            res.headers_mut().insert(X_REQUEST_ID, value);
        }
        res
    })
}

/// The method as a static label (`OTHER` for extension methods).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The matched route pattern as the router's own static string (`unmatched` otherwise).
fn route_pattern(matched: Option<String>) -> &'static str {
    static PATTERNS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| super::routes().into_iter().map(|(_, p)| p).collect());
    matched
        .and_then(|m| patterns.get(m.as_str()).copied())
        .unwrap_or("unmatched")
}

/// The `statuscode` of an answer no error made: success in the route's dialect
/// (`00000` for click-to-call, `0` for the other customer endpoints); `""` for endpoints
/// without one (health, operator, console).
fn success_code(route: &str, status: u16) -> &'static str {
    if !(200..300).contains(&status) {
        ""
    } else if route.contains("/ctc/") {
        "00000"
    } else if route.starts_with("/Accounts/") {
        "0"
    } else {
        ""
    }
}

/// The id `observe` gave this request (a new one where the middleware is not mounted).
pub fn request_id(state: &AppState, req: &HttpRequest) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| state.ids.request(Utc::now()))
}

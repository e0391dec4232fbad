//! `GET /console`: the ops console (API.md §8), one self-contained page (`console/
//! index.html`, no CDN) that signs in with an account's sid and token and uses the CDR
//! and delivery endpoints from the browser.

use actix_web::HttpResponse;
use actix_web::http::header::{self, ContentType};
use actix_web::web::Data;

use super::AppState;

/// The page, compiled into the binary.
const PAGE: &str = include_str!("../../console/index.html");

/// Where the page learns the platform's time zone (every time it shows is in it).
const TIME_ZONE_SLOT: &str = "__VOICEPAAS_TIME_ZONE__";

/// The console page, told the platform's time zone.
pub async fn page(state: Data<AppState>) -> HttpResponse {
    let page = PAGE.replace(TIME_ZONE_SLOT, state.settings.timezone.name());
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src blob:",
        ))
        .body(page)
}

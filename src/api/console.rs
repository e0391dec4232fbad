//! `GET /console`: the ops console (API.md §8), one self-contained page (`console/
//! index.html`, no CDN) that signs in with an account's sid and token and uses the CDR
//! and delivery endpoints from the browser.

use actix_web::HttpResponse;
use actix_web::http::header::{self, ContentType};

/// The page, compiled into the binary.
const PAGE: &str = include_str!("../../console/index.html");

/// The console page.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src blob:",
        ))
        .body(PAGE)
}

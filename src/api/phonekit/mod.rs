//! `/PhoneKit/…`: the agent SDK and toolbar (agents' contract §13), compiled into the
//! binary — `PhoneKit.js`, the toolbar page, the bundled JsSIP 3.3.6 (with its licences)
//! and the ring tone — and, with the sandbox, a demo page that signs in a sandbox agent
//! ([`demo`]).

pub mod demo;

use actix_web::HttpResponse;
use actix_web::http::header;

const PHONEKIT_JS: &str = include_str!("../../../phonekit/js/PhoneKit.js");
const JSSIP_JS: &str = include_str!("../../../phonekit/js/jssip-3.3.6.min.js");
const TEMPLATE: &str = include_str!("../../../phonekit/template/template.html");
const DEMO: &str = include_str!("../../../phonekit/demo.html");
const LICENSES: &str = include_str!("../../../phonekit/LICENSES.txt");
const RING: &[u8] = include_bytes!("../../../phonekit/res/ring.wav");

fn file(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(body)
}

/// `GET /PhoneKit/js/PhoneKit.js`: the SDK (`window.PhoneKit`).
pub async fn sdk() -> HttpResponse {
    file("text/javascript; charset=utf-8", PHONEKIT_JS.as_bytes())
}

/// `GET /PhoneKit/js/jssip-3.3.6.min.js`: JsSIP 3.3.6 for the WebPhone (`window.JsSIP`).
pub async fn jssip() -> HttpResponse {
    file("text/javascript; charset=utf-8", JSSIP_JS.as_bytes())
}

/// `GET /PhoneKit/template/template.html`: the toolbar, for the `pbFrame` iframe.
pub async fn template() -> HttpResponse {
    file("text/html; charset=utf-8", TEMPLATE.as_bytes())
}

/// `GET /PhoneKit/res/ring.wav`: the WebPhone's ring tone.
pub async fn ring() -> HttpResponse {
    file("audio/wav", RING)
}

/// `GET /PhoneKit/LICENSES.txt`: the licences of the bundled third-party code.
pub async fn licenses() -> HttpResponse {
    file("text/plain; charset=utf-8", LICENSES.as_bytes())
}

/// `GET /PhoneKit/demo.html`: the toolbar beside a pretend CRM, signed in as a sandbox
/// agent (404 unless the media server is the sandbox).
pub async fn demo_page(state: actix_web::web::Data<super::AppState>) -> HttpResponse {
    if !demo::enabled(&state) {
        return demo::not_here();
    }
    file("text/html; charset=utf-8", DEMO.as_bytes())
}

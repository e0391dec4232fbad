//! The HTTP surface: one module per resource, auth extractors, and the statuscode mapping
//! (`error`). Handlers stay thin: parse → domain type → one store call → answer. The
//! route table below is the single list of routes: the server registers exactly these,
//! and a test checks each is in `api-docs/openapi.yaml`.

mod admin;
mod admin_numbers;
mod admin_sandbox;
mod auth;
mod body;
mod captchas;
mod cdrs;
mod console;
mod conversations;
pub mod cti;
pub mod error;
mod freeswitch;
mod health;
mod notices;
pub mod observe;
mod phonekit;
mod placement;
mod prompts;
mod recordings;

use std::future::Future;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, Route};

use crate::config::Settings;
use crate::domain::{IdGenerator, RequestId};
use crate::store::Store;
use crate::store::accounts::AccountRecord;
use error::{ApiError, Reply};

/// What every handler can reach.
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Id generator of this node.
    pub ids: std::sync::Arc<IdGenerator>,
    /// Settings.
    pub settings: Settings,
    /// The media servers.
    pub media: std::sync::Arc<crate::media::pool::MediaPool>,
    /// The call orchestrator (told when calls are queued; drives live conversations).
    pub orchestrator: crate::orchestrator::Orchestrator,
    /// Agent sessions.
    pub agents: std::sync::Arc<crate::agents::Agents>,
}

/// The OpenAPI document, served at `/api-docs/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../api-docs/openapi.yaml");

/// The agent API's paths (agents' contract §3).
const AGENTS: &str = "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Agents";
const AGENT: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Agents/{AgentNo}";
const AGENT_TOKENS: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Agents/{AgentNo}/Tokens";
const AGENT_COMMANDS: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Agents/{AgentNo}/Commands";
const AGENT_SOCKET: &str = "/v1/Applications/{ApplicationSid}/cti";
const QUEUES: &str = "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Queues";
const QUEUE: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Queues/{QueueSid}";
const QUEUE_LIVE: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Queues/{QueueSid}/Live";
const NUMBERS: &str = "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Numbers";
const OUTBOUND_CALLS: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/OutboundCalls";
const NUMBER: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/Numbers/{Number}";
const POOLS: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/CallerIdPools";
const POOL: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/CallerIdPools/{PoolSid}";
const CTI_SETTINGS: &str =
    "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/CtiSettings";

/// Every route: method, path (as in the OpenAPI document) and handler.
fn route_table() -> Vec<(Method, &'static str, Route)> {
    let post = || web::route().method(Method::POST);
    let get = || web::route().method(Method::GET);
    let put = || web::route().method(Method::PUT);
    let patch = || web::route().method(Method::PATCH);
    let delete = || web::route().method(Method::DELETE);
    vec![
        (
            Method::POST,
            "/Accounts/{AccountSid}/VoiceNotices",
            post().to(notices::single),
        ),
        (
            Method::POST,
            "/Accounts/{AccountSid}/BatchVoiceNotices",
            post().to(notices::batch),
        ),
        (
            Method::POST,
            "/Accounts/{AccountSid}/VoiceCaptchas",
            post().to(captchas::create),
        ),
        (
            Method::POST,
            "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/ctc/Conversations",
            post().to(conversations::create),
        ),
        (
            Method::POST,
            "/{SoftVersion}/Accounts/{AccountSid}/Applications/{ApplicationSid}/ctc/Conversations/{ConversationSid}",
            post().to(conversations::act),
        ),
        (Method::POST, AGENTS, post().to(cti::agents::create)),
        (Method::GET, AGENTS, get().to(cti::agents::list)),
        (Method::GET, AGENT, get().to(cti::agents::get)),
        (Method::PATCH, AGENT, patch().to(cti::agents::update)),
        (Method::DELETE, AGENT, delete().to(cti::agents::delete)),
        (
            Method::POST,
            AGENT_TOKENS,
            post().to(cti::agents::mint_token),
        ),
        (
            Method::DELETE,
            AGENT_TOKENS,
            delete().to(cti::agents::revoke_tokens),
        ),
        (Method::POST, AGENT_COMMANDS, post().to(cti::commands::run)),
        (Method::GET, AGENT_SOCKET, get().to(cti::socket::connect)),
        (Method::POST, POOLS, post().to(cti::pools::create)),
        (Method::GET, POOLS, get().to(cti::pools::list)),
        (Method::GET, POOL, get().to(cti::pools::get)),
        (Method::PATCH, POOL, patch().to(cti::pools::update)),
        (Method::DELETE, POOL, delete().to(cti::pools::delete)),
        (Method::POST, QUEUES, post().to(cti::queues::create)),
        (Method::GET, QUEUES, get().to(cti::queues::list)),
        (Method::GET, QUEUE, get().to(cti::queues::get)),
        (Method::PATCH, QUEUE, patch().to(cti::queues::update)),
        (Method::DELETE, QUEUE, delete().to(cti::queues::delete)),
        (Method::GET, QUEUE_LIVE, get().to(cti::queues::live)),
        (Method::GET, NUMBERS, get().to(cti::numbers::list)),
        (
            Method::POST,
            OUTBOUND_CALLS,
            post().to(cti::outbound::create),
        ),
        (Method::PUT, NUMBER, put().to(cti::numbers::put)),
        (Method::GET, NUMBER, get().to(cti::numbers::get)),
        (Method::DELETE, NUMBER, delete().to(cti::numbers::delete)),
        (Method::GET, CTI_SETTINGS, get().to(cti::settings::get)),
        (
            Method::PATCH,
            CTI_SETTINGS,
            patch().to(cti::settings::update),
        ),
        (
            Method::GET,
            "/Accounts/{AccountSid}/Applications/{AppId}/Prompts",
            get().to(prompts::list),
        ),
        (
            Method::PUT,
            "/Accounts/{AccountSid}/Applications/{AppId}/Prompts/{Name}",
            put().to(prompts::put),
        ),
        (
            Method::DELETE,
            "/Accounts/{AccountSid}/Applications/{AppId}/Prompts/{Name}",
            delete().to(prompts::delete),
        ),
        (
            Method::GET,
            "/Accounts/{AccountSid}/Recordings/{Name}",
            get().to(recordings::get),
        ),
        (
            Method::GET,
            "/Accounts/{AccountSid}/Cdrs",
            get().to(cdrs::list),
        ),
        (
            Method::POST,
            "/Accounts/{AccountSid}/Cdrs/Redeliver",
            post().to(cdrs::redeliver_range),
        ),
        (
            Method::GET,
            "/Accounts/{AccountSid}/Cdrs/{Id}",
            get().to(cdrs::get),
        ),
        (
            Method::POST,
            "/Accounts/{AccountSid}/Cdrs/{Id}/Redeliver",
            post().to(cdrs::redeliver_one),
        ),
        (
            Method::GET,
            "/Accounts/{AccountSid}/Deliveries",
            get().to(cdrs::deliveries),
        ),
        (Method::GET, "/console", get().to(console::page)),
        (
            Method::GET,
            "/PhoneKit/js/PhoneKit.js",
            get().to(phonekit::sdk),
        ),
        (
            Method::GET,
            "/PhoneKit/js/jssip-3.3.6.min.js",
            get().to(phonekit::jssip),
        ),
        (
            Method::GET,
            "/PhoneKit/template/template.html",
            get().to(phonekit::template),
        ),
        (
            Method::GET,
            "/PhoneKit/res/ring.wav",
            get().to(phonekit::ring),
        ),
        (
            Method::GET,
            "/PhoneKit/LICENSES.txt",
            get().to(phonekit::licenses),
        ),
        (
            Method::GET,
            "/PhoneKit/demo.html",
            get().to(phonekit::demo_page),
        ),
        (
            Method::POST,
            "/PhoneKit/demo/agent",
            post().to(phonekit::demo::agent),
        ),
        (
            Method::POST,
            "/PhoneKit/demo/call",
            post().to(phonekit::demo::call),
        ),
        (
            Method::POST,
            "/admin/accounts",
            post().to(admin::create_account),
        ),
        (
            Method::GET,
            "/admin/accounts",
            get().to(admin::list_accounts),
        ),
        (
            Method::PATCH,
            "/admin/accounts/{AccountSid}",
            patch().to(admin::update_account),
        ),
        (
            Method::POST,
            "/admin/accounts/{AccountSid}/token",
            post().to(admin::rotate_token),
        ),
        (
            Method::POST,
            "/admin/accounts/{AccountSid}/applications",
            post().to(admin::create_app),
        ),
        (
            Method::GET,
            "/admin/accounts/{AccountSid}/applications",
            get().to(admin::list_apps),
        ),
        (
            Method::PATCH,
            "/admin/accounts/{AccountSid}/applications/{AppId}",
            patch().to(admin::update_app),
        ),
        (Method::GET, "/admin/numbers", get().to(admin_numbers::list)),
        (
            Method::PUT,
            "/admin/numbers/{Number}",
            put().to(admin_numbers::grant),
        ),
        (
            Method::DELETE,
            "/admin/numbers/{Number}",
            delete().to(admin_numbers::revoke),
        ),
        (
            Method::POST,
            "/admin/sandbox/inbound",
            post().to(admin_sandbox::inbound),
        ),
        (
            Method::POST,
            "/freeswitch/directory",
            post().to(freeswitch::directory),
        ),
        (Method::GET, "/healthz", get().to(health::healthz)),
        (Method::GET, "/readyz", get().to(health::readyz)),
        (Method::GET, "/metrics", get().to(health::metrics)),
        (Method::GET, "/api-docs/openapi.yaml", get().to(openapi)),
    ]
}

/// Method and path of every route the server answers.
pub fn routes() -> Vec<(Method, &'static str)> {
    route_table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Registers every route, and a JSON 404 for anything else.
pub fn configure(cfg: &mut ServiceConfig) {
    for (_, path, route) in route_table() {
        cfg.route(path, route);
    }
    cfg.default_service(web::to(no_such_route));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}

/// Anything no route answers: HTTP 405 (with `Allow`) when the path is a route's with
/// another method, else 404; `{"error"}` under `/admin`, the click-to-call shape under
/// `…/ctc/`, the notice shape elsewhere.
async fn no_such_route(req: HttpRequest) -> HttpResponse {
    static PATTERNS: std::sync::LazyLock<Vec<(Method, actix_web::dev::ResourceDef)>> =
        std::sync::LazyLock::new(|| {
            routes()
                .into_iter()
                .map(|(method, path)| (method, actix_web::dev::ResourceDef::new(path)))
                .collect()
        });
    let path = req.path();
    let allowed: Vec<&str> = PATTERNS
        .iter()
        .filter(|(_, pattern)| pattern.is_match(path))
        .map(|(method, _)| method.as_str())
        .collect();
    let allow = allowed.join(", ");
    // The raw path (percent-encoded, so printable), quoted and bounded.
    let shown = format!("{:?}", path.chars().take(200).collect::<String>());
    let error = if allowed.is_empty() {
        ApiError::UnknownRoute(format!("no such route: {} {shown}", req.method()))
    } else {
        ApiError::MethodNotAllowed(format!(
            "{} is not allowed on {shown} (allowed: {allow})",
            req.method()
        ))
    };
    let mut response = if path.starts_with("/admin/") || path == "/admin" {
        HttpResponse::build(error.http_status(false))
            .json(serde_json::json!({"error": error.to_string()}))
    } else if path.contains("/ctc/") {
        error.ctc_response()
    } else if path.contains("/Applications/") && !path.starts_with("/Accounts/") {
        cti::error::CtiError::from(error).response()
    } else {
        error.notice_response(None)
    };
    if !allowed.is_empty()
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow)
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Runs `place` for an authenticated notice-style request and renders the result with
/// `statuscode`s; every answer after authentication carries the `requestid`.
async fn notice_style<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    sid: &str,
    place: F,
) -> HttpResponse
where
    F: FnOnce(Arc<AccountRecord>, RequestId) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let account = match auth::customer(state, req, sid).await {
        Ok(account) => account,
        Err(e) => return e.notice_response(None),
    };
    let request_id = observe::request_id(state, req);
    match place(account, request_id.clone()).await {
        Ok(reply) => reply.into_response(),
        Err(e) => e.notice_response(Some(&request_id)),
    }
}

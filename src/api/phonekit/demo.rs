//! The PhoneKit demo's backend (sandbox only): `POST /PhoneKit/demo/agent` sets up, once, a
//! demo account with an application, a queue, two agents, a supervisor and a number routed
//! to the queue, and hands out a fresh token for one of them; `POST /PhoneKit/demo/call`
//! has a simulated customer dial that number. With real media servers both answer 404:
//! nothing here can place a real call or exist on a production platform.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::super::{AppState, body};
use crate::config::MediaSetting;
use crate::domain::agent::NewAgent;
use crate::domain::application::AppSettings;
use crate::domain::credentials::{hash_password, new_agent_token};
use crate::domain::number::NumberRouting;
use crate::domain::queue::QueueSettings;
use crate::domain::time::now_ms;
use crate::domain::{Fields, ParamError};
use crate::store::StoreError;
use crate::store::agents::AgentWriteError;
use crate::store::numbers::NumberWriteError;
use crate::store::queues::QueueWriteError;

/// The demo account's (and application's) name.
const DEMO_NAME: &str = "PhoneKit demo";
/// The demo queue's name.
const QUEUE_NAME: &str = "demo";
/// The number the simulated customers dial.
pub const DEMO_NUMBER: &str = "4000000000";
/// The demo's people: agentNo, name, role.
const PEOPLE: [(&str, &str, &str); 3] = [
    ("1001", "Li Lei", "agent"),
    ("1002", "Han Meimei", "agent"),
    ("9001", "Wang Fang", "supervisor"),
];
/// Seconds a demo token lasts (PhoneKit asks for another at each reconnect).
const TOKEN_SECS: i64 = 600;
/// The caller the demo's customers call from (the sandbox's ordinary caller: hangs up 60 s
/// after it is answered).
const CUSTOMER: &str = "13800138000";

/// Why the demo could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The demo queue could not be written.
    #[error(transparent)]
    Queue(#[from] QueueWriteError),
    /// A demo agent could not be written.
    #[error(transparent)]
    Agent(#[from] AgentWriteError),
    /// The demo number could not be routed.
    #[error(transparent)]
    Number(#[from] NumberWriteError),
    /// A request field was wrong.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// No media server answered.
    #[error("the sandbox media server is not connected; retry")]
    Media,
}

impl DemoError {
    fn response(&self) -> HttpResponse {
        let status = match self {
            Self::Param(_) => StatusCode::BAD_REQUEST,
            Self::Media | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "PhoneKit demo");
        }
        HttpResponse::build(status).json(json!({"error": self.to_string()}))
    }
}

/// Whether the demo is served: only with the sandbox media server.
pub fn enabled(state: &AppState) -> bool {
    state.settings.media == MediaSetting::Sandbox
}

/// The demo's answer on a platform with real media servers.
pub fn not_here() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({"error": "the PhoneKit demo runs only with the sandbox media server"}))
}

/// One serialised setup at a time (two first visits must not create two demos).
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The demo's application (set up if it is not there yet): (appSid, queueSid).
async fn ensure(state: &AppState) -> Result<(String, String), DemoError> {
    let _one = SETUP.lock().await;
    let store = &state.store;
    let account = match store
        .list_accounts()
        .await?
        .into_iter()
        .find(|a| a.name == DEMO_NAME)
    {
        Some(a) => a.sid,
        None => store.create_account(DEMO_NAME).await?.0.sid,
    };
    let app = match store
        .list_apps(&account)
        .await?
        .into_iter()
        .find(|a| a.name == DEMO_NAME)
    {
        Some(a) => a.app_id,
        None => {
            let settings = AppSettings::parse(Fields(&fields(json!({"name": DEMO_NAME}))), true)?;
            store.create_app(&account, &settings).await?.app_id
        }
    };
    let queue = match store
        .list_queues(&app, None, 100)
        .await?
        .into_iter()
        .find(|q| q.settings.name == QUEUE_NAME)
    {
        Some(q) => q.queue_sid,
        None => {
            let settings =
                QueueSettings::from_json(&json!({"name": QUEUE_NAME, "ringTimeout": 20}))?;
            let sid = state.ids.queue(chrono::Utc::now()).to_string();
            store.put_queue(&app, &sid, &settings, true).await?;
            sid
        }
    };
    for (agent_no, name, role) in PEOPLE {
        if store.find_agent_alone(&app, agent_no).await?.is_some() {
            continue;
        }
        let pwd = uuid::Uuid::new_v4().simple().to_string();
        // The agents answer with the toolbar; the supervisor takes no queue calls.
        let queues = match role {
            "agent" => json!([{"queueSid": queue}]),
            _ => json!([]),
        };
        let body = json!({"agentNo": agent_no, "name": name, "role": role, "pwd": pwd, "wrapupTime": 10,
                          "autoAnswer": true, "queues": queues});
        let new = NewAgent::parse(Fields(&fields(body)))?;
        let hash = hash_password(&pwd).map_err(|e| ParamError::new(e.to_string()))?;
        store
            .create_agent(&app, &new, &hash, state.settings.sip_number_base)
            .await?;
    }
    if store.find_grant(DEMO_NUMBER).await?.is_none() {
        store.grant_number(DEMO_NUMBER, &account).await?;
    }
    if store.find_number(&app, DEMO_NUMBER).await?.is_none() {
        let routing = json!({"name": "demo line", "route": {"type": "queue", "queueSid": queue}});
        let routing = NumberRouting::parse(Fields(&fields(routing)))?;
        store
            .route_number(&account, &app, DEMO_NUMBER, &routing)
            .await?;
    }
    Ok((app, queue))
}

/// The fields of a body the demo writes itself (always an object).
fn fields(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// `POST /PhoneKit/demo/agent` `{"agentNo"}` (`1001`, `1002` or `9001`; default `1001`) →
/// `{"appSid","agentNo","token","number","agents"}`.
pub async fn agent(state: Data<AppState>, req: HttpRequest, payload: Payload) -> HttpResponse {
    if !enabled(&state) {
        return not_here();
    }
    let result = async {
        let body = body::json_object(&req, payload).await.unwrap_or_default();
        let fields = Fields(&body);
        let agent_no = fields.opt_str("agentNo")?.unwrap_or("1001").to_string();
        if !PEOPLE.iter().any(|(no, ..)| *no == agent_no) {
            return Err(DemoError::Param(ParamError::new("agentNo must be 1001, 1002 or 9001")));
        }
        let (app, _queue) = ensure(&state).await?;
        let token = new_agent_token();
        store_token(&state, &app, &agent_no, &token).await?;
        let people: Vec<Value> = PEOPLE
            .iter()
            .map(|(no, name, role)| json!({"agentNo": no, "name": name, "role": role}))
            .collect();
        Ok::<_, DemoError>(json!({"appSid": app, "agentNo": agent_no, "token": token, "number": DEMO_NUMBER, "agents": people}))
    }
    .await;
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => e.response(),
    }
}

async fn store_token(
    state: &AppState,
    app: &str,
    agent_no: &str,
    token: &str,
) -> Result<(), DemoError> {
    let expires = now_ms() + TOKEN_SECS * 1000;
    state
        .store
        .mint_agent_token(app, agent_no, token, expires)
        .await?;
    Ok(())
}

/// `POST /PhoneKit/demo/call` → `{"callSid","from","to"}`: a simulated customer dials the
/// demo number (and hangs up 60 s after it is answered).
pub async fn call(state: Data<AppState>) -> HttpResponse {
    if !enabled(&state) {
        return not_here();
    }
    let result = async {
        ensure(&state).await?;
        let call_sid = state.ids.call(chrono::Utc::now()).to_string();
        match state.media.dial_in(CUSTOMER, DEMO_NUMBER, &call_sid).await {
            Ok(true) => Ok(json!({"callSid": call_sid, "from": CUSTOMER, "to": DEMO_NUMBER})),
            _ => Err(DemoError::Media),
        }
    }
    .await;
    match result {
        Ok(v) => HttpResponse::Created().json(v),
        Err(e) => e.response(),
    }
}

//! Agent commands over REST (agents' contract §5): `POST …/Agents/{agentNo}/Commands`
//! `{"cmd","params"}` runs a command as that agent and answers the socket's reply without
//! `id`, with the HTTP status of its statusCode. A `login` here without a socket makes a
//! socketless session (no grace rule; it ends by logout).

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::error::CtiError;
use super::{cti_style, read_body, success};
use crate::agents::commands::Origin;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::domain::Fields;

/// Path: version, AccountSid, ApplicationSid, agentNo.
type AgentPath = Path<(String, String, String, String)>;

/// `POST …/Agents/{agentNo}/Commands`.
pub async fn run(
    state: Data<AppState>,
    req: HttpRequest,
    path: AgentPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id, agent_no) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let body = read_body(req, payload).await?.body;
        let fields = Fields(&body);
        fields.only(&["cmd", "params"])?;
        let cmd = fields.req_str("cmd")?;
        if cmd == "auth" {
            return Err(ApiError::Param("auth is a socket command".into()).into());
        }
        let params = match fields.raw("params") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(ApiError::Param("params must be an object".into()).into()),
        };
        if crate::domain::agent::AgentNo::parse("agentNo", &agent_no).is_err() {
            return Err(CtiError::AgentNotFound);
        }
        let agent = state
            .store
            .find_agent_alone(&ctx.app.app_id, &agent_no)
            .await?
            .ok_or(CtiError::AgentNotFound)?;
        // Only a login asks whether a socket is there (a socketless session otherwise).
        let attached = cmd == "login"
            && state
                .store
                .attached_socket(&ctx.app.app_id, &agent_no)
                .await?
                .is_some();
        let data = state
            .agents
            .run(
                &ctx.app.app_id,
                &agent,
                cmd,
                &params,
                Origin::Rest,
                attached,
            )
            .await?;
        Ok(success(StatusCode::OK, json!({"data": data})))
    })
    .await
}

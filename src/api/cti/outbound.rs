//! Backend outbound calls (agents' contract §3.6): `POST …/OutboundCalls` dials a user
//! and, once answered, has it wait for a queue's agents or for one agent.

use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

use super::error::CtiError;
use super::{cti_style, read_body};
use crate::api::placement::{self, NewRequest};
use crate::api::{AppState, observe};
use crate::domain::agent::AgentNo;
use crate::domain::agent_call::{USER_DATA_RULE, valid_user_data};
use crate::domain::ids::QueueId;
use crate::domain::{CallKind, Fields, ParamError, PhoneNumber};
use crate::orchestrator::flows::agent::{Outbound, Target};
use crate::store::accept::CallRow;
use crate::store::agent_calls::NotInPool;

/// Path of the collection: version, AccountSid, ApplicationSid.
type AppPath = Path<(String, String, String)>;

/// The fields of the request.
const FIELDS: &[&str] = &[
    "userNumber",
    "displayNum",
    "queueSid",
    "agentNo",
    "userData",
    "maxWaitSeconds",
];

/// How long the user waits for a named agent unless told (the contract's default).
const AGENT_WAIT_SECS: u32 = 60;

/// `POST …/OutboundCalls`: 200 with the conversation and the user leg. The call is
/// queued like any other (paced by the account's `cps`, started as `maxConcurrentCalls`
/// allows; 10008 only when the account's queue is full).
pub async fn create(
    state: Data<AppState>,
    req: HttpRequest,
    path: AppPath,
    payload: Payload,
) -> HttpResponse {
    let (version, sid, app_id) = path.into_inner();
    let (state, req) = (&state, &req);
    cti_style(state, req, (&version, &sid, &app_id), |ctx| async move {
        let create = read_body(req, payload).await?;
        let fields = Fields(&create.body);
        fields.only(FIELDS)?;
        let user_number = PhoneNumber::parse("userNumber", fields.req_str("userNumber")?)?;
        let display_num = fields.opt_nonempty_str("displayNum")?.unwrap_or_default();
        if !display_num.is_empty() {
            PhoneNumber::parse("displayNum", display_num)?;
        }
        let user_data = fields.opt_str("userData")?.map(str::to_string);
        if user_data.as_deref().is_some_and(|d| !valid_user_data(d)) {
            return Err(ParamError::new(USER_DATA_RULE).into());
        }
        let max_wait = fields.opt_int("maxWaitSeconds", 1, 86_400)?;
        let app = &ctx.app;
        let (target, queue_wait) = match (
            fields.opt_nonempty_str("queueSid")?,
            fields.opt_nonempty_str("agentNo")?,
        ) {
            (Some(queue), None) => {
                let found = match QueueId::parse(queue) {
                    Some(_) => state.store.find_queue(&app.app_id, queue).await?,
                    None => None,
                };
                let queue = found.ok_or(CtiError::QueueNotFound)?;
                let wait = match queue.settings.max_wait_secs {
                    0 => AGENT_WAIT_SECS,
                    own => own,
                };
                (Target::Queue(queue.queue_sid), wait)
            }
            (None, Some(agent)) => {
                let agent = AgentNo::parse("agentNo", agent)?;
                state
                    .store
                    .find_agent(&app.app_id, agent.as_str())
                    .await?
                    .ok_or(CtiError::AgentNotFound)?;
                (Target::Agent(agent.as_str().to_string()), AGENT_WAIT_SECS)
            }
            _ => {
                return Err(ParamError::new("give exactly one of queueSid and agentNo").into());
            }
        };
        let caller_id = state
            .store
            .agent_caller_id(&app.app_id, None, display_num)
            .await?
            .map_err(|NotInPool| CtiError::DisplayNumNotAllowed)?;
        let caller_id = caller_id
            .map(|n| PhoneNumber::parse("displayNum", &n))
            .transpose()?;
        let outbound = Outbound {
            caller_id: caller_id.as_ref().map(ToString::to_string),
            display_num: display_num.to_string(),
            answer_timeout: ctx.account.answer_timeout.clamp(1, 600) as u32,
            max_wait_secs: max_wait.map_or(queue_wait, |w| w as u32),
        };
        let stored = state
            .orchestrator
            .outbound_plan(app, user_number.as_str(), target, outbound)
            .await;
        let now = Utc::now();
        let request_id = observe::request_id(state, req);
        let conversation_id = state.ids.conversation(now).to_string();
        let user_leg = CallRow {
            id: state.ids.call(now).to_string(),
            to_number: user_number.to_string(),
            conversation_id: Some(conversation_id.clone()),
            leg_seq: 0,
        };
        let response = placement::to_json(&json!({
            "statusCode": "00000",
            "statusMsg": "success",
            "conversationSid": conversation_id,
            "callSid": user_leg.id,
        }))?;
        let request = NewRequest {
            request_id: &request_id,
            account: &ctx.account,
            app,
            kind: CallKind::Agent.as_str(),
            from: caller_id.as_ref(),
            userdata: user_data,
            now,
            claim: create.claim,
        };
        let acceptance = request.into_acceptance(
            &stored,
            vec![user_leg],
            Some(conversation_id),
            None,
            response,
        )?;
        Ok(placement::submit(state, acceptance).await?.into_response())
    })
    .await
}

//! The commands of an agent's call (agents' contract §7.1): `callOut` writes the
//! conversation together with the agent's change to `ringing` and hands it to the
//! orchestrator; `hangup`, `sendDtmf` and `setUserData` go to whichever replica drives the
//! conversation; `getState` lists the agent's legs.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Agents;
use super::commands::param;
use super::error::CommandError;
use super::machine::{AgentState, CommandName, Input, check};
use crate::domain::PhoneNumber;
use crate::domain::agent::PhoneType;
use crate::domain::agent_call::{
    AgentCall, CallSubtype, CallType, USER_DATA_RULE, valid_user_data,
};
use crate::domain::time::now_ms;
use crate::media::pool::{AgentDial, ParkedCall};
use crate::orchestrator::Refused;
use crate::orchestrator::flows::StoredAgentConversation;
use crate::orchestrator::flows::orders::AgentOrder;
use crate::store::agent_calls::{NewAgentCall, NotInPool, PhoneLeg};
use crate::store::agents::AgentRecord;

/// A userData param: any text without control characters, at most 1024 bytes.
fn user_data(params: &Map<String, Value>) -> Result<Option<String>, CommandError> {
    let Some(data) = param(params, "userData")? else {
        return Ok(None);
    };
    if !valid_user_data(&data) {
        return Err(CommandError::Param(USER_DATA_RULE.into()));
    }
    Ok(Some(data))
}

impl Agents {
    /// `callOut`: the agent's device is dialled, then the user (§7.1). Answers
    /// `{"conversationSid","callSid"}` once the call is written.
    pub(super) async fn call_out(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        self.place(app_id, agent, params, None).await
    }

    /// The agent's own phone dialled out (§11.2), parked as `call`: written and driven as
    /// the agent's call (callType 3) as a `callOut` would be, from the parked channel; an
    /// agent that may not call now (not logged in, in a call) has it hung up with
    /// `CALL_REJECTED`.
    pub(super) async fn phone_dial(&self, call: ParkedCall) {
        let Some(AgentDial { number, device }) = call.agent_dial.clone() else {
            return;
        };
        let placed = async {
            let agent = self
                .store()
                .find_agent_by_sip_number(&device)
                .await?
                .filter(|a| a.enabled)
                .ok_or(CommandError::NotLoggedIn)?;
            let params: Map<String, Value> = [("userNumber".to_string(), Value::String(number))]
                .into_iter()
                .collect();
            self.place(&agent.app_id.clone(), &agent, &params, Some(call.clone()))
                .await
        }
        .await;
        if let Err(e) = placed {
            tracing::info!(channel = %call.uuid, device, error = %e, "an agent's dial-out refused");
            if let Some(orchestrator) = self.orchestrator() {
                orchestrator.reject_parked(&call, "CALL_REJECTED").await;
            }
        }
    }

    /// A callOut, or (`phone`) the agent's own dial-out from that parked channel.
    async fn place(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        params: &Map<String, Value>,
        phone: Option<ParkedCall>,
    ) -> Result<Value, CommandError> {
        // The state first: a command the state does not allow is refused as such, whatever
        // its params.
        let session = self
            .allowed(app_id, &agent.agent_no, CommandName::CallOut)
            .await?;
        let user_number = param(params, "userNumber")?
            .ok_or_else(|| CommandError::Param("userNumber is required".into()))?;
        let user_number = PhoneNumber::parse("userNumber", &user_number)?.to_string();
        let display_num = param(params, "displayNum")?.unwrap_or_default();
        if !display_num.is_empty() {
            PhoneNumber::parse("displayNum", &display_num)?;
        }
        let user_data = user_data(params)?;
        let orchestrator = self
            .orchestrator()
            .ok_or_else(|| CommandError::NoMedia("this process places no calls".into()))?;
        let app = self
            .store()
            .find_app_by_id(app_id)
            .await?
            .ok_or(CommandError::Unavailable(
                crate::store::StoreError::Corrupt("the agent's application is gone".into()),
            ))?;
        let account = self.store().find_account(&app.account_sid).await?;
        let pool = Some(agent.caller_id_pool_sid.as_str()).filter(|p| !p.is_empty());
        let caller_id = self
            .store()
            .agent_caller_id(app_id, pool, &display_num)
            .await?
            .map_err(|NotInPool| CommandError::DisplayNumNotAllowed)?;
        let epoch = orchestrator
            .claim_epoch()
            .ok_or_else(|| CommandError::NoMedia("this replica is stopping; retry".into()))?;
        let phone_type = session.as_ref().map_or(agent.phone_type, |s| s.phone_type);
        let call = AgentCall {
            call_type: match phone {
                Some(_) => CallType::PhoneDialOut,
                None => CallType::CallOut,
            },
            agent_no: agent.agent_no.clone(),
            // The phone that dialled, or the device the agent works with.
            agent_number: match (&phone, phone_type) {
                (Some(_), _) | (None, PhoneType::Sip | PhoneType::WebPhone) => {
                    agent.sip_number.clone()
                }
                (None, PhoneType::Pstn) => agent.pstn_number.clone(),
            },
            phone_type,
            user_number,
            display_num,
            caller_id,
            agent_ring_timeout: app.cti.agent_ring_timeout.clamp(5, 120) as u32,
            answer_timeout: account.map_or(45, |a| a.answer_timeout).clamp(1, 600) as u32,
            max_call_duration: app.cti.max_call_duration.clamp(0, 86_400) as u32,
            wrapup_time: agent.wrapup_time,
            masked: app.cti.encrypt_number,
            record: app.cti.record_agent_calls,
        };
        let now = chrono::Utc::now();
        let ids = &self.ids;
        let new = NewAgentCall {
            conversation_id: ids.conversation(now).to_string(),
            leg_id: ids.call(now).to_string(),
            request_id: ids.request(now).to_string(),
            account_sid: app.account_sid.clone(),
            app_id: app_id.to_string(),
            agent_no: agent.agent_no.clone(),
            agent_number: call.agent_number.clone(),
            shown: call.shown_to_agent(),
            userdata: user_data,
            params: serde_json::to_string(&call).unwrap_or_default(),
            epoch,
            created_at: now_ms(),
            phone: phone.as_ref().map(|p| PhoneLeg {
                uuid: p.uuid.clone(),
                node: p.node.clone(),
            }),
        };
        let written = new.clone();
        self.change_with_call(app_id, &agent.agent_no, move |current| {
            check(
                CommandName::CallOut,
                current.map_or(AgentState::Offline, |c| c.session.state),
            )?;
            Ok((Some(Input::CallStarted), Some(written.clone()), ()))
        })
        .await?;
        match phone {
            Some(parked) => orchestrator.start_phone_dial(parked, new.first_leg()),
            None => orchestrator.start_agent_call(new.first_leg()),
        }
        Ok(json!({"conversationSid": new.conversation_id, "callSid": new.leg_id}))
    }

    /// `hangup`, `sendDtmf`, `setUserData`, `holdCall`, `retrieveCall`, `answer`,
    /// `bridge`: checked against
    /// the §6 table, then carried to the agent's conversation.
    pub(super) async fn order_call(
        &self,
        app_id: &str,
        agent: &AgentRecord,
        name: CommandName,
        params: &Map<String, Value>,
    ) -> Result<Value, CommandError> {
        self.allowed(app_id, &agent.agent_no, name).await?;
        let order = match name {
            CommandName::SendDtmf => {
                let digits = param(params, "digits")?.unwrap_or_default();
                let ok = (1..=32).contains(&digits.len())
                    && digits
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
                if !ok {
                    return Err(CommandError::Param(
                        "invalid digits (1-32 of 0-9, * and #)".into(),
                    ));
                }
                AgentOrder::SendDtmf(digits)
            }
            CommandName::SetUserData => AgentOrder::SetUserData(
                user_data(params)?
                    .ok_or_else(|| CommandError::Param("userData is required".into()))?,
            ),
            CommandName::HoldCall => AgentOrder::Hold,
            CommandName::Answer | CommandName::Bridge => AgentOrder::Bridge,
            CommandName::RetrieveCall => AgentOrder::Retrieve,
            CommandName::ConsultTransfer => AgentOrder::ConsultTransfer,
            CommandName::ConsultConference => AgentOrder::ConsultConference,
            CommandName::CancelConsult => AgentOrder::CancelConsult,
            _ => AgentOrder::Hangup,
        };
        let user_data = match &order {
            AgentOrder::SetUserData(data) => Some(data.clone()),
            _ => None,
        };
        let conversation = self
            .send_order(app_id, &agent.agent_no, order)
            .await?
            .ok_or_else(|| CommandError::WrongCallState("the agent has no call".into()))?;
        if let Some(data) = user_data {
            self.store()
                .set_conversation_userdata(&conversation, &data)
                .await?;
        }
        Ok(json!({}))
    }

    /// Sends `order` to the conversation of `agent_no`'s call, wherever it is driven; the
    /// conversation, or `None` when the agent has no call.
    pub(super) async fn send_order(
        &self,
        app_id: &str,
        agent_no: &str,
        order: AgentOrder,
    ) -> Result<Option<String>, CommandError> {
        let legs = self.store().agent_legs(app_id, agent_no).await?;
        let Some(conversation) = legs.iter().find_map(|l| l.conversation_id.clone()) else {
            return Ok(None);
        };
        let orchestrator = self
            .orchestrator()
            .ok_or_else(|| CommandError::NoMedia("this process places no calls".into()))?;
        orchestrator
            .agent_order(&conversation, agent_no, order)
            .await
            .map_err(|e| match e {
                Refused::State(why) => CommandError::WrongCallState(why),
                Refused::NoMedia(why) => CommandError::NoMedia(why),
                Refused::Unavailable(e) => CommandError::Unavailable(e),
            })?;
        Ok(Some(conversation))
    }

    /// getState's `calls`: the agent's legs in its live conversations (§7.1), as the
    /// conversations' last snapshots describe them (callSubtype, coAgentNo, queueSid, a
    /// held caller).
    pub(super) async fn calls_of(
        &self,
        app_id: &str,
        agent_no: &str,
    ) -> Result<Vec<Value>, CommandError> {
        let legs = self.store().agent_legs(app_id, agent_no).await?;
        // Per conversation: its call (on its first leg), how many of its legs answered,
        // and a dial-in's state.
        let mut conversations: HashMap<&Option<String>, Conversation> = HashMap::new();
        for l in &legs {
            let entry = conversations.entry(&l.conversation_id).or_default();
            if l.leg_seq == 0 {
                entry.call = serde_json::from_str(&l.params).ok();
            }
            entry.answered += usize::from(l.state == "answered");
        }
        for (id, c) in &mut conversations {
            if let Some(id) = id {
                let snapshot = self.store().conversation_snapshot(id).await?;
                c.state = snapshot.and_then(|s| serde_json::from_str(&s).ok());
            }
        }
        // A callOut's user leg is its agent's while the agent's own (first) leg is on.
        let placed_by_me = |cv: &Option<String>| {
            legs.iter().any(|x| {
                x.conversation_id == *cv
                    && x.leg_seq == 0
                    && x.agent_no.as_deref() == Some(agent_no)
                    && x.end_at.is_none()
            })
        };
        Ok(legs
            .iter()
            .filter(|l| l.end_at.is_none())
            // Its own legs, and the user's leg of its callOut (a dial-in's is not the
            // agent's).
            .filter(|l| match l.agent_no.as_deref() {
                Some(other) => other == agent_no,
                None => {
                    let call = conversations[&l.conversation_id].call.as_ref();
                    call.is_some_and(|c| {
                        matches!(c.call_type(), CallType::CallOut | CallType::PhoneDialOut)
                    }) && placed_by_me(&l.conversation_id)
                }
            })
            .map(|l| {
                let c = &conversations[&l.conversation_id];
                let call = c.call.as_ref();
                let leg = usize::try_from(l.leg_seq).unwrap_or(usize::MAX);
                let offer = c.state.as_ref().and_then(|s| s.offer(leg));
                let subtype = match (offer, &l.agent_no) {
                    (Some(o), _) => o.subtype(),
                    (None, Some(_)) => CallSubtype::Agent,
                    (None, None) => CallSubtype::User,
                };
                let held = c
                    .state
                    .as_ref()
                    .is_some_and(|s| s.agent == Some(leg) && (s.held || s.parked));
                let bridged = l.state == "answered" && c.answered >= 2;
                json!({
                    "conversationSid": l.conversation_id.clone().unwrap_or_default(),
                    "callSid": l.id,
                    "callType": call.map_or("", |c| c.call_type().code()),
                    "callSubtype": subtype.code(),
                    "callState": match l.state.as_str() {
                        "ringing" => "ringing",
                        "answered" if held => "held",
                        "answered" => "connected",
                        _ => "idle",
                    },
                    "userNumber": call.map(|c| c.user_number()).unwrap_or_default(),
                    "isBridged": if bridged { "1" } else { "0" },
                    "coAgentNo": c.state.as_ref().map_or("", |s| s.co_agent(leg)),
                    "queueSid": offer.map_or("", |o| o.offer.queue.as_str()),
                    "userData": l.userdata.clone().unwrap_or_default(),
                })
            })
            .collect())
    }
}

/// What getState reads of one live conversation.
#[derive(Default)]
struct Conversation {
    /// What it is (its first leg's stored call).
    call: Option<StoredAgentConversation>,
    /// How many of its legs answered.
    answered: usize,
    /// Its last snapshot.
    state: Option<crate::orchestrator::flows::agent::State>,
}

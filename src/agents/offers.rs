//! Claiming an agent for a call it is offered (a queue's offer, an agent route, a consult):
//! the agent must be `ready`; its session moves to `ringing` under its lock, and the offer
//! says how to dial its device and what it shows. A claim the call could not use is
//! released (back to the agent's chosen state, no pause).

use super::Agents;
use super::error::CommandError;
use super::machine::{AgentState, Input};
use crate::domain::agent::PhoneType;
use crate::orchestrator::engine::Endpoint;
use crate::orchestrator::flows::agent::Offer;
use crate::orchestrator::flows::orders::AgentOrder;
use serde_json::{Value, json};

impl Agents {
    /// Claims agent `agent_no` for a caller who dialled `did` from `user_number`, offered
    /// from `queue` (`""`: none): 20107 when it is unknown or disabled, 20108 when it is not
    /// ready.
    pub async fn claim_offer(
        &self,
        app_id: &str,
        agent_no: &str,
        numbers: (String, String),
        queue: &str,
    ) -> Result<Offer, CommandError> {
        let ready = &[AgentState::Ready];
        self.claim_in(app_id, agent_no, numbers, queue, ready).await
    }

    /// As [`Agents::claim_offer`], for an agent in one of `states` (a supervisor listens
    /// in from ready, pause or wrapup).
    pub(super) async fn claim_in(
        &self,
        app_id: &str,
        agent_no: &str,
        (did, user_number): (String, String),
        queue: &str,
        states: &[AgentState],
    ) -> Result<Offer, CommandError> {
        let (record, app) = match (
            self.store.find_agent(app_id, agent_no).await?,
            self.store.find_app_by_id(app_id).await?,
        ) {
            (Some(record), Some(app)) if record.enabled => (record, app),
            _ => return Err(CommandError::TargetNotFound),
        };
        let states = states.to_vec();
        let (phone_type, _) = self
            .change(app_id, agent_no, move |current| match current {
                Some(c) if states.contains(&c.session.state) => {
                    Ok((Some(Input::CallStarted), c.session.phone_type))
                }
                Some(_) => Err(CommandError::TargetUnavailable),
                None => Err(CommandError::TargetNotFound),
            })
            .await?;
        let endpoint = Endpoint::for_phone(phone_type);
        let number = match endpoint {
            Endpoint::Number => record.pstn_number.clone(),
            Endpoint::Device => record.sip_number.clone(),
        };
        // A device shows the caller (the DID when numbers are masked); a PSTN phone the DID.
        let shown = match (phone_type, app.cti.encrypt_number) {
            (PhoneType::Pstn, _) | (_, true) => did,
            _ => user_number,
        };
        Ok(Offer {
            agent_no: agent_no.to_string(),
            agent_number: number,
            endpoint,
            auto_answer: record.auto_answer,
            shown: Some(shown).filter(|s| !s.is_empty()),
            wrapup_time: record.wrapup_time,
            queue: queue.to_string(),
        })
    }

    /// Sends `order` to the conversation of `agent_no`'s call (`no_call` when it has none);
    /// the agent `claimed` for it, if any, is released when the order is refused.
    pub(super) async fn order_claimed(
        &self,
        app_id: &str,
        agent_no: &str,
        order: AgentOrder,
        claimed: Option<&str>,
        no_call: CommandError,
    ) -> Result<Value, CommandError> {
        let sent = match self.send_order(app_id, agent_no, order).await {
            Ok(Some(_)) => Ok(json!({})),
            Ok(None) => Err(no_call),
            Err(e) => Err(e),
        };
        if let (Err(_), Some(claimed)) = (&sent, claimed) {
            self.release_offer(app_id, claimed).await;
        }
        sent
    }

    /// Releases a claim the call did not use: the agent goes back to what it was.
    pub async fn release_offer(&self, app_id: &str, agent_no: &str) {
        let released = self
            .change(app_id, agent_no, |current| match current {
                Some(c) if c.session.state == AgentState::Ringing => Ok((
                    Some(Input::CallEnded {
                        connected: false,
                        wrapup_time: 0,
                    }),
                    (),
                )),
                _ => Ok((None, ())),
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(agent = agent_no, error = %e, "an unused claim of an agent could not be released");
        }
    }
}

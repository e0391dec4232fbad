//! Agents' devices coming and going (agents' contract §11.3): a device that registers or
//! leaves changes whether its agent may take offers (a WebPhone takes them only while
//! registered), so the matchmaker hears of its agent at once instead of at its next
//! periodic look.

use tokio::sync::broadcast;

use super::hub::{AcdHandle, HubInput};
use crate::media::registrations::Change;
use crate::store::Store;

/// Tells the matchmaker of the agent of each device whose registration changes, until the
/// media pool is gone.
pub async fn follow(mut changes: broadcast::Receiver<Change>, store: Store, acd: AcdHandle) {
    loop {
        let user = match changes.recv().await {
            Ok(Some(user)) => user,
            // Many at once (a node came back) or too many to follow: the matchmaker's
            // periodic look reads every ready agent again anyway.
            Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match store.find_agent_by_sip_number(&user).await {
            Ok(Some(agent)) => acd.send(HubInput::AgentChanged {
                app_id: agent.app_id,
                agent_no: agent.agent_no,
                heard: tokio::time::Instant::now(),
            }),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, user, "a device's agent could not be read"),
        }
    }
}

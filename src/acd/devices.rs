//! Agents' devices coming and going (agents' contract §11.3): a device that registers or
//! leaves changes whether its agent may take offers (a WebPhone takes them only while
//! registered), so the matchmaker hears of its agent at once instead of at its next
//! periodic look. When a media node's Event Socket comes back, what it said of its devices
//! is forgotten, and every logged-in agent's device is asked about again (`sofia_contact`).

use std::sync::Arc;

use tokio::sync::broadcast;

use super::hub::{AcdHandle, HubInput};
use crate::media::pool::MediaPool;
use crate::media::registrations::Change;
use crate::store::Store;

/// Tells the matchmaker of the agent of each device whose registration changes, and
/// re-checks the logged-in agents' devices when a node comes back, until the media pool
/// is gone.
pub async fn follow(media: Arc<MediaPool>, domain: String, store: Store, acd: AcdHandle) {
    let mut changes: broadcast::Receiver<Change> = media.registrations().changes();
    loop {
        let user = match changes.recv().await {
            Ok(Some(user)) => user,
            Ok(None) => {
                recheck(&media, &domain, &store, &acd).await;
                continue;
            }
            // Too many to follow: the matchmaker's periodic look reads every ready agent
            // again anyway.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match store.find_agent_by_sip_number(&user).await {
            Ok(Some(agent)) => changed(&acd, agent.app_id, agent.agent_no),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, user, "a device's agent could not be read"),
        }
    }
}

fn changed(acd: &AcdHandle, app_id: String, agent_no: String) {
    acd.send(HubInput::AgentChanged {
        app_id,
        agent_no,
        heard: tokio::time::Instant::now(),
    });
}

/// Asks the nodes where each logged-in agent's device is now, and tells the matchmaker.
async fn recheck(media: &MediaPool, domain: &str, store: &Store, acd: &AcdHandle) {
    let devices = match store.logged_in_devices().await {
        Ok(devices) => devices,
        Err(e) => {
            tracing::debug!(error = %e, "logged-in devices unreadable; asked again when needed");
            return;
        }
    };
    for (sip_number, app_id, agent_no) in devices {
        if media.device_node(&sip_number, domain).await.is_ok() {
            changed(acd, app_id, agent_no);
        }
    }
}

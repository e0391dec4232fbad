//! Where agents' devices are registered (agents' contract §11.3): followed from each
//! node's `sofia::register`, `sofia::unregister` and `sofia::expire` events (esl-transcripts
//! 86), and, for a device this process has not heard of (or not since its node's Event
//! Socket came back), asked of the nodes with `sofia_contact`. Every replica follows every
//! node, so each keeps its own complete map.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::esl::Event;

/// The CUSTOM subclasses followed.
pub const SUBCLASSES: [&str; 3] = ["sofia::register", "sofia::unregister", "sofia::expire"];

/// What is known of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Registered on this node (its name in the pool).
    On(String),
    /// Registered nowhere.
    Off,
}

/// A change of a device's standing, or (`None`) of many at once (a node came back).
pub type Change = Option<String>;

/// The devices' registrations as this process knows them.
#[derive(Debug)]
pub struct Registrations {
    devices: Mutex<HashMap<String, Standing>>,
    changes: broadcast::Sender<Change>,
}

impl Default for Registrations {
    fn default() -> Self {
        Registrations {
            devices: Mutex::default(),
            changes: broadcast::channel(256).0,
        }
    }
}

impl Registrations {
    /// What is known of device `user` (its sipNumber); `None`: nothing (ask the nodes).
    pub fn standing(&self, user: &str) -> Option<Standing> {
        self.devices.lock().ok()?.get(user).cloned()
    }

    /// Records what the nodes said of `user`.
    pub fn set(&self, user: &str, standing: Standing) {
        if let Ok(mut devices) = self.devices.lock() {
            devices.insert(user.to_string(), standing);
        }
    }

    /// Follows a `sofia::*` event of node `node`; whether it was one.
    pub fn heard(&self, node: &str, event: &Event) -> bool {
        let Some(subclass) = event.get("Event-Subclass") else {
            return false;
        };
        if !SUBCLASSES.contains(&subclass) {
            return false;
        }
        let Some(user) = event
            .get("from-user")
            .or_else(|| event.get("username"))
            .filter(|u| !u.is_empty())
        else {
            return true;
        };
        let expires = event.get("expires").and_then(|e| e.parse::<u64>().ok());
        let registered = subclass == "sofia::register" && expires != Some(0);
        let Ok(mut devices) = self.devices.lock() else {
            return true;
        };
        let standing = match registered {
            true => Standing::On(node.to_string()),
            // Leaving one node says nothing of a registration on another.
            false if devices.get(user) == Some(&Standing::On(node.to_string())) => Standing::Off,
            false if devices.get(user).is_none() => Standing::Off,
            false => return true,
        };
        let changed = devices.insert(user.to_string(), standing.clone()) != Some(standing);
        drop(devices);
        if changed {
            tracing::debug!(node, user, subclass, "device registration");
            let _ = self.changes.send(Some(user.to_string()));
        }
        true
    }

    /// Node `node`'s Event Socket came (back) up: what was known of its devices, and of
    /// devices registered nowhere, may be stale; they are asked again when next needed.
    pub fn node_up(&self, node: &str) {
        if let Ok(mut devices) = self.devices.lock() {
            devices.retain(|_, s| matches!(s, Standing::On(n) if n != node));
        }
        let _ = self.changes.send(None);
    }

    /// Changes from now on.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(subclass: &str, user: &str, expires: &str) -> Event {
        let text = format!(
            "Event-Name: CUSTOM\nEvent-Subclass: {}\nprofile-name: internal\nfrom-user: {user}\nfrom-host: voicepaas.local\nexpires: {expires}\n",
            subclass.replace("::", "%3A%3A")
        );
        Event::parse_plain(text.as_bytes())
    }

    #[test]
    fn registrations_follow_the_events_of_each_node() {
        let r = Registrations::default();
        let mut changes = r.changes();
        assert_eq!(r.standing("80000017"), None);
        assert!(r.heard("fs1", &event("sofia::register", "80000017", "120")));
        assert_eq!(r.standing("80000017"), Some(Standing::On("fs1".into())));
        assert_eq!(changes.try_recv().unwrap(), Some("80000017".into()));
        // The same again changes nothing.
        assert!(r.heard("fs1", &event("sofia::register", "80000017", "120")));
        assert!(changes.try_recv().is_err());
        // It moves to fs2; its old registration expiring on fs1 leaves it on fs2.
        r.heard("fs2", &event("sofia::register", "80000017", "120"));
        r.heard("fs1", &event("sofia::expire", "80000017", "0"));
        assert_eq!(r.standing("80000017"), Some(Standing::On("fs2".into())));
        r.heard("fs2", &event("sofia::unregister", "80000017", "0"));
        assert_eq!(r.standing("80000017"), Some(Standing::Off));
        // A REGISTER with Expires 0 is an unregistration too.
        r.heard("fs1", &event("sofia::register", "80000018", "0"));
        assert_eq!(r.standing("80000018"), Some(Standing::Off));
        assert!(!r.heard("fs1", &Event::parse_plain(b"Event-Name: CHANNEL_PARK\n")));
    }

    #[test]
    fn a_node_coming_back_forgets_what_may_be_stale() {
        let r = Registrations::default();
        r.set("1", Standing::On("fs1".into()));
        r.set("2", Standing::On("fs2".into()));
        r.set("3", Standing::Off);
        r.node_up("fs1");
        assert_eq!(r.standing("1"), None);
        assert_eq!(r.standing("2"), Some(Standing::On("fs2".into())));
        assert_eq!(r.standing("3"), None);
    }
}

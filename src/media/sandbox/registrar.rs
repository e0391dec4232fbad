//! The sandbox's SIP registrar, as mod_sofia reports it (esl-transcripts 86): every
//! agent device counts as registered until it is unregistered, and a device made to
//! register, unregister or let its registration lapse gives the CUSTOM `sofia::register`,
//! `sofia::unregister` or `sofia::expire` event a real registration does.

use std::collections::HashMap;

use crate::esl::Event;

/// The contact of a sandbox device.
fn contact(user: &str) -> String {
    format!("\"\" <sip:{user}@127.0.0.1:5070>")
}

/// A device's standing with the registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Registered until this instant (sandbox µs).
    Until(i64),
    /// Unregistered, or its registration lapsed.
    Gone,
}

/// What the registrar knows of the devices that registered or left; the others count as
/// registered.
#[derive(Debug, Default)]
pub struct Registrar {
    devices: HashMap<String, Standing>,
}

/// A change of registration: its event's subclass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `sofia::register`.
    Register,
    /// `sofia::unregister`.
    Unregister,
    /// `sofia::expire`.
    Expire,
}

impl Change {
    fn subclass(self) -> &'static str {
        match self {
            Change::Register => "sofia::register",
            Change::Unregister => "sofia::unregister",
            Change::Expire => "sofia::expire",
        }
    }
}

impl Registrar {
    /// Device `user` registers for `expires` seconds at `now_us` (0: unregisters); the
    /// change, and when the registration ends unless renewed.
    pub fn register(&mut self, user: &str, expires: u32, now_us: i64) -> (Change, Option<i64>) {
        let (standing, change) = match expires {
            0 => (Standing::Gone, Change::Unregister),
            secs => (
                Standing::Until(now_us + i64::from(secs) * 1_000_000),
                Change::Register,
            ),
        };
        self.devices.insert(user.to_string(), standing);
        let until = match standing {
            Standing::Until(at) => Some(at),
            Standing::Gone => None,
        };
        (change, until)
    }

    /// Whether `user`'s registration registered at `registered_until` lapsed by `now_us`
    /// (it was not renewed nor ended meanwhile): it is gone from then on.
    pub fn lapse(&mut self, user: &str, registered_until: i64, now_us: i64) -> bool {
        let lapsed = self.devices.get(user) == Some(&Standing::Until(registered_until))
            && now_us >= registered_until;
        if lapsed {
            self.devices.insert(user.to_string(), Standing::Gone);
        }
        lapsed
    }

    /// Whether device `user` can be reached: it never left, or registered again since.
    pub fn is_registered(&self, user: &str) -> bool {
        self.devices.get(user) != Some(&Standing::Gone)
    }

    /// `sofia_contact <user>@<domain>`: the dial string of a registered device, else
    /// `error/user_not_registered` (no newline, as FreeSWITCH answers).
    pub fn contact_of(&self, user: &str) -> String {
        match self.is_registered(user) {
            true => format!("sofia/internal/sip:{user}@127.0.0.1:5070"),
            false => "error/user_not_registered".into(),
        }
    }

    /// The event of `change` for `user` of `domain`, on `base` (the switch's headers).
    pub fn event(change: Change, user: &str, domain: &str, expires: u32, mut e: Event) -> Event {
        e.push("Event-Subclass", change.subclass());
        e.push("profile-name", "internal");
        if change != Change::Register {
            e.push("username", user);
        }
        e.push("from-user", user);
        e.push("from-host", domain);
        e.push("contact", contact(user));
        e.push("call-id", format!("{user}@voicepaas-sandbox"));
        e.push("rpid", "unknown");
        if change == Change::Register {
            e.push("status", "Registered(UDP)");
        }
        e.push("expires", expires.to_string());
        e.push("to-user", user);
        e.push("to-host", domain);
        e.push("network-ip", "127.0.0.1");
        e.push("network-port", "5072");
        e
    }
}

//! The sandbox's conferences, as mod_conference keeps them (esl-transcripts 83): rooms
//! created by their first member and destroyed with their last, members numbered across
//! the switch, a `conference::maintenance` event for each change, and the `conference`
//! API's `list`, `list count` and `kick`/`hup`.

use std::collections::BTreeMap;

use crate::esl::Event;

/// One member of a room.
#[derive(Debug, Clone)]
struct Member {
    id: u32,
    uuid: String,
    channel_name: String,
    number: String,
}

/// A room and its members, oldest first.
#[derive(Debug)]
struct Room {
    unique_id: String,
    profile: String,
    members: Vec<Member>,
}

/// Every room of the switch.
#[derive(Debug, Default)]
pub struct Conferences {
    rooms: BTreeMap<String, Room>,
    last_member: u32,
}

/// A change of a room: the `Action` of its maintenance event and who it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    AddMember,
    DelMember,
    Destroy,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Create => "conference-create",
            Action::AddMember => "add-member",
            Action::DelMember => "del-member",
            Action::Destroy => "conference-destroy",
        }
    }
}

impl Conferences {
    /// Channel `uuid` joins room `room` (`name@profile`); the maintenance events it
    /// causes, to be completed by `base` (the switch's common headers).
    pub fn join(
        &mut self,
        room: &str,
        (uuid, channel_name, number): (&str, &str, &str),
        base: impl Fn() -> Event,
    ) -> Vec<Event> {
        let (name, profile) = room.split_once('@').unwrap_or((room, "default"));
        let mut events = Vec::new();
        if !self.rooms.contains_key(name) {
            self.rooms.insert(
                name.to_string(),
                Room {
                    unique_id: uuid::Uuid::new_v4().to_string(),
                    profile: profile.to_string(),
                    members: Vec::new(),
                },
            );
            events.push(self.event(name, Action::Create, None, base()));
        }
        self.last_member += 1;
        let member = Member {
            id: self.last_member,
            uuid: uuid.to_string(),
            channel_name: channel_name.to_string(),
            number: number.to_string(),
        };
        if let Some(r) = self.rooms.get_mut(name) {
            r.members.push(member.clone());
        }
        events.push(self.event(name, Action::AddMember, Some(&member), base()));
        events
    }

    /// Channel `uuid` leaves room `name`: its events (the room goes with its last member).
    pub fn leave(&mut self, name: &str, uuid: &str, base: impl Fn() -> Event) -> Vec<Event> {
        let Some(room) = self.rooms.get_mut(name) else {
            return Vec::new();
        };
        let Some(i) = room.members.iter().position(|m| m.uuid == uuid) else {
            return Vec::new();
        };
        let member = room.members.remove(i);
        let mut events = vec![self.event(name, Action::DelMember, Some(&member), base())];
        if self.rooms.get(name).is_some_and(|r| r.members.is_empty()) {
            events.push(self.event(name, Action::Destroy, None, base()));
            self.rooms.remove(name);
        }
        events
    }

    fn event(&self, name: &str, action: Action, member: Option<&Member>, mut e: Event) -> Event {
        let room = &self.rooms[name];
        e.push("Event-Subclass", "conference::maintenance");
        e.push("Conference-Name", name);
        e.push("Conference-Size", room.members.len().to_string());
        e.push("Conference-Profile-Name", room.profile.clone());
        e.push("Conference-Unique-ID", room.unique_id.clone());
        if let Some(m) = member {
            e.push("Unique-ID", m.uuid.clone());
            e.push("Channel-Name", m.channel_name.clone());
            e.push("Caller-Caller-ID-Number", m.number.clone());
            e.push("Member-ID", m.id.to_string());
            e.push("Member-Type", "member");
        }
        e.push("Action", action.word());
        e
    }

    /// `conference <name> list`: a line per member, newest first (member id, channel,
    /// uuid, caller name, caller number, flags, volumes, energy).
    pub fn list(&self, name: &str) -> Option<String> {
        let room = self.rooms.get(name)?;
        Some(
            room.members
                .iter()
                .rev()
                .map(|m| {
                    format!(
                        "{};{};{};;{};hear|speak;0;0;100\n",
                        m.id, m.channel_name, m.uuid, m.number
                    )
                })
                .collect(),
        )
    }

    /// `conference list`: each room's summary line and its members.
    pub fn list_all(&self) -> String {
        self.rooms
            .iter()
            .map(|(name, room)| {
                format!(
                    "+OK Conference {name} ({} members rate: 8000 flags: running|answered|dynamic)\n{}",
                    room.members.len(),
                    self.list(name).unwrap_or_default()
                )
            })
            .collect()
    }
}

//! Queues (skill groups, agents' contract §3.2): how waiting callers are offered to the
//! members, how long they wait, where they go after, and what they hear meanwhile.

use serde_json::{Value, json};

use super::fields::{Fields, ParamError, check_label};
use super::prompt::PromptName;
use super::route::{Ending, Names};

/// Longest queue name, in characters.
pub const MAX_QUEUE_NAME_CHARS: usize = 64;

/// The fields a queue body may carry.
pub const QUEUE_FIELDS: &[&str] = &[
    "name",
    "strategy",
    "ringTimeout",
    "lastAgentRouting",
    "lastAgentWindowHours",
    "maxWaitSeconds",
    "overflow",
    "musicOnHold",
    "announce",
];

/// Which eligible agent gets a waiting caller's offer (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The agent idle longest (since its last call ended or it became ready).
    #[default]
    LongestIdle,
    /// The next agentNo after the last one offered in this queue.
    RoundRobin,
    /// Every eligible agent at once; the first answer wins.
    RingAll,
    /// The highest skillLevel, ties by longest idle.
    SkillThenLongestIdle,
}

impl Strategy {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LongestIdle => "longest-idle",
            Self::RoundRobin => "round-robin",
            Self::RingAll => "ring-all",
            Self::SkillThenLongestIdle => "skill-then-longest-idle",
        }
    }

    /// The strategy named `s`, if any.
    pub fn from_word(s: &str) -> Option<Self> {
        [
            Self::LongestIdle,
            Self::RoundRobin,
            Self::RingAll,
            Self::SkillThenLongestIdle,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The periodic position announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// Seconds between announcements (30–600).
    pub every_secs: u32,
    /// Played before the position.
    pub prompt: PromptName,
}

impl Announce {
    fn parse(value: &Value) -> Result<Self, ParamError> {
        let fields = value
            .as_object()
            .map(Fields)
            .ok_or_else(|| ParamError::new("announce must be an object or null"))?;
        fields.only(&["everySeconds", "prompt"])?;
        let every = fields
            .opt_int("everySeconds", 30, 600)
            .map_err(|_| ParamError::new("announce.everySeconds must be 30-600"))?
            .ok_or_else(|| ParamError::new("missing announce.everySeconds"))?;
        let prompt = fields
            .req_str("prompt")
            .map_err(|_| ParamError::new("missing announce.prompt"))?;
        Ok(Self {
            every_secs: every as u32,
            prompt: PromptName::parse("announce.prompt", prompt)?,
        })
    }

    fn to_json(&self) -> Value {
        json!({"everySeconds": self.every_secs, "prompt": self.prompt.as_str()})
    }
}

/// A queue's settings, whole (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// A label (1–64 characters).
    pub name: String,
    /// How offers are chosen.
    pub strategy: Strategy,
    /// Seconds an offer rings (5–120).
    pub ring_timeout_secs: u32,
    /// Whether the caller's last agent is offered first.
    pub last_agent_routing: bool,
    /// How far back "last agent" looks, in hours (1–720).
    pub last_agent_window_hours: u32,
    /// Longest wait before overflow; 0 = unlimited, else 10–86400.
    pub max_wait_secs: u32,
    /// Where callers go after maxWaitSeconds or with no member logged in.
    pub overflow: Ending,
    /// Looped while waiting or held (`None`: the built-in hold music).
    pub music_on_hold: Option<PromptName>,
    /// The position announcement, if any.
    pub announce: Option<Announce>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            strategy: Strategy::default(),
            ring_timeout_secs: 20,
            last_agent_routing: false,
            last_agent_window_hours: 24,
            max_wait_secs: 300,
            overflow: Ending::default(),
            music_on_hold: None,
            announce: None,
        }
    }
}

impl QueueSettings {
    /// Applies a create (`creating`: `name` required, the rest defaulted) or change body
    /// to these settings.
    pub fn apply(mut self, fields: Fields<'_>, creating: bool) -> Result<Self, ParamError> {
        fields.only(QUEUE_FIELDS)?;
        if let Some(name) = fields.opt_str("name")? {
            if name.is_empty() || name.chars().count() > MAX_QUEUE_NAME_CHARS {
                return Err(ParamError::new(format!(
                    "name must be 1-{MAX_QUEUE_NAME_CHARS} characters"
                )));
            }
            check_label("name", name, usize::MAX)?;
            self.name = name.to_string();
        } else if creating {
            return Err(ParamError::new("missing name"));
        }
        if let Some(word) = fields.opt_str("strategy")? {
            self.strategy = Strategy::from_word(word).ok_or_else(|| {
                ParamError::new(
                    "strategy must be longest-idle, round-robin, ring-all or skill-then-longest-idle",
                )
            })?;
        }
        if let Some(n) = fields.opt_int("ringTimeout", 5, 120)? {
            self.ring_timeout_secs = n as u32;
        }
        if let Some(b) = fields.opt_bool("lastAgentRouting")? {
            self.last_agent_routing = b;
        }
        if let Some(n) = fields.opt_int("lastAgentWindowHours", 1, 720)? {
            self.last_agent_window_hours = n as u32;
        }
        if let Some(n) = fields.opt_int("maxWaitSeconds", 0, 86_400)? {
            if (1..10).contains(&n) {
                return Err(ParamError::new("maxWaitSeconds must be 0 or 10-86400"));
            }
            self.max_wait_secs = n as u32;
        }
        if let Some(value) = fields.raw("overflow") {
            self.overflow = Ending::parse("overflow", value)?;
        }
        if let Some(prompt) = fields.opt_str("musicOnHold")? {
            self.music_on_hold = (!prompt.is_empty())
                .then(|| PromptName::parse("musicOnHold", prompt))
                .transpose()?;
        }
        if fields.0.contains_key("announce") {
            self.announce = fields.raw("announce").map(Announce::parse).transpose()?;
        }
        Ok(self)
    }

    /// Refuses an overflow to the queue itself.
    pub fn check_overflow(&self, own_sid: &str) -> Result<(), ParamError> {
        match &self.overflow {
            Ending::Queue(sid) if sid == own_sid => {
                Err(ParamError::new("overflow must not name the queue itself"))
            }
            _ => Ok(()),
        }
    }

    /// Every queue and prompt the settings name.
    pub fn names(&self) -> Names<'_> {
        let mut names = Names::default();
        self.overflow.collect(&mut names);
        names.prompts.extend(&self.music_on_hold);
        names
            .prompts
            .extend(self.announce.as_ref().map(|a| &a.prompt));
        names
    }

    /// The contract's fields (without queueSid and times).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "strategy": self.strategy.as_str(),
            "ringTimeout": self.ring_timeout_secs,
            "lastAgentRouting": self.last_agent_routing,
            "lastAgentWindowHours": self.last_agent_window_hours,
            "maxWaitSeconds": self.max_wait_secs,
            "overflow": self.overflow.to_json(),
            "musicOnHold": self.music_on_hold.as_ref().map_or("", PromptName::as_str),
            "announce": self.announce.as_ref().map(Announce::to_json),
        })
    }

    /// Reads back settings stored as [`QueueSettings::to_json`] wrote them.
    pub fn from_json(value: &Value) -> Result<Self, ParamError> {
        let fields = value
            .as_object()
            .map(Fields)
            .ok_or_else(|| ParamError::new("queue settings must be an object"))?;
        Self::default().apply(fields, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<QueueSettings, String> {
        QueueSettings::default()
            .apply(Fields(body.as_object().unwrap()), true)
            .map_err(|e| e.0)
    }

    #[test]
    fn defaults_and_round_trip() {
        let q = parse(json!({"name":"sales"})).unwrap();
        assert_eq!(
            q.to_json(),
            json!({"name":"sales","strategy":"longest-idle","ringTimeout":20,
                "lastAgentRouting":false,"lastAgentWindowHours":24,"maxWaitSeconds":300,
                "overflow":{"type":"hangup","prompt":""},"musicOnHold":"","announce":null})
        );
        let full = json!({"name":"vip","strategy":"ring-all","ringTimeout":5,
            "lastAgentRouting":true,"lastAgentWindowHours":720,"maxWaitSeconds":0,
            "overflow":{"type":"queue","queueSid":"QUx"},"musicOnHold":"moh.wav",
            "announce":{"everySeconds":30,"prompt":"pos.wav"}});
        let q = parse(full.clone()).unwrap();
        assert_eq!(q.to_json(), full);
        assert_eq!(QueueSettings::from_json(&full).unwrap(), q);
        assert_eq!(q.names().prompts.len(), 2);
        assert!(q.check_overflow("QUx").is_err());
        assert!(q.check_overflow("QUy").is_ok());
    }

    proptest::proptest! {
        /// Whatever object comes, applying it never panics, and settings read back the
        /// same from their own JSON.
        #[test]
        fn any_json_applies_or_is_refused(value in crate::domain::route::tests::route_like_json()) {
            if let Some(fields) = value.as_object()
                && let Ok(settings) = (QueueSettings { name: "q".into(), ..QueueSettings::default() })
                    .apply(Fields(fields), false)
            {
                proptest::prop_assert_eq!(QueueSettings::from_json(&settings.to_json()).ok(), Some(settings));
            }
        }
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, msg) in [
            (json!({}), "missing name"),
            (json!({"name":""}), "name must be 1-64 characters"),
            (
                json!({"name":"a","strategy":"random"}),
                "strategy must be longest-idle, round-robin, ring-all or skill-then-longest-idle",
            ),
            (
                json!({"name":"a","ringTimeout":4}),
                "ringTimeout must be 5-120",
            ),
            (
                json!({"name":"a","maxWaitSeconds":9}),
                "maxWaitSeconds must be 0 or 10-86400",
            ),
            (
                json!({"name":"a","lastAgentWindowHours":0}),
                "lastAgentWindowHours must be 1-720",
            ),
            (
                json!({"name":"a","overflow":{"type":"agent"}}),
                "overflow.type must be queue or hangup",
            ),
            (
                json!({"name":"a","announce":{"everySeconds":29,"prompt":"p.wav"}}),
                "announce.everySeconds must be 30-600",
            ),
            (
                json!({"name":"a","announce":{"everySeconds":30}}),
                "missing announce.prompt",
            ),
            (
                json!({"name":"a","musicOnHold":"x.mp3"}),
                "invalid musicOnHold: \"x.mp3\" (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)",
            ),
        ] {
            assert_eq!(parse(body.clone()).unwrap_err(), msg, "{body}");
        }
    }
}

//! Where an inbound call goes (agents' contract §3.3): a DID's route — a queue, an agent
//! with a fallback, a flat key menu or a hangup prompt — and the queue-or-hangup endings
//! that agent fallbacks and queue overflows share (§3.2).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::agent::AgentNo;
use super::fields::{Fields, ParamError};
use super::prompt::PromptName;

/// Where a caller goes when the first choice is not possible: a queue, or a prompt and
/// the end of the call (an agent route's `fallback`, a queue's `overflow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Join this queue (a queueSid as given: whether it is one of the application's is
    /// the store's check, and one of the wrong shape is not).
    Queue(String),
    /// Play this prompt (`None`: the built-in failure tone) and hang up.
    Hangup(Option<PromptName>),
}

impl Default for Ending {
    fn default() -> Self {
        Self::Hangup(None)
    }
}

/// One thing a route or a menu key leads to (no menus: menus do not nest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Join this queue (as given, like [`Ending::Queue`]).
    Queue(String),
    /// Offer to this agent if it is ready; else, or when the offer fails, `fallback`.
    Agent {
        /// The agent.
        agent_no: AgentNo,
        /// Where the caller goes otherwise.
        fallback: Ending,
    },
    /// Play this prompt (`None`: the built-in failure tone) and hang up.
    Hangup(Option<PromptName>),
}

/// A flat key menu played by `play_and_get_digits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// What is played and replayed.
    pub prompt: PromptName,
    /// Keys `0-9 * #` and where each leads.
    pub keys: BTreeMap<char, Step>,
    /// Seconds to wait for one key (1–30).
    pub timeout_secs: u32,
    /// How many times the prompt is played before `default` (1–5).
    pub tries: u32,
    /// Taken after the last try.
    pub default: Step,
}

/// A DID's route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A queue, an agent or a hangup.
    Step(Step),
    /// A key menu.
    Menu(Menu),
}

/// Default seconds a menu waits for a key.
pub const DEFAULT_MENU_TIMEOUT: u32 = 5;
/// Default number of menu tries.
pub const DEFAULT_MENU_TRIES: u32 = 2;

fn object<'a>(field: &str, value: &'a Value) -> Result<Fields<'a>, ParamError> {
    value
        .as_object()
        .map(Fields)
        .ok_or_else(|| ParamError::new(format!("{field} must be an object")))
}

fn queue_sid(field: &str, fields: Fields<'_>) -> Result<String, ParamError> {
    fields
        .req_str("queueSid")
        .map(str::to_string)
        .map_err(|_| ParamError::new(format!("missing {field}.queueSid")))
}

/// An optional prompt field (`""` = none).
fn opt_prompt(field: &str, fields: Fields<'_>) -> Result<Option<PromptName>, ParamError> {
    fields
        .opt_nonempty_str("prompt")?
        .map(|p| PromptName::parse(&format!("{field}.prompt"), p))
        .transpose()
}

impl Ending {
    /// Parses `{"type":"queue","queueSid"}` or `{"type":"hangup","prompt"}` at `field`.
    pub fn parse(field: &str, value: &Value) -> Result<Self, ParamError> {
        let fields = object(field, value)?;
        match fields.opt_str("type")? {
            Some("queue") => {
                fields.only(&["type", "queueSid"])?;
                Ok(Self::Queue(queue_sid(field, fields)?))
            }
            Some("hangup") => {
                fields.only(&["type", "prompt"])?;
                Ok(Self::Hangup(opt_prompt(field, fields)?))
            }
            _ => Err(ParamError::new(format!(
                "{field}.type must be queue or hangup"
            ))),
        }
    }

    /// The contract's JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Queue(sid) => json!({"type": "queue", "queueSid": sid}),
            Self::Hangup(prompt) => json!({"type": "hangup", "prompt": prompt_text(prompt)}),
        }
    }
}

fn prompt_text(prompt: &Option<PromptName>) -> &str {
    prompt.as_ref().map_or("", PromptName::as_str)
}

impl Step {
    fn parse(field: &str, value: &Value) -> Result<Self, ParamError> {
        let fields = object(field, value)?;
        match fields.opt_str("type")? {
            Some("agent") => {
                fields.only(&["type", "agentNo", "fallback"])?;
                let agent_no = fields
                    .req_str("agentNo")
                    .map_err(|_| ParamError::new(format!("missing {field}.agentNo")))?;
                let fallback = match fields.raw("fallback") {
                    None => Ending::default(),
                    Some(v) => Ending::parse(&format!("{field}.fallback"), v)?,
                };
                Ok(Self::Agent {
                    agent_no: AgentNo::parse(&format!("{field}.agentNo"), agent_no)?,
                    fallback,
                })
            }
            Some("queue" | "hangup") => Ok(match Ending::parse(field, value)? {
                Ending::Queue(sid) => Self::Queue(sid),
                Ending::Hangup(prompt) => Self::Hangup(prompt),
            }),
            _ => Err(ParamError::new(format!(
                "{field}.type must be queue, agent or hangup"
            ))),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Queue(sid) => Ending::Queue(sid.clone()).to_json(),
            Self::Hangup(prompt) => Ending::Hangup(prompt.clone()).to_json(),
            Self::Agent { agent_no, fallback } => json!({
                "type": "agent", "agentNo": agent_no.as_str(), "fallback": fallback.to_json()
            }),
        }
    }

    fn collect<'a>(&'a self, names: &mut Names<'a>) {
        let ending = match self {
            Self::Queue(sid) => return names.queues.push(sid.as_str()),
            Self::Hangup(prompt) => return names.prompts.extend(prompt),
            Self::Agent { agent_no, fallback } => {
                names.agents.push(agent_no);
                fallback
            }
        };
        ending.collect(names);
    }
}

impl Ending {
    /// Adds what this ending names to `names`.
    pub fn collect<'a>(&'a self, names: &mut Names<'a>) {
        match self {
            Self::Queue(sid) => names.queues.push(sid.as_str()),
            Self::Hangup(prompt) => names.prompts.extend(prompt),
        }
    }
}

/// Every queue, agent and prompt a route or a queue names, for the checks that they
/// exist in the application.
#[derive(Debug, Default)]
pub struct Names<'a> {
    /// Queues named.
    pub queues: Vec<&'a str>,
    /// Agents named.
    pub agents: Vec<&'a AgentNo>,
    /// Prompts named.
    pub prompts: Vec<&'a PromptName>,
}

fn menu_key(key: &str) -> Option<char> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
        _ => None,
    }
}

impl Menu {
    fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        fields.only(&["type", "prompt", "keys", "timeout", "tries", "default"])?;
        let prompt =
            opt_prompt("route", fields)?.ok_or_else(|| ParamError::new("missing route.prompt"))?;
        let keys_shape = || ParamError::new("route.keys must be an object of keys 0-9 * #");
        let mut keys = BTreeMap::new();
        let empty = Map::new();
        let given = match fields.raw("keys") {
            None => &empty,
            Some(v) => v.as_object().ok_or_else(keys_shape)?,
        };
        for (key, target) in given {
            let key = menu_key(key).ok_or_else(keys_shape)?;
            keys.insert(key, Step::parse(&format!("route.keys.{key}"), target)?);
        }
        let default = fields
            .raw("default")
            .ok_or_else(|| ParamError::new("missing route.default"))?;
        Ok(Self {
            prompt,
            keys,
            timeout_secs: fields
                .opt_int("timeout", 1, 30)
                .map_err(|_| ParamError::new("route.timeout must be 1-30"))?
                .map_or(DEFAULT_MENU_TIMEOUT, |n| n as u32),
            tries: fields
                .opt_int("tries", 1, 5)
                .map_err(|_| ParamError::new("route.tries must be 1-5"))?
                .map_or(DEFAULT_MENU_TRIES, |n| n as u32),
            default: Step::parse("route.default", default)?,
        })
    }

    /// Where key `key` leads, if it is one of the menu's.
    pub fn target(&self, key: char) -> Option<&Step> {
        self.keys.get(&key)
    }
}

impl Route {
    /// Parses a route object (the `route` field of a number).
    pub fn parse(value: &Value) -> Result<Self, ParamError> {
        let fields = object("route", value)?;
        match fields.opt_str("type")? {
            Some("menu") => Ok(Self::Menu(Menu::parse(fields)?)),
            Some("queue" | "agent" | "hangup") => Ok(Self::Step(Step::parse("route", value)?)),
            _ => Err(ParamError::new(
                "route.type must be queue, agent, menu or hangup",
            )),
        }
    }

    /// The contract's JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Step(step) => step.to_json(),
            Self::Menu(menu) => {
                let keys: Map<String, Value> = menu
                    .keys
                    .iter()
                    .map(|(k, step)| (k.to_string(), step.to_json()))
                    .collect();
                json!({
                    "type": "menu", "prompt": menu.prompt.as_str(), "keys": keys,
                    "timeout": menu.timeout_secs, "tries": menu.tries,
                    "default": menu.default.to_json(),
                })
            }
        }
    }

    /// Every queue, agent and prompt the route names.
    pub fn names(&self) -> Names<'_> {
        let mut names = Names::default();
        match self {
            Self::Step(step) => step.collect(&mut names),
            Self::Menu(menu) => {
                names.prompts.push(&menu.prompt);
                for step in menu.keys.values().chain([&menu.default]) {
                    step.collect(&mut names);
                }
            }
        }
        names
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const Q: &str = "QU0000120261130120000000000000001";

    #[test]
    fn routes_round_trip() {
        let q = format!("{Q}0");
        for route in [
            json!({"type":"queue","queueSid": q}),
            json!({"type":"hangup","prompt":"closed.wav"}),
            json!({"type":"hangup","prompt":""}),
            json!({"type":"agent","agentNo":"1001","fallback":{"type":"queue","queueSid": q}}),
            json!({"type":"menu","prompt":"menu.wav","keys":{"1":{"type":"queue","queueSid": q},
                "#":{"type":"agent","agentNo":"a","fallback":{"type":"hangup","prompt":""}}},
                "timeout":5,"tries":2,"default":{"type":"hangup","prompt":"bye.wav"}}),
        ] {
            let parsed = Route::parse(&route).unwrap();
            assert_eq!(parsed.to_json(), route);
        }
        let agent = Route::parse(&json!({"type":"agent","agentNo":"1001"})).unwrap();
        assert_eq!(
            agent.to_json()["fallback"],
            json!({"type":"hangup","prompt":""})
        );
        let menu = Route::parse(
            &json!({"type":"menu","prompt":"m.wav","default":{"type":"queue","queueSid": q}}),
        )
        .unwrap();
        let names = menu.names();
        assert_eq!((names.queues.len(), names.prompts.len()), (1, 1));
    }

    /// JSON built from the routes' and queues' own vocabulary, nested, with odd leaves.
    pub(crate) fn route_like_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let words = prop::sample::select(
            &[
                "type",
                "queue",
                "agent",
                "menu",
                "hangup",
                "queueSid",
                "agentNo",
                "fallback",
                "prompt",
                "keys",
                "timeout",
                "tries",
                "default",
                "1",
                "#",
                "*",
                "12",
                "m.wav",
                "QU0000120261130120000000000000001",
                "",
                "\u{0}",
                "name",
                "strategy",
                "ring-all",
                "overflow",
                "announce",
                "everySeconds",
                "musicOnHold",
            ][..],
        );
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1.0e3f64..1.0e3).prop_map(Value::from),
            words.clone().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    words.clone().prop_map(str::to_string),
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever JSON comes, parsing never panics, and what parses reads back the same
        /// from its own JSON.
        #[test]
        fn any_json_parses_or_is_refused(value in route_like_json()) {
            if let Ok(route) = Route::parse(&value) {
                proptest::prop_assert_eq!(Route::parse(&route.to_json()).ok(), Some(route));
            }
            if let Ok(ending) = Ending::parse("overflow", &value) {
                proptest::prop_assert_eq!(Ending::parse("overflow", &ending.to_json()).ok(), Some(ending));
            }
        }
    }

    #[test]
    fn bad_routes_name_the_field() {
        let q = format!("{Q}0");
        for (route, msg) in [
            (json!("queue"), "route must be an object"),
            (
                json!({"type":"dial"}),
                "route.type must be queue, agent, menu or hangup",
            ),
            (json!({"type":"queue"}), "missing route.queueSid"),
            (
                json!({"type":"agent","agentNo":"x y"}),
                "invalid route.agentNo: \"x y\" (expected 1-32 of A-Z a-z 0-9 _ -)",
            ),
            (
                json!({"type":"agent","agentNo":"a","fallback":{"type":"menu"}}),
                "route.fallback.type must be queue or hangup",
            ),
            (
                json!({"type":"menu","default":{"type":"hangup"}}),
                "missing route.prompt",
            ),
            (
                json!({"type":"menu","prompt":"m.wav"}),
                "missing route.default",
            ),
            (
                json!({"type":"menu","prompt":"m.wav","keys":{"12":{"type":"hangup"}},"default":{"type":"hangup"}}),
                "route.keys must be an object of keys 0-9 * #",
            ),
            (
                json!({"type":"menu","prompt":"m.wav","keys":{"1":{"type":"menu"}},"default":{"type":"hangup"}}),
                "route.keys.1.type must be queue, agent or hangup",
            ),
            (
                json!({"type":"menu","prompt":"m.wav","timeout":31,"default":{"type":"hangup"}}),
                "route.timeout must be 1-30",
            ),
            (
                json!({"type":"menu","prompt":"m.wav","tries":0,"default":{"type":"hangup"}}),
                "route.tries must be 1-5",
            ),
            (
                json!({"type":"queue","queueSid": q, "extra": 1}),
                "unknown field \"extra\" (known: type, queueSid)",
            ),
        ] {
            assert_eq!(Route::parse(&route).unwrap_err().0, msg, "{route}");
        }
    }
}

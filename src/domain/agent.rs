//! An agent's management fields (agents' contract §3.1): who it is, how it is reached,
//! which queues it serves. Parsed from a create (`POST`) or change (`PATCH`) body.

use serde_json::Value;

use super::fields::{Fields, ParamError, check_label};
use super::phone::{PhoneNumber, printable};

/// Most queues one agent may belong to.
pub const MAX_MEMBERSHIPS: usize = 50;
/// Longest agent name, in characters.
pub const MAX_AGENT_NAME_CHARS: usize = 64;

/// The fields of an agent create body (read-only fields such as `createdAt` are refused,
/// like misspelt ones, so nothing is ignored in silence).
const CREATE_FIELDS: &[&str] = &[
    "agentNo",
    "name",
    "pwd",
    "role",
    "phoneType",
    "pstnNumber",
    "sipNumber",
    "queues",
    "wrapupTime",
    "autoAnswer",
    "callerIdPoolSid",
    "enabled",
];
/// The fields of an agent change body.
const CHANGE_FIELDS: &[&str] = &[
    "agentNo",
    "name",
    "pwd",
    "role",
    "phoneType",
    "pstnNumber",
    "queues",
    "wrapupTime",
    "autoAnswer",
    "callerIdPoolSid",
    "enabled",
    "rotateSipPwd",
];

/// An agent's number within its application: `[A-Za-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentNo(String);

impl AgentNo {
    /// Accepts `s` if it has the agentNo shape; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParamError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ParamError::new(format!(
                "invalid {field}: {} (expected 1-32 of A-Z a-z 0-9 _ -)",
                printable(s)
            )))
        }
    }

    /// The agentNo as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an agent may do: supervisors also run the supervision commands (§7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentRole {
    /// A plain agent (the default).
    #[default]
    Agent,
    /// An agent that may supervise the application's other agents.
    Supervisor,
}

impl AgentRole {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
        }
    }

    /// The role named `s`, if any.
    pub fn from_word(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "supervisor" => Some(Self::Supervisor),
            _ => None,
        }
    }
}

impl TryFrom<String> for AgentRole {
    type Error = ParamError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_word(&s).ok_or_else(|| ParamError::new(format!("role {s:?}")))
    }
}

/// The device an agent takes calls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum PhoneType {
    /// A SIP phone registered with its sipNumber (1).
    Sip,
    /// An ordinary phone reached at its pstnNumber (2).
    Pstn,
    /// The browser's WebPhone, registered over WebSocket (3, the default).
    #[default]
    WebPhone,
}

impl PhoneType {
    /// The contract's number.
    pub fn code(self) -> i64 {
        match self {
            Self::Sip => 1,
            Self::Pstn => 2,
            Self::WebPhone => 3,
        }
    }

    /// The phone type numbered `n`, if any.
    pub fn from_code(n: i64) -> Option<Self> {
        match n {
            1 => Some(Self::Sip),
            2 => Some(Self::Pstn),
            3 => Some(Self::WebPhone),
            _ => None,
        }
    }
}

impl TryFrom<i64> for PhoneType {
    type Error = ParamError;

    fn try_from(n: i64) -> Result<Self, Self::Error> {
        Self::from_code(n).ok_or_else(|| ParamError::new(format!("phoneType {n}")))
    }
}

/// A platform-wide SIP user number: 4–16 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipNumber(String);

impl SipNumber {
    /// Accepts `s` if it is 4–16 ASCII digits.
    pub fn parse(s: &str) -> Result<Self, ParamError> {
        if (4..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(ParamError::new(format!(
                "invalid sipNumber: {} (expected 4-16 digits)",
                printable(s)
            )))
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One queue an agent serves, with its skill level there (1–10, 10 best).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The queue (`QU…`); whether it exists in the application is the store's check.
    pub queue_sid: String,
    /// 1–10.
    pub skill_level: i64,
}

/// The fields of an agent create (`creating`: `agentNo` and `pwd` required, `sipNumber`
/// allowed) or change (every field optional). `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSpec {
    /// Display name (≤ 64 characters).
    pub name: Option<String>,
    /// The new password, in clear (hashed by the caller before it is stored).
    pub pwd: Option<String>,
    /// agent or supervisor.
    pub role: Option<AgentRole>,
    /// The device login uses when it names none.
    pub phone_type: Option<PhoneType>,
    /// `Some(None)`: cleared (`""`).
    pub pstn_number: Option<Option<PhoneNumber>>,
    /// Given on create; else one is assigned.
    pub sip_number: Option<SipNumber>,
    /// Replaces every membership.
    pub queues: Option<Vec<Membership>>,
    /// Seconds of wrapup after a connected call (0–3600).
    pub wrapup_time: Option<i64>,
    /// Whether the device answers by itself.
    pub auto_answer: Option<bool>,
    /// `Some("")`: the application's default pool.
    pub caller_id_pool_sid: Option<String>,
    /// A disabled agent cannot sign in.
    pub enabled: Option<bool>,
    /// A change that asks for a new sipPwd.
    pub rotate_sip_pwd: bool,
}

/// A create: the new agent's number and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// The agentNo.
    pub agent_no: AgentNo,
    /// Its fields (`pwd` present).
    pub spec: AgentSpec,
}

impl NewAgent {
    /// Parses a create body.
    pub fn parse(fields: Fields<'_>) -> Result<Self, ParamError> {
        let agent_no = AgentNo::parse("agentNo", fields.req_str("agentNo")?)?;
        if fields.raw("rotateSipPwd").is_some() {
            return Err(ParamError::new(
                "rotateSipPwd is for changing an agent, not creating one",
            ));
        }
        let spec = AgentSpec::parse(fields, true)?;
        if spec.pwd.is_none() {
            return Err(ParamError::new("missing pwd"));
        }
        Ok(Self { agent_no, spec })
    }
}

impl AgentSpec {
    /// Parses a change body for the agent numbered `agent_no` (a body may repeat it, not
    /// change it).
    pub fn parse_change(fields: Fields<'_>, agent_no: &str) -> Result<Self, ParamError> {
        if let Some(given) = fields.opt_str("agentNo")?
            && given != agent_no
        {
            return Err(ParamError::new("agentNo cannot be changed"));
        }
        if fields.raw("sipNumber").is_some() {
            return Err(ParamError::new(
                "sipNumber cannot be changed (delete and create the agent)",
            ));
        }
        let mut spec = Self::parse(fields, false)?;
        spec.rotate_sip_pwd = fields.opt_bool("rotateSipPwd")?.unwrap_or(false);
        Ok(spec)
    }

    fn parse(fields: Fields<'_>, creating: bool) -> Result<Self, ParamError> {
        if fields.raw("sipPwd").is_some() {
            return Err(ParamError::new(
                "sipPwd is read-only (PATCH {\"rotateSipPwd\":true} renews it)",
            ));
        }
        fields.only(if creating {
            CREATE_FIELDS
        } else {
            CHANGE_FIELDS
        })?;
        let name = fields.opt_str("name")?.map(str::to_string);
        if let Some(name) = &name {
            if name.chars().count() > MAX_AGENT_NAME_CHARS {
                return Err(ParamError::new(format!(
                    "name must be at most {MAX_AGENT_NAME_CHARS} characters"
                )));
            }
            check_label("name", name, usize::MAX)?;
        }
        let pwd = fields.opt_str("pwd")?.map(check_pwd).transpose()?;
        let role = fields
            .opt_str("role")?
            .map(|r| {
                AgentRole::from_word(r).ok_or_else(|| {
                    ParamError::new(format!(
                        "invalid role: {} (agent or supervisor)",
                        printable(r)
                    ))
                })
            })
            .transpose()?;
        let phone_type = fields
            .opt_int("phoneType", 1, 3)?
            .and_then(PhoneType::from_code);
        let pstn_number = fields
            .opt_str("pstnNumber")?
            .map(|s| {
                (!s.is_empty())
                    .then(|| PhoneNumber::parse("pstnNumber", s))
                    .transpose()
            })
            .transpose()?;
        let sip_number = if creating {
            fields
                .opt_nonempty_str("sipNumber")?
                .map(SipNumber::parse)
                .transpose()?
        } else {
            None
        };
        let caller_id_pool_sid = fields.opt_str("callerIdPoolSid")?.map(str::to_string);
        Ok(Self {
            name,
            pwd,
            role,
            phone_type,
            pstn_number,
            sip_number,
            queues: parse_memberships(fields.raw("queues"))?,
            wrapup_time: fields.opt_int("wrapupTime", 0, 3600)?,
            auto_answer: fields.opt_bool("autoAnswer")?,
            caller_id_pool_sid,
            enabled: fields.opt_bool("enabled")?,
            rotate_sip_pwd: false,
        })
    }
}

/// Checks a new password: 6–64 characters, none of them control characters.
pub fn check_pwd(pwd: &str) -> Result<String, ParamError> {
    if !(6..=64).contains(&pwd.chars().count()) {
        return Err(ParamError::new("pwd must be 6-64 characters"));
    }
    if pwd.chars().any(char::is_control) {
        return Err(ParamError::new("pwd must not contain control characters"));
    }
    Ok(pwd.to_string())
}

fn parse_memberships(value: Option<&Value>) -> Result<Option<Vec<Membership>>, ParamError> {
    let shape = || {
        ParamError::new(format!(
            "queues must be an array of at most {MAX_MEMBERSHIPS} {{\"queueSid\",\"skillLevel\"}} objects"
        ))
    };
    let Some(value) = value else { return Ok(None) };
    let items = value.as_array().ok_or_else(shape)?;
    if items.len() > MAX_MEMBERSHIPS {
        return Err(shape());
    }
    let mut out: Vec<Membership> = Vec::with_capacity(items.len());
    for item in items {
        let object = item.as_object().ok_or_else(shape)?;
        let fields = Fields(object);
        let queue_sid = fields
            .req_str("queueSid")
            .map_err(|_| ParamError::new("missing queues[].queueSid"))?;
        let skill_level = fields
            .opt_int("skillLevel", 1, 10)
            .map_err(|_| ParamError::new("queues[].skillLevel must be 1-10"))?
            .unwrap_or(5);
        if out.iter().any(|m| m.queue_sid == queue_sid) {
            return Err(ParamError::new(format!(
                "queues names {} twice",
                printable(queue_sid)
            )));
        }
        out.push(Membership {
            queue_sid: queue_sid.to_string(),
            skill_level,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> Result<NewAgent, String> {
        NewAgent::parse(Fields(body.as_object().unwrap())).map_err(|e| e.0)
    }

    #[test]
    fn create_fields() {
        let a = create(json!({"agentNo":"1001","pwd":"s3cret!","name":"Li Lei","phoneType":"2",
            "pstnNumber":"13800138000","queues":[{"queueSid":"QUx"},{"queueSid":"QUy","skillLevel":9}],
            "wrapupTime":0,"autoAnswer":"true"}))
        .unwrap();
        assert_eq!(a.agent_no.as_str(), "1001");
        assert_eq!(a.spec.phone_type, Some(PhoneType::Pstn));
        assert_eq!(a.spec.queues.as_ref().unwrap()[0].skill_level, 5);
        assert_eq!(a.spec.queues.as_ref().unwrap()[1].skill_level, 9);
        assert_eq!(a.spec.wrapup_time, Some(0));
        assert_eq!(a.spec.auto_answer, Some(true));
    }

    #[test]
    fn create_refusals_name_the_field() {
        for (body, msg) in [
            (json!({"pwd":"secret"}), "missing agentNo"),
            (
                json!({"agentNo":"10 01","pwd":"secret"}),
                "invalid agentNo: \"10 01\" (expected 1-32 of A-Z a-z 0-9 _ -)",
            ),
            (json!({"agentNo":"1001"}), "missing pwd"),
            (
                json!({"agentNo":"1001","pwd":"short"}),
                "pwd must be 6-64 characters",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","role":"boss"}),
                "invalid role: \"boss\" (agent or supervisor)",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","phoneType":4}),
                "phoneType must be 1-3",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","wrapupTime":3601}),
                "wrapupTime must be 0-3600",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","sipNumber":"123"}),
                "invalid sipNumber: \"123\" (expected 4-16 digits)",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","queues":[{"queueSid":"QUa","skillLevel":11}]}),
                "queues[].skillLevel must be 1-10",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","queues":[{"queueSid":"QUa"},{"queueSid":"QUa"}]}),
                "queues names \"QUa\" twice",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","sipPwd":"x"}),
                "sipPwd is read-only (PATCH {\"rotateSipPwd\":true} renews it)",
            ),
            (
                json!({"agentNo":"1001","pwd":"secret","name":"a\u{0}b"}),
                "name must not contain control characters",
            ),
        ] {
            assert_eq!(create(body.clone()).unwrap_err(), msg, "{body}");
        }
    }

    #[test]
    fn changes_keep_identity() {
        let change = |body: Value| {
            AgentSpec::parse_change(Fields(body.as_object().unwrap()), "1001").map_err(|e| e.0)
        };
        assert!(change(json!({"agentNo":"1001","enabled":false})).is_ok());
        assert_eq!(
            change(json!({"agentNo":"1002"})).unwrap_err(),
            "agentNo cannot be changed"
        );
        assert!(change(json!({"rotateSipPwd":true})).unwrap().rotate_sip_pwd);
        assert_eq!(
            change(json!({"pstnNumber":""})).unwrap().pstn_number,
            Some(None)
        );
    }
}

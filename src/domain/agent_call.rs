//! An agent's conversation as the contract names it (agents' contract §7.1, §8, §10): its
//! callType, the legs' callSubtypes, its byeType, and what the platform stores with its
//! first leg to drive it ([`AgentCall`]). Also the masking of users' numbers (§8.5) and
//! their `userNumberType`.

use serde::{Deserialize, Serialize};

use super::agent::PhoneType;

/// callType (§8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallType {
    /// `1`: a user dialled in (拨号呼入).
    DialIn,
    /// `2`: backend outbound (后台外呼): the platform dialled the user for a queue or agent.
    Outbound,
    /// `3`: the agent dialled out from its own phone (拨号外呼, §11.2).
    PhoneDialOut,
    /// `4`: click-to-call (`callOut`).
    CallOut,
}

impl CallType {
    /// Its number in events and the CDR.
    pub fn code(self) -> &'static str {
        match self {
            Self::DialIn => "1",
            Self::Outbound => "2",
            Self::PhoneDialOut => "3",
            Self::CallOut => "4",
        }
    }
}

/// callSubtype of a leg (§8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSubtype {
    /// `1`: the user.
    User,
    /// `2`: the agent.
    Agent,
    /// `3`: a transfer's target (an agent offered a transferred caller, or a number).
    Transfer,
    /// `4`: the consulted party, as its agent sees it (consult-in).
    ConsultIn,
    /// `5`: the consulted party, as the consulting agent sees it (consult-out).
    ConsultOut,
}

impl CallSubtype {
    /// Its number in events.
    pub fn code(self) -> &'static str {
        match self {
            Self::User => "1",
            Self::Agent => "2",
            Self::Transfer => "3",
            Self::ConsultIn => "4",
            Self::ConsultOut => "5",
        }
    }

    /// The leg's `role` in the agent CDR (§10).
    pub fn role(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Transfer => "transfer",
            Self::ConsultIn | Self::ConsultOut => "consult",
        }
    }
}

/// How a supervisor listens in on an agent (agents' contract §7.2, callEvent
/// `monitorMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MonitorMode {
    /// `monitor`: it only listens.
    Monitor,
    /// `whisper`: the agent hears it too.
    Whisper,
    /// `barge`: everyone hears everyone.
    Barge,
}

impl MonitorMode {
    /// Its word in events.
    pub fn word(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
        }
    }

    /// The key that switches an eavesdropping channel to it (FreeSWITCH's eavesdrop DTMF:
    /// 0 listen, 2 whisper to the agent, 3 all hear all).
    pub fn key(self) -> char {
        match self {
            Self::Monitor => '0',
            Self::Whisper => '2',
            Self::Barge => '3',
        }
    }

    /// The mode a key on the eavesdropping channel switches to, if it is one.
    pub fn of_key(key: char) -> Option<Self> {
        match key {
            '0' => Some(Self::Monitor),
            '2' => Some(Self::Whisper),
            '3' => Some(Self::Barge),
            _ => None,
        }
    }
}

/// byeType of an agent CDR (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentBye {
    /// `0`: the first dialled party (a callOut's agent) did not answer.
    FirstNoAnswer,
    /// `1`: it hung up while the second was dialled.
    FirstHungUpDialing,
    /// `2`: the second did not answer.
    SecondNoAnswer,
    /// `3`: the user hung up.
    UserHungUp,
    /// `4`: the agent hung up.
    AgentHungUp,
    /// `5`: maxCallDuration.
    MaxDuration,
    /// `6`: a supervisor ended the call (forceHangup).
    Forced,
    /// `7`: the user hung up in a queue or a menu (abandoned).
    Abandoned,
    /// `8`: an overflow or a route's hangup ended the call.
    RouteHangup,
    /// `9`: a transfer failed and the caller had no queue to go back to.
    TransferFailed,
    /// `10`: the media failed (a node lost, the platform failed).
    MediaFailure,
}

impl AgentBye {
    /// Its number in the CDR.
    pub fn code(self) -> u8 {
        match self {
            Self::FirstNoAnswer => 0,
            Self::FirstHungUpDialing => 1,
            Self::SecondNoAnswer => 2,
            Self::UserHungUp => 3,
            Self::AgentHungUp => 4,
            Self::MaxDuration => 5,
            Self::Forced => 6,
            Self::Abandoned => 7,
            Self::RouteHangup => 8,
            Self::TransferFailed => 9,
            Self::MediaFailure => 10,
        }
    }
}

/// What an agent conversation needs to be driven, stored (JSON) with its first leg so any
/// process can take it over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCall {
    /// How it began.
    pub call_type: CallType,
    /// The agent.
    pub agent_no: String,
    /// Its device: sipNumber (SIP, WebPhone) or pstnNumber.
    pub agent_number: String,
    /// Which device.
    pub phone_type: PhoneType,
    /// The user's number.
    pub user_number: String,
    /// The caller id asked for (`displayNum`), `""` when none was.
    pub display_num: String,
    /// The caller id the user sees; `None`: the gateway's default.
    pub caller_id: Option<String>,
    /// Seconds the agent's device rings.
    pub agent_ring_timeout: u32,
    /// Seconds the user's phone rings.
    pub answer_timeout: u32,
    /// Seconds of talk allowed (0: no limit).
    pub max_call_duration: u32,
    /// The agent's wrapupTime, seconds.
    pub wrapup_time: i64,
    /// Numbers are masked for the agent (the agent's device shows `displayNum`).
    pub masked: bool,
    /// The call is recorded from the first agent–user connection to its end
    /// (`recordAgentCalls`).
    #[serde(default)]
    pub record: bool,
}

impl AgentCall {
    /// The number the agent's device shows: the user's, or — numbers masked — the caller
    /// id the user sees (`displayNum` when one was given), else none.
    pub fn shown_to_agent(&self) -> Option<String> {
        match self.masked {
            false => Some(self.user_number.clone()),
            true => self.caller_id.clone(),
        }
    }
}

/// Longest userData an agent or a backend outbound request may give (bytes).
pub const MAX_USER_DATA: usize = 1024;

/// The refusal of a userData that breaks [`valid_user_data`]'s rule.
pub const USER_DATA_RULE: &str = "invalid userData (at most 1024 bytes, no control characters)";

/// Whether `data` may be a conversation's userData: at most [`MAX_USER_DATA`] bytes and no
/// control characters.
pub fn valid_user_data(data: &str) -> bool {
    data.len() <= MAX_USER_DATA && !data.chars().any(char::is_control)
}

/// `userNumberType`: `1` a fixed line (leading 0), `2` a mobile (11 digits from 1, with an
/// optional +86), else `""`.
pub fn user_number_type(number: &str) -> &'static str {
    let national = number.strip_prefix("+86").unwrap_or(number);
    let digits = national.bytes().all(|b| b.is_ascii_digit());
    if digits && national.len() == 11 && national.starts_with('1') {
        "2"
    } else if digits && national.len() > 1 && number.starts_with('0') {
        "1"
    } else {
        ""
    }
}

/// A user's number as a masking socket shows it: the first 3 and last 4 characters, stars
/// between (`138****8000`); under 8 characters all but the last 2 are starred.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    let (head, tail) = if n < 8 { (0, 2.min(n)) } else { (3, 4) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_as_written() {
        assert_eq!(mask_number("13800138000"), "138****8000");
        assert_eq!(mask_number("01088880000"), "010****0000");
        assert_eq!(mask_number("12345678"), "123*5678");
        assert_eq!(mask_number("1234567"), "*****67");
        assert_eq!(mask_number("1"), "1");
        assert_eq!(mask_number(""), "");
        assert_eq!(mask_number("+8613800138000"), "+86*******8000");
    }

    #[test]
    fn number_types() {
        assert_eq!(user_number_type("13800138000"), "2");
        assert_eq!(user_number_type("+8613800138000"), "2");
        assert_eq!(user_number_type("01088880000"), "1");
        assert_eq!(user_number_type("4008001000"), "");
        assert_eq!(user_number_type("1380013800"), "");
        assert_eq!(user_number_type(""), "");
    }
}

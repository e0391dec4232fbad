//! The scripts of the kinds of call, each driving the engine's [`Core`]: one module per
//! kind. Adding a kind of call means adding a module here and a variant to [`Flow`].

pub mod agent;
pub mod click2call;
pub mod ivr;
pub mod orders;

use crate::cdr::LegFacts;
use crate::orchestrator::engine::{
    CdrKind, Command, CommandToken, Core, Happened, LegIdx, ReplyToken, Timer,
};

/// What an agent conversation's first leg stores (`params`): a dial-in's plan, or a
/// callOut's settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum StoredAgentConversation {
    /// A user dialled in.
    Inbound {
        /// Its plan.
        inbound: Box<agent::Plan>,
    },
    /// An agent's callOut.
    CallOut(Box<crate::domain::agent_call::AgentCall>),
}

impl StoredAgentConversation {
    /// Its callType.
    pub fn call_type(&self) -> crate::domain::agent_call::CallType {
        match self {
            Self::Inbound { inbound } => inbound.call_type(),
            Self::CallOut(call) => call.call_type,
        }
    }

    /// The user's number.
    pub fn user_number(&self) -> &str {
        match self {
            Self::Inbound { inbound } => &inbound.user_number,
            Self::CallOut(call) => &call.user_number,
        }
    }
}

/// The script of one call.
#[derive(Debug)]
pub enum Flow {
    /// A notice or captcha.
    Ivr(ivr::IvrFlow),
    /// A click-to-call conversation.
    Click2Call(Box<click2call::Click2CallFlow>),
    /// An agent conversation: a dial-in, a backend outbound call or an agent's callOut.
    Agent(Box<agent::AgentFlow>),
}

impl Flow {
    /// A fresh call begins.
    pub fn start(&mut self, core: &mut Core) {
        match self {
            Flow::Ivr(f) => f.start(core),
            Flow::Click2Call(f) => f.start(core),
            Flow::Agent(f) => f.start(core),
        }
    }

    /// A call taken over resumes, its legs probed.
    pub fn restored(&mut self, core: &mut Core) {
        match self {
            Flow::Ivr(f) => f.restored(core),
            Flow::Click2Call(f) => f.restored(core),
            Flow::Agent(f) => f.restored(core),
        }
    }

    /// Something happened to leg `leg`.
    pub fn on_leg(&mut self, core: &mut Core, leg: LegIdx, happened: Happened) {
        match self {
            Flow::Ivr(f) => f.on_leg(core, leg, happened),
            Flow::Click2Call(f) => f.on_leg(core, leg, happened),
            Flow::Agent(f) => f.on_leg(core, leg, happened),
        }
    }

    /// The media server answered a question of the flow's.
    pub fn on_reply(&mut self, core: &mut Core, token: ReplyToken, ok: bool) {
        match self {
            Flow::Click2Call(f) => f.on_reply(core, token, ok),
            Flow::Agent(f) => f.on_reply(core, token, ok),
            Flow::Ivr(_) => {}
        }
    }

    /// A timer of the flow's own fired.
    pub fn on_timer(&mut self, core: &mut Core, timer: Timer) {
        if let Flow::Agent(f) = self {
            f.on_timer(core, timer);
        }
    }

    /// The call is over: the flow answers the commands still waiting on it.
    pub fn finished(&mut self, core: &mut Core) {
        match self {
            Flow::Agent(f) => f.finished(core),
            Flow::Ivr(_) | Flow::Click2Call(_) => {}
        }
    }

    /// An API command.
    pub fn on_command(&mut self, core: &mut Core, token: CommandToken, command: Command) {
        match self {
            Flow::Ivr(f) => f.on_command(core, token, command),
            Flow::Click2Call(f) => f.on_command(core, token, command),
            Flow::Agent(f) => f.on_command(core, token, command),
        }
    }

    /// Leg `leg`'s facts for its `completed` status and the CDR.
    pub fn leg_facts(&self, core: &Core, leg: LegIdx) -> LegFacts {
        match self {
            Flow::Ivr(_) => core.legs[leg].facts(core.legs[leg].end_kind()),
            Flow::Click2Call(f) => f.leg_facts(core, leg),
            Flow::Agent(f) => f.leg_facts(core, leg),
        }
    }

    /// What the CDR says beyond the legs.
    pub fn cdr_kind(&self, core: &Core) -> CdrKind {
        match self {
            Flow::Ivr(f) => f.cdr_kind(),
            Flow::Click2Call(f) => f.cdr_kind(core),
            Flow::Agent(f) => f.cdr_kind(core),
        }
    }
}

//! The scripts of the kinds of call, each driving the engine's [`Core`]: one module per
//! kind. Adding a kind of call means adding a module here and a variant to [`Flow`].

pub mod agent_call;
pub mod click2call;
pub mod ivr;

use crate::cdr::LegFacts;
use crate::orchestrator::engine::{
    CdrKind, Command, CommandToken, Core, Happened, LegIdx, ReplyToken,
};

/// The script of one call.
#[derive(Debug)]
pub enum Flow {
    /// A notice or captcha.
    Ivr(ivr::IvrFlow),
    /// A click-to-call conversation.
    Click2Call(Box<click2call::Click2CallFlow>),
    /// An agent's conversation.
    Agent(Box<agent_call::AgentCallFlow>),
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

    /// The call is over: the flow answers the commands still waiting on it.
    pub fn finished(&mut self, core: &mut Core) {
        if let Flow::Agent(f) = self {
            f.finished(core);
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

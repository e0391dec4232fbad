//! Call detail records and callback bodies (API.md §5, §6.1, §6.2), built from leg
//! timings and hangup causes. Pure: the orchestrator supplies the facts, the store keeps
//! the results, the dispatcher sends them.

mod agent;
mod causes;
mod shapes;

pub use agent::{AgentCdr, AgentLeg};
pub use causes::{LegEnd, MEDIA_LOST, call_cause, notice_outcome};
pub use shapes::{ConversationCdr, LegFacts, NoticeCdr, StatusEvent, format_time};

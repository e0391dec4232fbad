//! Parsed, validated types of the contract. Once a value of one of these types exists it
//! is valid; nothing downstream checks it again. No I/O happens here.

pub mod agent;
pub mod agent_call;
pub mod application;
pub mod caller_id_pool;
pub mod captcha;
pub mod click2call;
pub mod credentials;
pub mod cti;
pub mod fields;
pub mod ids;
pub mod kind;
pub mod limits;
pub mod notice;
pub mod number;
pub mod phone;
pub mod prompt;
pub mod queue;
pub mod route;
pub mod time;
pub mod webhook_url;

pub use fields::{Fields, ParamError, check_label};
pub use ids::{CallId, ConversationId, IdGenerator, RequestId};
pub use kind::CallKind;
pub use phone::PhoneNumber;
pub use prompt::PromptName;

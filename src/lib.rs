//! voicepaas: a self-hostable cloud voice PaaS. Customers' servers call the HTTP API
//! (`api`) to place voice notices, captchas and click-to-call conversations; requests are
//! validated into `domain` types and stored durably (`store`). See `DESIGN.md` for the
//! whole architecture.

pub mod acd;
pub mod agents;
pub mod api;
pub mod cdr;
pub mod cli;
pub mod config;
pub mod domain;
pub mod esl;
pub mod media;
pub mod orchestrator;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;

//! The webhook dispatcher (API.md §7): sends the callbacks the orchestrator left in the
//! outbox — signed (Standard Webhooks), retried on a schedule, in order per ordering key,
//! to public addresses only.

pub mod dispatcher;
pub mod guard;
pub mod schedule;
pub mod signing;

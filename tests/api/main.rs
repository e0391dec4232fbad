//! End-to-end tests: the real server on a random port, talked to over HTTP as a customer
//! or an operator would, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL.

mod helpers;

mod admin;
mod agent_calls;
mod agent_client;
mod agent_sessions;
mod agents;
mod auth;
mod bad_input;
mod calls;
mod captchas;
mod cdr_query;
mod cli;
mod console;
mod consults;
mod conversation_calls;
mod conversations;
mod dial_in;
mod engine_faults;
mod fair_delivery;
mod hostile;
mod idempotency;
mod inbound;
mod media_timers;
mod notices;
mod numbers;
mod openapi;
mod operability;
mod ops_tools;
mod own_postgres;
mod processes;
mod prompts;
mod queue_announcements;
mod queue_events;
mod queue_strategies;
mod queues;
mod receiver;
mod recovery;
mod replicas;
mod repository;
mod retention;
mod supervision;
mod transfers;
mod user_docs;
mod webhooks;

//! Automatic call distribution (agents' contract §9): which waiting caller is offered to
//! which agent. Pure: the strategies are choice functions and the matchmaker a state
//! machine whose effects (offers, withdrawals) the caller's driver carries out.

pub mod devices;
pub mod dispatch;
pub mod hub;
pub mod live;
pub mod strategy;

//! Media servers: the pool of Event Socket connections, and the sandbox (a simulated
//! FreeSWITCH over the Event Socket).

pub mod pool;
pub mod registrations;
pub mod sandbox;

//! Media servers: the sandbox (a simulated FreeSWITCH over the Event Socket).

pub mod sandbox;

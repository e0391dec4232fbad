//! The FreeSWITCH Event Socket (inbound mode): the codec (framing, url-coding), events,
//! and the client the media layer drives FreeSWITCH with.
//!
//! Why our own code and not the `freeswitch-esl-tokio` crate (2.8, evaluated for this):
//! that crate is a good client, but (1) the sandbox media server needs the *server* side of
//! the protocol too, and one codec used in both directions keeps the client, the sandbox
//! and the recorded FreeSWITCH sessions in `shared/esl-transcripts` checked against each
//! other; (2) it leaves reconnection, re-subscription and "which channels may have missed
//! events" to the caller, which is most of what the orchestrator needs here; (3) it brings
//! `freeswitch-types`, `quick-xml` and `indexmap` for XML/JSON events and outbound mode,
//! which we do not use. The codec here is small, fuzzed (proptest) and benchmarked
//! (`benches/esl_codec.rs`).

pub mod client;
pub mod codec;
pub mod event;

pub use client::{EslClient, EslError, EslOptions, Execute, Incoming};
pub use codec::{CodecError, Decoder, Direction, Headers, Message};
pub use event::Event;

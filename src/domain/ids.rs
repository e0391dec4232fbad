//! Typed ids of the contract: 34 chars = 2-letter prefix + 5-digit node id + 14-digit UTC
//! timestamp (`YYYYMMDDHHmmss`) + 13 digits unique within the node (API.md conventions).
//! One newtype per prefix, so a call id cannot be passed where a request id is wanted.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

const SEQ_MODULUS: u64 = 10_000_000_000_000;

/// Length of every id of the contract.
pub const ID_LEN: usize = 34;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The two-letter prefix of this kind of id.
            pub const PREFIX: &'static str = $prefix;

            /// Accepts a string only if it has this id's exact shape.
            pub fn parse(s: &str) -> Option<Self> {
                is_well_formed(s, $prefix).then(|| Self(s.to_string()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// Id of one accepted API request (`RQ…`).
    RequestId, "RQ"
);
prefixed_id!(
    /// Id of one call leg (`CA…`).
    CallId, "CA"
);
prefixed_id!(
    /// Id of one click-to-call conversation (`CV…`).
    ConversationId, "CV"
);
prefixed_id!(
    /// Id of one agent session, login to logout (`AG…`, agents' contract §4).
    AgentSessionId, "AG"
);
prefixed_id!(
    /// Id of one caller-id pool (`CP…`, agents' contract §3.4).
    PoolId, "CP"
);
prefixed_id!(
    /// Id of one queue (skill group, `QU…`, agents' contract §3.2).
    QueueId, "QU"
);

/// Whether `s` has the shape of an id with `prefix` (kinds of id without a type of their
/// own here, such as queue sids, are checked with this before any lookup).
pub fn is_well_formed(s: &str, prefix: &str) -> bool {
    s.len() == ID_LEN && s.starts_with(prefix) && s.as_bytes()[2..].iter().all(u8::is_ascii_digit)
}

/// Makes ids for one node. Lock-free; the 13-digit part is a counter that starts at a
/// random point, so two processes restarted within the same second (even with the same
/// node id by mistake) are vanishingly unlikely to meet.
#[derive(Debug)]
pub struct IdGenerator {
    node_id: u32,
    seq: AtomicU64,
}

impl IdGenerator {
    /// A generator for `node_id` (0–99999).
    pub fn new(node_id: u32) -> Self {
        assert!(node_id <= 99_999, "node id has five digits");
        let mut seed = [0u8; 8];
        // Without OS randomness the ids stay unique within this process; only the
        // cross-restart margin shrinks, so a failure here is not worth stopping for.
        let _ = getrandom::fill(&mut seed);
        Self {
            node_id,
            seq: AtomicU64::new(u64::from_le_bytes(seed) % SEQ_MODULUS),
        }
    }

    fn next(&self, prefix: &str, now: DateTime<Utc>) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % SEQ_MODULUS;
        format!(
            "{prefix}{:05}{}{seq:013}",
            self.node_id,
            now.format("%Y%m%d%H%M%S")
        )
    }

    /// A new request id stamped `now`.
    pub fn request(&self, now: DateTime<Utc>) -> RequestId {
        RequestId(self.next(RequestId::PREFIX, now))
    }
    /// A new call (leg) id stamped `now`.
    pub fn call(&self, now: DateTime<Utc>) -> CallId {
        CallId(self.next(CallId::PREFIX, now))
    }
    /// A new conversation id stamped `now`.
    pub fn conversation(&self, now: DateTime<Utc>) -> ConversationId {
        ConversationId(self.next(ConversationId::PREFIX, now))
    }
    /// A new agent session id stamped `now`.
    pub fn agent_session(&self, now: DateTime<Utc>) -> AgentSessionId {
        AgentSessionId(self.next(AgentSessionId::PREFIX, now))
    }
    /// A new caller-id pool id stamped `now`.
    pub fn pool(&self, now: DateTime<Utc>) -> PoolId {
        PoolId(self.next(PoolId::PREFIX, now))
    }
    /// A new queue id stamped `now`.
    pub fn queue(&self, now: DateTime<Utc>) -> QueueId {
        QueueId(self.next(QueueId::PREFIX, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::HashSet;

    #[test]
    fn shape_is_prefix_node_time_seq() {
        let now = Utc.with_ymd_and_hms(2026, 11, 21, 7, 30, 5).unwrap();
        let id = IdGenerator::new(42).call(now);
        assert_eq!(id.as_str().len(), 34);
        assert_eq!(&id.as_str()[..21], "CA0004220261121073005");
        assert!(CallId::parse(id.as_str()).is_some());
        assert!(RequestId::parse(id.as_str()).is_none());
        assert!(CallId::parse("CA123").is_none());
    }

    #[test]
    fn unique_within_and_across_nodes() {
        let now = Utc::now();
        let (a, b) = (IdGenerator::new(1), IdGenerator::new(2));
        let ids: HashSet<String> = (0..10_000)
            .flat_map(|_| [a.call(now).0, b.call(now).0])
            .collect();
        assert_eq!(ids.len(), 20_000);
    }
}

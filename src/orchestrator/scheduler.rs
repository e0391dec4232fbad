//! Placing queued calls at each account's pace (API.md §1a): at most `cps` calls started
//! per second (a token bucket holding a fifth of a second's worth, at least one) and at
//! most `maxConcurrentCalls` legs live at once, counted in the database so every replica
//! sees the same figure. Calls over the pace wait in the queue, oldest first; nothing
//! is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Ctx, Placement};
use crate::telemetry::mask::Masked;
use crate::telemetry::metrics::metrics;

/// Longest sleep between looks at the queue (other replicas accept calls too).
const POLL: Duration = Duration::from_millis(50);
/// Most calls claimed per account in one go.
const MAX_CLAIM: i64 = 500;

/// Tokens of one account: calls it may start now.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, cps: f64, now: Instant) -> f64 {
        let burst = (cps / 5.0).max(1.0);
        self.tokens = (self.tokens + cps * (now - self.at).as_secs_f64()).min(burst);
        self.at = now;
        self.tokens
    }
}

/// The placing loop of this process.
pub(super) async fn run(ctx: Arc<Ctx>) {
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    loop {
        if ctx.is_stopping() {
            return;
        }
        let busy = match place_some(&ctx, &mut buckets).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "placing queued calls failed; retrying");
                false
            }
        };
        let pause = if busy { Duration::from_millis(5) } else { POLL };
        tokio::select! {
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One pass over the accounts with queued calls; says whether it started any.
async fn place_some(
    ctx: &Arc<Ctx>,
    buckets: &mut HashMap<String, Bucket>,
) -> Result<bool, crate::store::StoreError> {
    let now = Instant::now();
    let mut started = false;
    for account in ctx.store.waiting_accounts().await? {
        let bucket = buckets.entry(account.sid.clone()).or_insert(Bucket {
            tokens: 1.0,
            at: now,
        });
        let tokens = bucket.refill(account.cps.max(1) as f64, now).floor() as i64;
        if tokens < 1 {
            continue;
        }
        let room = account.max_concurrent_calls - ctx.store.live_legs(&account.sid).await?;
        let n = tokens.min(room).min(MAX_CLAIM);
        if n < 1 {
            continue;
        }
        let calls = ctx
            .store
            .claim_queued(&account.sid, n, &ctx.instance)
            .await?;
        bucket.tokens -= calls.len() as f64;
        started |= !calls.is_empty();
        let answer_timeout = account.answer_timeout.clamp(1, 600) as u32;
        for call in calls {
            metrics().call_placed(&call.kind);
            tracing::debug!(call = %call.id, kind = %call.kind, to = %Masked(&call.to_number), "placing");
            ctx.spawn(Placement::new(call, answer_timeout));
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_cps_and_holds_a_fifth_of_a_second() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 0.0,
            at: start,
        };
        assert_eq!(
            b.refill(100.0, start + Duration::from_millis(50)).floor(),
            5.0
        );
        // Never more than cps / 5 saved up…
        assert_eq!(b.refill(100.0, start + Duration::from_secs(10)), 20.0);
        // …and at least one call for slow accounts.
        let mut slow = Bucket {
            tokens: 0.0,
            at: start,
        };
        assert_eq!(slow.refill(1.0, start + Duration::from_secs(5)), 1.0);
    }
}

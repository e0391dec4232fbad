//! Placing queued calls at each account's pace (API.md §1a). The pace is the database's:
//! each claim takes tokens from the account's cps bucket and room under
//! `maxConcurrentCalls` in one transaction, so replicas together never exceed either.
//! The scheduler sleeps until calls are queued here, a call ends here, the bucket refills,
//! or (for calls queued on other replicas) a second has passed.

use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use super::engine::Input;
use crate::telemetry::mask::Masked;
use crate::telemetry::metrics::metrics;

/// Longest sleep between looks at the queue (other replicas accept calls too).
const POLL: Duration = Duration::from_secs(1);
/// Most calls claimed per account in one go.
const MAX_CLAIM: i64 = 500;

/// The placing loop of this process.
pub(super) async fn run(ctx: Arc<Ctx>) {
    loop {
        if ctx.is_stopping() {
            return;
        }
        let wait = if ctx.lease.valid() && ctx.placing() {
            place_some(&ctx).await
        } else {
            POLL
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over the accounts with queued calls; returns how long to wait before the next.
async fn place_some(ctx: &Arc<Ctx>) -> Duration {
    let accounts = match ctx.store.waiting_accounts().await {
        Ok(accounts) => accounts,
        Err(e) => {
            tracing::warn!(error = %e, "looking for queued calls failed; retrying");
            return POLL;
        }
    };
    let mut wait = POLL;
    let mut full = false;
    for sid in accounts {
        let claimed = match ctx.store.claim_queued(&sid, MAX_CLAIM, ctx.epoch()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(account = %sid, error = %e, "claiming queued calls failed; retrying");
                continue;
            }
        };
        full |= claimed.full;
        if claimed.calls.len() as i64 == MAX_CLAIM {
            wait = Duration::ZERO;
        }
        if let Some(ms) = claimed.next_token_ms {
            wait = wait.min(Duration::from_millis(ms.max(1) as u64));
        }
        let answer_timeout = claimed.answer_timeout;
        for call in claimed.calls {
            metrics().call_placed(&call.kind);
            tracing::debug!(call = %call.id, kind = %call.kind, to = %Masked(&call.to_number), "placing");
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let built = ctx.fresh(call, answer_timeout).await;
                ctx.launch(built, vec![Input::Start], None);
            });
        }
    }
    ctx.room_wanted
        .store(full, std::sync::atomic::Ordering::Relaxed);
    wait
}

//! Ownership of calls across processes: this process renews a lease row; calls whose
//! owner's lease ran out (a process killed, a replica gone) are taken over. Calls it had
//! only claimed go back to the queue; legs already dialled are re-attached when their
//! media node still has the channel (`uuid_exists`), else they end as failed with a CDR.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Ctx, Placement};
use crate::domain::time::now_ms;

/// How long a lease holds without renewal.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the lease is renewed and orphans are looked for.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Takes the lease, takes over what dead processes left, and keeps doing both.
pub(super) async fn start(ctx: Arc<Ctx>) {
    renew(&ctx).await;
    take_over(&ctx).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            if ctx.is_stopping() {
                return;
            }
            renew(&ctx).await;
            take_over(&ctx).await;
        }
    });
}

async fn renew(ctx: &Ctx) {
    let until = now_ms() + LEASE_TTL.as_millis() as i64;
    if let Err(e) = ctx
        .store
        .renew_lease(&ctx.instance, ctx.settings.node_id, until)
        .await
    {
        tracing::warn!(error = %e, "could not renew the orchestrator lease");
    }
}

async fn take_over(ctx: &Arc<Ctx>) {
    let calls = match ctx.store.take_over_orphans(&ctx.instance).await {
        Ok(calls) => calls,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for orphaned calls");
            return;
        }
    };
    if calls.is_empty() {
        ctx.wake.notify_one();
        return;
    }
    tracing::info!(
        calls = calls.len(),
        "taking over calls a stopped process left"
    );
    let mut conversations = HashSet::new();
    for call in calls {
        if let Some(cv) = &call.conversation_id
            && !conversations.insert(cv.clone())
        {
            continue;
        }
        let answer_timeout = match ctx.store.find_account(&call.account_sid).await {
            Ok(Some(a)) => a.answer_timeout.clamp(1, 600) as u32,
            _ => 45,
        };
        ctx.spawn(Placement::new(call, answer_timeout));
    }
    ctx.wake.notify_one();
}

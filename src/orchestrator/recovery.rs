//! Ownership of calls across processes. This process holds a lease (an epoch, renewed
//! every few seconds); every write of its calls names the epoch. When it cannot renew in
//! time it stops driving its calls at once (without touching them) and takes a new lease.
//! Calls whose lease ran out are taken over: legs only claimed go back to the queue, the
//! rest are rebuilt from what is stored and what the media server says now, and driven to
//! their end. Calls whose driver failed here are ended from what is stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Ctx;
use super::engine::{Input, MediaCommand};

/// How long a lease holds without renewal (on the database's clock).
const LEASE_TTL_MS: i64 = 10_000;
/// How often the lease is renewed and orphans are looked for.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// This process stops acting under its lease this long before others may take over.
const SAFETY_MS: i64 = 2_000;
/// Tries of ending a broken call with its media before it is ended from the store alone.
const MEDIA_TRIES: u32 = 3;

/// Takes a lease, takes over what stopped processes left, and keeps doing both.
pub(super) async fn start(ctx: Arc<Ctx>) {
    if acquire(&ctx).await {
        take_over(&ctx).await;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            if ctx.is_stopping() {
                return;
            }
            maintain(&ctx).await;
        }
    });
}

/// Takes a new lease; `false` when the database refused.
async fn acquire(ctx: &Ctx) -> bool {
    let asked = ctx.lease.now_ms();
    match ctx
        .store
        .acquire_lease(&ctx.instance, ctx.settings.node_id, LEASE_TTL_MS)
        .await
    {
        Ok(epoch) => {
            ctx.lease.epoch.store(epoch, Ordering::Release);
            ctx.lease
                .valid_until_ms
                .store(asked + LEASE_TTL_MS - SAFETY_MS, Ordering::Release);
            tracing::info!(epoch, "orchestrator lease taken");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not take an orchestrator lease; retrying");
            false
        }
    }
}

/// Renews the lease (or, lost, stops driving and takes a new one), then takes over
/// orphans, delivers missed commands and ends broken calls.
async fn maintain(ctx: &Arc<Ctx>) {
    let asked = ctx.lease.now_ms();
    let held = ctx.lease.valid()
        && match ctx.store.renew_lease(ctx.epoch(), LEASE_TTL_MS).await {
            Ok(true) => {
                ctx.lease
                    .valid_until_ms
                    .store(asked + LEASE_TTL_MS - SAFETY_MS, Ordering::Release);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the orchestrator lease");
                // It may still hold for a while; the drivers check it before every step.
                return;
            }
        };
    if !held {
        tracing::warn!(
            epoch = ctx.epoch(),
            "orchestrator lease lost; this process stops driving its calls"
        );
        ctx.lease.valid_until_ms.store(0, Ordering::Release);
        ctx.stop_driving();
        if !acquire(ctx).await {
            return;
        }
    }
    if ctx.placing() {
        take_over(ctx).await;
    }
    super::commands::sweep(ctx).await;
    end_broken(ctx).await;
    ctx.wake.notify_one();
}

async fn take_over(ctx: &Arc<Ctx>) {
    let taken = match ctx.store.take_over(ctx.epoch()).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for orphaned calls");
            return;
        }
    };
    if taken.units.is_empty() && taken.requeued == 0 {
        return;
    }
    tracing::info!(
        calls = taken.units.len(),
        requeued = taken.requeued,
        "taking over calls a stopped process left"
    );
    for unit in taken.units {
        resume(ctx, unit, vec![Input::Start], false);
    }
}

/// Rebuilds call `unit` from the store and drives it from `first`; `offline` ends it
/// without asking the media server anything.
fn resume(ctx: &Arc<Ctx>, unit: String, first: Vec<Input>, offline: bool) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let stored = match ctx.store.stored_call(&unit, ctx.epoch()).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                // Over, or no longer this process's.
                ctx.forget_broken(&unit);
                return;
            }
            Err(e) => {
                tracing::warn!(call = %unit, error = %e, "could not read a call to resume; trying again later");
                ctx.mark_broken(&unit);
                return;
            }
        };
        let Some(mut built) = ctx.restored(stored).await else {
            ctx.forget_broken(&unit);
            return;
        };
        if offline {
            // Its channels are hung up without waiting to hear of it; the call ends from
            // what is stored.
            for leg in built.engine.core.legs.iter_mut().filter(|l| l.is_live()) {
                if let Some(node) = ctx.media.node(&leg.node) {
                    let kill = MediaCommand::Kill(super::engine::core::ABORT_CAUSE.into());
                    let line = super::driver::media::api(&leg.channel, &kill);
                    let _ = node.client.send_api_detached(&line, |_| {}).await;
                }
                leg.dialed = false;
            }
        }
        ctx.launch(built, first, None);
    });
}

/// Ends the calls whose driver failed: with their media first, then (after
/// [`MEDIA_TRIES`] failures) from the store alone. A call leaves the list once its end is
/// written.
async fn end_broken(ctx: &Arc<Ctx>) {
    let broken: Vec<(String, u32)> = match ctx.broken.lock() {
        Ok(b) => b.iter().map(|(u, t)| (u.clone(), *t)).collect(),
        Err(_) => return,
    };
    for (unit, tries) in broken {
        if !ctx.drives(&unit) {
            resume(
                ctx,
                unit,
                vec![Input::Start, Input::Abort],
                tries >= MEDIA_TRIES,
            );
        }
    }
}

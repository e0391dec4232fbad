//! Inbound calls (agents' contract §9, §11.1): every replica hears each DID channel park
//! on every node; the one whose claim lands handles it, so each call is handled exactly
//! once. A number that no application routes (or that is granted to no account) is
//! refused with `UNALLOCATED_NUMBER`, as FreeSWITCH refuses an unknown number.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Ctx;
use crate::media::pool::ParkedCall;
use crate::store::StoreError;

/// Tries of a database step for one parked call, and the first pause between them
/// (doubled each time): the event is heard once, so a short outage must not lose it.
const TRIES: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Starts handling the DID channels parking on the media servers.
pub(crate) fn start(ctx: Arc<Ctx>) {
    let mut parked = ctx.media.parked_calls();
    tokio::spawn(async move {
        while let Some(call) = parked.recv().await {
            tokio::spawn(handle(ctx.clone(), call));
        }
    });
}

/// Runs `step` until it succeeds or a permanent error or [`TRIES`] failures.
async fn retried<T, F, Fut>(call: &ParkedCall, what: &str, mut step: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=TRIES {
        match step().await {
            Ok(value) => return Some(value),
            Err(e) if e.is_transient() && attempt < TRIES => {
                tracing::warn!(channel = %call.uuid, error = %e, what, "inbound call: retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(channel = %call.uuid, did = %call.did, error = %e, what, "inbound call left unhandled");
                return None;
            }
        }
    }
    None
}

async fn handle(ctx: Arc<Ctx>, call: ParkedCall) {
    // A replica that is stopping leaves the call to the others.
    if ctx.placing_stopped.load(Ordering::Acquire) {
        return;
    }
    let Some(route) = retried(&call, "route lookup", || ctx.store.did_route(&call.did)).await
    else {
        return;
    };
    if route.is_some() {
        // Routed numbers are answered by the inbound conversation, which is not built
        // yet: the channel is left parked for it, unclaimed.
        tracing::debug!(channel = %call.uuid, did = %call.did, "routed inbound call not handled yet");
        return;
    }
    let claimed = retried(&call, "claim", || {
        ctx.store.claim_inbound(&call, &ctx.instance)
    })
    .await;
    if claimed != Some(true) {
        return;
    }
    tracing::info!(channel = %call.uuid, did = %call.did, caller = %call.caller, "inbound call to a number without a route: refused");
    let Some(node) = ctx.media.node(&call.node) else {
        return;
    };
    let kill = format!("uuid_kill {} UNALLOCATED_NUMBER", call.uuid);
    if let Err(e) = node.client.api(&kill).await {
        tracing::warn!(channel = %call.uuid, error = %e, "could not refuse an inbound call");
    }
}

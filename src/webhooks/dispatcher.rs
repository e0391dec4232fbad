//! The dispatcher loop: claim due deliveries, POST them (signed, 15 s, no redirects, to
//! guarded addresses), record each attempt and decide what comes next. Bounded
//! concurrency overall and per target host.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::guard::{GuardedResolver, address_literal, is_forbidden};
use super::schedule::next_delay;
use super::signing::signature;
use crate::config::Settings;
use crate::domain::time::now_ms;
use crate::store::Store;
use crate::store::deliveries::{Attempt, Delivery, HostRoom, Outcome};
use crate::store::journal::host_of;
use crate::store::text::printable;

/// Deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Deliveries in flight to one host at once.
const MAX_PER_HOST: usize = 16;
/// How long a claim holds (longer than an attempt can take).
const CLAIM_FOR: Duration = Duration::from_secs(60);
/// A delivery succeeds on a 2xx within this.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between looks at the outbox while deliveries are due or in flight.
const POLL: Duration = Duration::from_millis(50);
/// Longest pause when nothing is due (callbacks written by other replicas are seen then;
/// this process's own wake it at once).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Kept of each answer.
const RESPONSE_KEEP: usize = 1024;

/// The webhook dispatcher of this process.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    client: reqwest::Client,
    allow_private: bool,
    retry_scale: f64,
    slots: Arc<Semaphore>,
    /// Deliveries in flight per host (a host leaves the map when it has none).
    hosts: Mutex<HashMap<String, usize>>,
    /// The host the last claim took a delivery for: the next claim starts after it.
    last_host: Mutex<Option<String>>,
    /// Woken when a request ends: its host may have room again.
    freed: tokio::sync::Notify,
    /// Outbox positions being delivered now.
    in_flight: Mutex<HashSet<i64>>,
    /// Set when the process stops: nothing new is claimed.
    stopping: AtomicBool,
}

impl Dispatcher {
    /// Starts delivering from the outbox.
    pub fn start(store: Store, settings: &Settings) -> Result<Dispatcher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY in the environment would send callbacks through a proxy that
            // resolves the target itself, past the address guard below: never used.
            .no_proxy()
            .timeout(TIMEOUT)
            .dns_resolver(
                GuardedResolver {
                    allow_private: settings.allow_private_webhooks,
                }
                .shared(),
            )
            .user_agent(concat!("voicepaas/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let dispatcher = Dispatcher {
            inner: Arc::new(Inner {
                store,
                client,
                allow_private: settings.allow_private_webhooks,
                retry_scale: settings.webhook_retry_scale,
                slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
                hosts: Mutex::new(HashMap::new()),
                last_host: Mutex::new(None),
                freed: tokio::sync::Notify::new(),
                in_flight: Mutex::new(HashSet::new()),
                stopping: AtomicBool::new(false),
            }),
        };
        tokio::spawn(dispatcher.clone().run());
        Ok(dispatcher)
    }

    /// Stops claiming, waits up to `within` for the deliveries in flight, and hands the
    /// ones still running back to the outbox (another process sends them at once).
    pub async fn stop(&self, within: Duration) {
        self.inner.stopping.store(true, Ordering::Relaxed);
        let all = MAX_IN_FLIGHT as u32;
        let finished = tokio::time::timeout(within, async {
            let _all = self.inner.slots.acquire_many(all).await;
            // The requests are over; their outcomes may still be being written.
            while self.inner.in_flight.lock().is_ok_and(|s| !s.is_empty()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if finished.is_ok() {
            return;
        }
        let left: Vec<i64> = self
            .inner
            .in_flight
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        tracing::warn!(
            deliveries = left.len(),
            "stopping with deliveries in flight; handing them back"
        );
        if let Err(e) = self.inner.store.release_deliveries(&left).await {
            tracing::error!(error = %e, "could not hand deliveries back; their claims run out in a minute");
        }
    }

    async fn run(self) {
        loop {
            if self.inner.stopping.load(Ordering::Relaxed) {
                return;
            }
            let free = self.inner.slots.available_permits() as i64;
            let claimed = if free > 0 {
                match self.inner.claim(free).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let busy = !claimed.is_empty();
            for (delivery, host) in claimed {
                let Ok(slot) = self.inner.slots.clone().try_acquire_owned() else {
                    // Cannot happen (no more were claimed than slots were free); should it,
                    // the claim runs out and the delivery goes later.
                    continue;
                };
                let inner = self.inner.clone();
                if let Ok(mut set) = inner.in_flight.lock() {
                    set.insert(delivery.seq);
                }
                tokio::spawn(async move {
                    let seq = delivery.seq;
                    inner.deliver(delivery, &host, slot).await;
                    if let Ok(mut set) = inner.in_flight.lock() {
                        set.remove(&seq);
                    }
                });
            }
            if !busy {
                let pause = self.pause().await;
                tokio::select! {
                    _ = self.inner.store.outbox_written() => {}
                    _ = self.inner.freed.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

impl Dispatcher {
    /// How long to sleep when nothing could be claimed: until the next retry is due
    /// (between [`POLL`] and [`IDLE_POLL`]).
    async fn pause(&self) -> Duration {
        match self.inner.store.next_delivery_due().await {
            Ok(Some(due)) => {
                let ms = (due - now_ms()).max(0) as u64;
                Duration::from_millis(ms).clamp(POLL, IDLE_POLL)
            }
            Ok(None) => IDLE_POLL,
            Err(_) => POLL,
        }
    }
}

impl Inner {
    /// Claims up to `free` due deliveries, none beyond a host's budget (the store takes
    /// no more for a host than its room; feed batches a claim brings beyond it are handed
    /// back at once). Every delivery returned is counted
    /// against its host and must be sent now (nothing claimed waits for a permit, so no
    /// claim runs out while its delivery waits).
    async fn claim(&self, free: i64) -> Result<Vec<(Delivery, String)>, crate::store::StoreError> {
        let until = now_ms() + CLAIM_FOR.as_millis() as i64;
        let busy = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let after = self
            .last_host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let room = HostRoom {
            busy: &busy,
            per_host: MAX_PER_HOST,
            after: after.as_deref(),
        };
        let mut rows = self.store.claim_deliveries(free, until, room).await?;
        if let Some(last) = rows.last() {
            *self.last_host.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(host_of(&last.target_url));
        }
        let room = free - rows.len() as i64;
        if room > 0 {
            rows.extend(self.store.claim_feed_batches(room, until).await?);
        }
        let mut kept = Vec::with_capacity(rows.len());
        let mut back = Vec::new();
        {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            for delivery in rows {
                let host = host_of(&delivery.target_url);
                let busy = hosts.entry(host.clone()).or_default();
                if *busy < MAX_PER_HOST && (kept.len() as i64) < free {
                    *busy += 1;
                    kept.push((delivery, host));
                } else {
                    back.push(delivery.seq);
                }
            }
            hosts.retain(|_, n| *n > 0);
        }
        if !back.is_empty()
            && let Err(e) = self.store.release_deliveries(&back).await
        {
            tracing::warn!(error = %e, "could not hand back deliveries over a host's budget; their claims run out");
        }
        Ok(kept)
    }

    /// One delivery to `host` has finished.
    fn host_done(&self, host: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(busy) = hosts.get_mut(host) {
            *busy -= 1;
            if *busy == 0 {
                hosts.remove(host);
            }
        }
    }

    /// One attempt of `delivery`; its host's budget and its `slot` are given back as soon
    /// as the HTTP exchange is over, before the outcome is written (the row stays claimed
    /// and its key's next callback waits until then, so nothing goes twice meanwhile).
    async fn deliver(
        &self,
        delivery: Delivery,
        host: &str,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let started = Instant::now();
        let (attempt, outcome) = match self.attempt(&delivery, host).await {
            Ok((status, response, retry_after)) => {
                let attempt = Attempt {
                    status_code: Some(status),
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                    response: Some(response),
                };
                let outcome = match status {
                    200..=299 => Outcome::Delivered,
                    410 => Outcome::Failed,
                    _ => self.retry(&delivery, retry_after),
                };
                (attempt, outcome)
            }
            Err(Failure { error, permanent }) => {
                let attempt = Attempt {
                    status_code: None,
                    latency_ms: started.elapsed().as_millis() as i64,
                    error: Some(printable(error.as_bytes(), RESPONSE_KEEP)),
                    response: None,
                };
                let outcome = if permanent {
                    Outcome::Failed
                } else {
                    self.retry(&delivery, None)
                };
                (attempt, outcome)
            }
        };
        self.host_done(host);
        drop(slot);
        self.freed.notify_one();
        let outcome_name = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::RetryAt(_) => "retry",
            Outcome::Failed => "failed",
        };
        crate::telemetry::metrics::metrics().delivery(outcome_name, started.elapsed());
        tracing::debug!(webhook = %delivery.webhook_id, host = %host, status = ?attempt.status_code, outcome = outcome_name, "webhook attempt");
        if matches!(outcome, Outcome::Failed) {
            // Once per delivery: what an operator (or someone trying it out) must see.
            tracing::warn!(webhook = %delivery.webhook_id, host = %host, error = attempt.error.as_deref().unwrap_or_default(), "webhook delivery failed for good");
        }
        if let Err(e) = self
            .store
            .record_attempt(&delivery, &attempt, outcome)
            .await
        {
            // The claim runs out and the delivery is tried again (at least once).
            tracing::error!(webhook = %delivery.webhook_id, error = %e, "could not record a delivery attempt");
        }
    }

    fn retry(&self, delivery: &Delivery, retry_after: Option<Duration>) -> Outcome {
        let jitter = random_unit() * 2.0 - 1.0;
        let failed = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
        match next_delay(failed, self.retry_scale, jitter, retry_after) {
            Some(delay) => Outcome::RetryAt(now_ms() + delay.as_millis() as i64),
            None => Outcome::Failed,
        }
    }

    /// One POST: the status, the first 1 KB of the answer, and its Retry-After.
    async fn attempt(
        &self,
        d: &Delivery,
        host: &str,
    ) -> Result<(u16, String, Option<Duration>), Failure> {
        if let Some(ip) = address_literal(host)
            && is_forbidden(ip)
            && !self.allow_private
        {
            return Err(Failure {
                error: format!(
                    "target address {ip} is private or reserved ({} is false)",
                    super::guard::ALLOW_PRIVATE_VAR
                ),
                permanent: true,
            });
        }
        let secret = self
            .store
            .find_app(&d.account_sid, &d.app_id)
            .await
            .map_err(|e| Failure::transient(format!("storage: {e}")))?
            .map(|a| a.signing_secret.expose().to_string())
            .ok_or_else(|| Failure {
                error: "the application no longer exists".into(),
                permanent: true,
            })?;
        let timestamp = chrono::Utc::now().timestamp();
        let signed = signature(&secret, &d.webhook_id, timestamp, &d.body).ok_or_else(|| {
            Failure::transient("the application's signing secret is invalid".into())
        })?;
        let response = self
            .client
            .post(&d.target_url)
            .header("content-type", d.content_type())
            .header("webhook-id", &d.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| Failure::transient(describe(&e)))?;
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| response.headers().get("retry-after"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut response = response;
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_KEEP {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_KEEP - kept.len())])
                }
                _ => break,
            }
        }
        Ok((status, printable(&kept, RESPONSE_KEEP), retry_after))
    }
}

/// Why an attempt got no HTTP answer.
struct Failure {
    error: String,
    /// Retrying cannot help.
    permanent: bool,
}

impl Failure {
    fn transient(error: String) -> Self {
        Self {
            error,
            permanent: false,
        }
    }
}

/// A transport error with its causes (reqwest's own message is terse).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", TIMEOUT.as_secs());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A uniform number in [0, 1) from the OS.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

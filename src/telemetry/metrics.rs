//! The process's Prometheus metrics (API.md §11), rendered by `GET /metrics`.
//!
//! Counters and histograms are this process's own (sum them over replicas); the gauges of
//! calls and outbox rows are read from the shared database at each scrape, so every
//! replica reports the same cluster-wide figure (take `max`, not `sum`).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
    statuscode: &'static str,
}

/// Labels of an HTTP latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

/// `kind` only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// `kind` and `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStateLabels {
    kind: String,
    state: String,
}

/// One media node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

/// One ESL command on one node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    node: String,
    command: String,
}

/// A state or an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// An outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to ~33 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Timings<RouteLabels>,
    calls_placed: Family<KindLabels, Counter>,
    calls_ended: Family<KindLabels, Counter>,
    calls: Family<KindStateLabels, Gauge>,
    esl_up: Family<NodeLabels, Gauge>,
    esl_duration: Timings<CommandLabels>,
    outbox: Family<StateLabels, Gauge>,
    deliveries: Family<OutcomeLabels, Counter>,
    delivery_duration: Histogram,
    ready_to_offer: Histogram,
}

/// Fine buckets for the matchmaker's ready → offer time: 0.25 ms to 25 ms in small steps,
/// then up to 2.5 s.
fn offer_seconds() -> Histogram {
    Histogram::new([
        0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.0075, 0.009, 0.01,
        0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

/// The metrics of this process.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("voicepaas"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds),
            calls_placed: Family::default(),
            calls_ended: Family::default(),
            calls: Family::default(),
            esl_up: Family::default(),
            esl_duration: Family::new_with_constructor(seconds),
            outbox: Family::default(),
            deliveries: Family::default(),
            delivery_duration: seconds(),
            ready_to_offer: offer_seconds(),
        };
        m.registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern, HTTP status and the body's statuscode (\"\" where the answer has none)",
            m.http_requests.clone(),
        );
        m.registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route pattern",
            m.http_duration.clone(),
        );
        m.registry.register(
            "calls_placed",
            "Calls this process started placing, by kind (rate() gives calls per second)",
            m.calls_placed.clone(),
        );
        m.registry.register(
            "calls_ended",
            "Calls and conversations this process finished (CDR written), by kind",
            m.calls_ended.clone(),
        );
        m.registry.register(
            "calls",
            "Unfinished call legs in the database, by kind and state (cluster-wide)",
            m.calls.clone(),
        );
        m.registry.register(
            "esl_node_up",
            "1 while the Event Socket connection to the media node is up, else 0",
            m.esl_up.clone(),
        );
        m.registry.register(
            "esl_command_duration_seconds",
            "Time from sending an Event Socket command to its reply, by node and command",
            m.esl_duration.clone(),
        );
        m.registry.register(
            "outbox_depth",
            "Callbacks waiting in the outbox by state: due, in_flight, scheduled (a retry later), failed (cluster-wide)",
            m.outbox.clone(),
        );
        m.registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retry, failed",
            m.deliveries.clone(),
        );
        m.registry.register(
            "webhook_delivery_duration_seconds",
            "Time from sending a webhook to its answer (or failure)",
            m.delivery_duration.clone(),
        );
        m.registry.register(
            "acd_ready_to_offer_seconds",
            "Time from the notice that an agent became ready, while callers waited, to its offer's originate sent to the media server",
            m.ready_to_offer.clone(),
        );
        m
    }

    /// An agent that became ready got an offer `took` after the notice of its change.
    pub fn ready_to_offer(&self, took: Duration) {
        self.ready_to_offer.observe(took.as_secs_f64());
    }

    /// Counts an answered HTTP request; `route` is the matched pattern (never the raw path,
    /// which would carry ids), `statuscode` the body's (`0`, `-4`, `10004`, …) or `""`.
    /// Static strings: nothing is allocated per request.
    pub fn http_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: u16,
        statuscode: &'static str,
        took: Duration,
    ) {
        self.http_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(took.as_secs_f64());
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
                statuscode,
            })
            .inc();
    }

    /// Counts a call taken from the queue to be dialled.
    pub fn call_placed(&self, kind: &str) {
        self.calls_placed
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Counts a call or conversation whose end (CDR) was written.
    pub fn call_ended(&self, kind: &str) {
        self.calls_ended
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// Whether the connection to media node `node` is up.
    pub fn esl_node(&self, node: &str, up: bool) {
        self.esl_up
            .get_or_create(&NodeLabels { node: node.into() })
            .set(i64::from(up));
    }

    /// The histogram of Event Socket command round trips on `node` for `command` (its
    /// first word: `originate`, `uuid_kill`, …, or `other`); callers keep it and observe
    /// each round trip.
    pub fn esl_histogram(&self, node: &str, command: &str) -> Histogram {
        self.esl_duration
            .get_or_create(&CommandLabels {
                node: node.into(),
                command: command.into(),
            })
            .clone()
    }

    /// Counts a delivery attempt's outcome (`delivered`, `retry`, `failed`) and latency.
    pub fn delivery(&self, outcome: &str, took: Duration) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.delivery_duration.observe(took.as_secs_f64());
    }

    /// Renders every metric in the text format, with the database's figures as given
    /// (`None`: the database did not answer, and those gauges are left out).
    pub fn render(&self, snapshot: Option<&Snapshot>) -> String {
        self.calls.clear();
        self.outbox.clear();
        if let Some(snapshot) = snapshot {
            for (kind, state, n) in &snapshot.calls {
                self.calls
                    .get_or_create(&KindStateLabels {
                        kind: kind.clone(),
                        state: state.clone(),
                    })
                    .set(*n);
            }
            for (state, n) in &snapshot.outbox {
                self.outbox
                    .get_or_create(&StateLabels {
                        state: state.clone(),
                    })
                    .set(*n);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The database's figures at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Unfinished legs: `(kind, state, count)`.
    pub calls: Vec<(String, String, i64)>,
    /// Outbox rows: `(state, count)`.
    pub outbox: Vec<(String, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_database_figures() {
        let m = Metrics::new();
        m.http_request(
            "POST",
            "/Accounts/{AccountSid}/VoiceNotices",
            200,
            "0",
            Duration::from_millis(3),
        );
        m.esl_histogram("127.0.0.1:8021", "originate")
            .observe(0.002);
        m.esl_histogram("127.0.0.1:8021", "other").observe(0.002);
        m.esl_node("127.0.0.1:8021", true);
        let snapshot = Snapshot {
            calls: vec![("notice".into(), "ringing".into(), 3)],
            outbox: vec![("due".into(), 7)],
        };
        let text = m.render(Some(&snapshot));
        for line in [
            "voicepaas_http_requests_total{method=\"POST\",route=\"/Accounts/{AccountSid}/VoiceNotices\",status=\"200\",statuscode=\"0\"} 1",
            "voicepaas_http_request_duration_seconds_count{method=\"POST\",route=\"/Accounts/{AccountSid}/VoiceNotices\"} 1",
            "voicepaas_esl_command_duration_seconds_count{node=\"127.0.0.1:8021\",command=\"originate\"} 1",
            "voicepaas_esl_command_duration_seconds_count{node=\"127.0.0.1:8021\",command=\"other\"} 1",
            "voicepaas_esl_node_up{node=\"127.0.0.1:8021\"} 1",
            "voicepaas_calls{kind=\"notice\",state=\"ringing\"} 3",
            "voicepaas_outbox_depth{state=\"due\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        // A scrape without the database leaves its gauges out instead of showing stale ones.
        let text = m.render(None);
        assert!(!text.contains("voicepaas_calls{"), "{text}");
    }
}

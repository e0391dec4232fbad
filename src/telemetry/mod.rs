//! What operators see of a running process: log lines (`tracing`, text for a terminal or
//! JSON objects), Prometheus metrics (`metrics`) and phone numbers masked for logs
//! (`mask`). The request id and access log of each HTTP request are `api::observe`.

pub mod mask;
pub mod metrics;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr: text, or one JSON object per line
/// (`timestamp`, `level`, `target`, `fields`, and the request's `span` with its
/// `request_id`). A second call, as in tests, is a no-op.
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

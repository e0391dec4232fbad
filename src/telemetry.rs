//! Log output: `tracing` to stderr, filtered by `VOICEPAAS_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (a second call, as in tests, is a no-op).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

//! The clock of the platform: instants are kept as Unix milliseconds everywhere in storage.

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

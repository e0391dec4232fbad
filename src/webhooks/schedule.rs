//! When a failed delivery is tried again (API.md §7): after about 5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h, 14 h, 20 h and 24 h (±20 % jitter), every delay multiplied by
//! `VOICEPAAS_WEBHOOK_RETRY_SCALE`; then the delivery has failed for good.

use std::time::Duration;

/// Delays after the 1st, 2nd, … failed attempt.
const DELAYS_SECS: [u64; 9] = [5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400];

/// Attempts in all (the first and one per delay).
pub const MAX_ATTEMPTS: u32 = DELAYS_SECS.len() as u32 + 1;

/// The wait before the next attempt after `failed_attempts` failures (1-based), or `None`
/// when the schedule is used up. `jitter` is in [-1, 1] (±20 %); `retry_after` from a
/// 429/503 answer replaces the scheduled delay (capped at a day).
pub fn next_delay(
    failed_attempts: u32,
    scale: f64,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = *DELAYS_SECS.get(failed_attempts.checked_sub(1)? as usize)?;
    if let Some(after) = retry_after {
        return Some(after.min(Duration::from_secs(86_400)));
    }
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    Some(Duration::from_secs_f64(base as f64 * scale * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        assert_eq!(next_delay(1, 1.0, 0.0, None), Some(Duration::from_secs(5)));
        assert_eq!(
            next_delay(9, 1.0, 0.0, None),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(next_delay(10, 1.0, 0.0, None), None);
        assert_eq!(next_delay(0, 1.0, 0.0, None), None);
        assert_eq!(next_delay(2, 0.01, 0.0, None), Some(Duration::from_secs(3)));
        assert_eq!(next_delay(1, 1.0, 1.0, None), Some(Duration::from_secs(6)));
        assert_eq!(next_delay(1, 1.0, -1.0, None), Some(Duration::from_secs(4)));
        assert_eq!(
            next_delay(3, 1.0, 0.0, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(next_delay(10, 1.0, 0.0, Some(Duration::from_secs(7))), None);
        let total: u64 = DELAYS_SECS.iter().sum();
        assert!(
            (2.5 * 86_400.0..3.5 * 86_400.0).contains(&(total as f64)),
            "about three days"
        );
    }
}

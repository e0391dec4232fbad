//! The sandbox clock: every sandbox duration and timer runs `speed` times faster than real
//! time (`VOICEPAAS_SANDBOX_SPEED`), and event times advance at the same pace.

use std::time::Duration;

use tokio::time::Instant;

/// Virtual time of one sandbox.
#[derive(Debug, Clone, Copy)]
pub struct SandboxClock {
    speed: f64,
    origin: Instant,
    origin_epoch_us: i64,
}

impl SandboxClock {
    /// A clock running `speed` times faster than real time, starting now.
    pub fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            speed,
            origin: Instant::now(),
            origin_epoch_us: chrono::Utc::now().timestamp_micros(),
        }
    }

    /// The real instant at which `virtual_delay` of sandbox time has passed from now.
    pub fn deadline(&self, virtual_delay: Duration) -> Instant {
        Instant::now() + virtual_delay.div_f64(self.speed)
    }

    /// Sandbox time now, in Unix microseconds.
    pub fn now_us(&self) -> i64 {
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.origin_epoch_us + (elapsed * 1e6) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_faster() {
        let clock = SandboxClock::new(1000.0);
        let start = clock.now_us();
        tokio::time::sleep_until(clock.deadline(Duration::from_secs(10))).await;
        let passed = clock.now_us() - start;
        assert!(passed >= 10_000_000, "{passed}");
        assert!(
            clock.deadline(Duration::from_secs(1000))
                <= Instant::now() + Duration::from_millis(1001)
        );
    }
}

//! How long to wait before trying again: one exponential backoff for every retry in
//! OpenOrder (records, dead letters, topic creation, the outbox relay, deliveries, the
//! embedded broker's restarts), each with its own numbers.

use std::time::Duration;

/// `initial × multiplier^(n-1)` after failed try `n` (from 1), at most `max`, spread by
/// ±`jitter` (a fraction: 0.2 is ±20 %) so that many waiters do not retry in step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub multiplier: f64,
    pub max: Duration,
    pub jitter: f64,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, without jitter.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            multiplier: 2.0,
            max,
            jitter: 0.0,
        }
    }

    /// The same with ±`jitter`.
    pub const fn with_jitter(self, jitter: f64) -> Self {
        Self { jitter, ..self }
    }

    /// The wait after failed try `attempt` (from 1; 0 counts as 1), before jitter.
    pub fn base(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let factor = self.multiplier.max(1.0).powi(exponent);
        let wait = self.initial.as_secs_f64() * factor;
        if wait.is_finite() && wait < self.max.as_secs_f64() {
            Duration::from_secs_f64(wait)
        } else {
            self.max
        }
    }

    /// The wait after failed try `attempt`, jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base(attempt);
        if self.jitter <= 0.0 {
            return base;
        }
        base.mul_f64(rand::random_range(1.0 - self.jitter..1.0 + self.jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_by_the_multiplier_up_to_the_cap() {
        let b = Backoff::doubling(Duration::from_millis(500), Duration::from_secs(8));
        let waits: Vec<u64> = (0..=7).map(|n| b.base(n).as_millis() as u64).collect();
        assert_eq!(waits, [500, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.base(u32::MAX), Duration::from_secs(8), "no overflow");
    }

    #[test]
    fn jitter_spreads_the_wait_within_its_fraction() {
        let b =
            Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.25);
        for _ in 0..200 {
            let ms = b.delay(3).as_millis();
            assert!((3000..=5000).contains(&ms), "{ms}");
        }
    }
}

//! One retry policy for every caller: exponential backoff, capped, with full
//! jitter (a random pause between zero and the ceiling, so callers that failed
//! together do not retry together). A leaf module.

use std::time::Duration;

/// Exponential backoff from `base`, doubling per attempt, capped at `max`.
///
/// ```
/// use std::time::Duration;
/// use shardline::retry::Backoff;
/// let backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(10), Duration::from_secs(2));
/// assert!(backoff.delay(3) <= Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Backoff from `base` up to `max` (at least `base`).
    pub const fn new(base: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < base.as_nanos() {
            base
        } else {
            max
        };
        Backoff { base, max }
    }

    /// The longest pause before retry `attempt` (0, 1, 2, ...): `base × 2^attempt`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max)
    }

    /// The pause before retry `attempt`: a random time up to [`Backoff::ceiling`].
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(fastrand::f64())
    }

    /// Sleeps [`Backoff::delay`] of `attempt`.
    pub async fn pause(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_capped_and_jittered() {
        let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
        let mut seen_below = false;
        for attempt in 0..40 {
            let delay = backoff.delay(attempt % 20);
            assert!(delay <= Duration::from_millis(400));
            seen_below |= delay < backoff.ceiling(attempt % 20);
        }
        assert!(seen_below, "jitter spreads the pauses");
        assert_eq!(backoff.ceiling(0), Duration::from_millis(50));
        assert_eq!(
            Backoff::new(Duration::from_secs(2), Duration::ZERO).ceiling(5),
            Duration::from_secs(2)
        );
    }
}

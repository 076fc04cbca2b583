//! One retry policy for every caller: exponential backoff, capped, with full
//! jitter (a random pause between zero and the ceiling, so callers that failed
//! together do not retry together). Below everything but [`crate::time`].

use std::time::Duration;

use crate::time::Deadline;

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

    /// Runs `attempt` until it succeeds or fails for good: an error that
    /// `transient` rejects, the `tries`-th failure, or a failure when the next
    /// pause would not leave `margin` before `deadline`. Each retry is logged
    /// with `what`.
    ///
    /// # Errors
    /// The last error of `attempt`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use shardline::Deadline;
    /// use shardline::retry::Backoff;
    /// let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
    /// let mut calls = 0;
    /// let result: Result<u32, &str> = backoff
    ///     .retry("count", 5, Deadline::none(), Duration::ZERO, |_| true, || {
    ///         calls += 1;
    ///         let n = calls;
    ///         async move { if n < 3 { Err("busy") } else { Ok(n) } }
    ///     })
    ///     .await;
    /// assert_eq!(result, Ok(3));
    /// # }
    /// ```
    pub async fn retry<T, E, F, Fut>(
        &self,
        what: &str,
        tries: u32,
        deadline: Deadline,
        margin: Duration,
        transient: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut made = 0;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            made += 1;
            let pause = self.delay(made - 1);
            let out_of_time = deadline
                .remaining()
                .is_some_and(|left| left < pause + margin);
            if made >= tries || out_of_time || !transient(&error) {
                return Err(error);
            }
            tracing::warn!(what, tries = made, %error, "transient failure; trying again");
            tokio::time::sleep(pause).await;
        }
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

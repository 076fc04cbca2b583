//! Time: the invocation's deadline and epoch conversions. A leaf module: it
//! imports nothing of Shardline's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When the invocation must have answered (Lambda's deadline).
///
/// ```
/// use std::time::Duration;
/// use shardline::Deadline;
/// let deadline = Deadline::after(Duration::from_secs(60));
/// assert!(deadline.remaining().unwrap() <= Duration::from_secs(60));
/// assert!(Deadline::none().remaining().is_none());
/// assert!(deadline.reserve(Duration::from_secs(61)).remaining().unwrap().is_zero());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline.
    pub fn none() -> Self {
        Deadline(None)
    }

    /// A deadline `remaining` from now.
    pub fn after(remaining: Duration) -> Self {
        Deadline(Instant::now().checked_add(remaining))
    }

    /// From Lambda's `Lambda-Runtime-Deadline-Ms`: milliseconds since the epoch.
    /// `cargo lambda watch` (1.9) sends the timeout itself (`600000`) instead;
    /// a value before the year 2000 is taken as such a duration, so the local
    /// loop is not cut off at once.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        const YEAR_2000_MS: u64 = 946_684_800_000;
        if deadline_ms < YEAR_2000_MS {
            return Deadline::after(Duration::from_millis(deadline_ms));
        }
        let now_ms = epoch_millis(SystemTime::now());
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left, or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The same deadline, `reserve` earlier (time kept back for what must
    /// still happen after the work it bounds, such as a commit).
    pub fn reserve(&self, reserve: Duration) -> Self {
        Deadline(self.0.map(|at| {
            at.checked_sub(reserve)
                .unwrap_or_else(|| at.min(Instant::now()))
        }))
    }
}

/// Milliseconds since the Unix epoch (0 before it, `u64::MAX` far after).
pub fn epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

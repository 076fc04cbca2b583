//! Time: the invocation's deadline, the wall clock, and epoch conversions. A
//! leaf module: it imports nothing of Shardline's.
//!
//! Every clock Shardline reads goes through here, so a simulation can drive
//! it: deadlines and durations use tokio's [`Instant`] (which follows tokio's
//! paused test clock when tokio's `test-util` feature is on, and is the system
//! clock otherwise), and the wall clock ([`now`]: record ages, dedup windows,
//! TTLs) is the system's unless a thread runs on a simulated one
//! ([`SimulatedWallClock`]).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use tokio::time::Instant;

thread_local! {
    /// The simulated wall clock of this thread: what it read at `Instant`.
    static SIMULATED: Cell<Option<(SystemTime, Instant)>> = const { Cell::new(None) };
}

/// The wall clock: the system's, or this thread's simulated one.
///
/// ```
/// let before = std::time::SystemTime::now();
/// assert!(shardline_event::time::now() >= before);
/// ```
pub fn now() -> SystemTime {
    match SIMULATED.with(Cell::get) {
        Some((wall, at)) => wall + Instant::now().saturating_duration_since(at),
        None => SystemTime::now(),
    }
}

/// A simulated wall clock for the current thread, for deterministic
/// simulations: from [`SimulatedWallClock::start`] until it is dropped,
/// [`now`] on this thread reads `start` plus the time tokio's clock has moved
/// since (pause tokio's clock, and time only moves when the simulation lets it).
/// Everything a simulation runs must run on this thread (a current-thread
/// tokio runtime).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use shardline_event::time::{SimulatedWallClock, now};
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = SimulatedWallClock::start(start);
/// assert!(now() >= start && now() < start + Duration::from_secs(60));
/// drop(clock);
/// assert!(now() > start + Duration::from_secs(3600));
/// ```
#[derive(Debug)]
pub struct SimulatedWallClock {
    before: Option<(SystemTime, Instant)>,
}

impl SimulatedWallClock {
    /// Sets this thread's wall clock to `start` at tokio's present instant.
    pub fn start(start: SystemTime) -> Self {
        let before = SIMULATED.with(|cell| cell.replace(Some((start, Instant::now()))));
        SimulatedWallClock { before }
    }
}

impl Drop for SimulatedWallClock {
    fn drop(&mut self) {
        SIMULATED.with(|cell| cell.set(self.before));
    }
}

/// When the invocation must have answered (Lambda's deadline).
///
/// ```
/// use std::time::Duration;
/// use shardline_event::Deadline;
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
        let now_ms = epoch_millis(now());
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

//! One retry policy for every caller: exponential backoff, capped, with full
//! jitter (a random pause between zero and the ceiling, so callers that failed
//! together do not retry together). Below everything but [`crate::time`].

use std::time::Duration;

use crate::time::Deadline;

/// Exponential backoff from `base`, doubling per attempt, capped at `max`,
/// with full jitter ([`Backoff::new`]) or none ([`Backoff::fixed`], for polling
/// that waits on something rather than competing for it).
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
    jitter: Jitter,
}

/// Whether a pause is drawn at random below its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Jitter {
    /// Between zero and the ceiling, so callers that failed together do not
    /// retry together.
    Full,
    /// The ceiling itself.
    None,
}

impl Backoff {
    /// Backoff from `base` up to `max` (at least `base`), with full jitter.
    pub const fn new(base: Duration, max: Duration) -> Self {
        let max = if max.as_nanos() < base.as_nanos() {
            base
        } else {
            max
        };
        Backoff {
            base,
            max,
            jitter: Jitter::Full,
        }
    }

    /// Backoff from `base` up to `max` without jitter: each pause is its
    /// [`Backoff::ceiling`]. For polling, where nothing is gained by spreading
    /// the waits and a known rhythm is easier to read in a log.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardline::retry::Backoff;
    /// let poll = Backoff::fixed(Duration::from_millis(500), Duration::from_secs(5));
    /// assert_eq!(poll.delay(0), Duration::from_millis(500));
    /// assert_eq!(poll.delay(2), Duration::from_secs(2));
    /// ```
    pub const fn fixed(base: Duration, max: Duration) -> Self {
        let backoff = Backoff::new(base, max);
        Backoff {
            jitter: Jitter::None,
            ..backoff
        }
    }

    /// The longest pause before retry `attempt` (0, 1, 2, ...): `base × 2^attempt`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max)
    }

    /// The pause before retry `attempt`: a random time up to
    /// [`Backoff::ceiling`], or the ceiling itself without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        match self.jitter {
            Jitter::Full => self.ceiling(attempt).mul_f64(fastrand::f64()),
            Jitter::None => self.ceiling(attempt),
        }
    }

    /// Sleeps [`Backoff::delay`] of `attempt`.
    pub async fn pause(&self, attempt: u32) {
        tokio::time::sleep(self.delay(attempt)).await;
    }

    /// Runs `attempt` until it succeeds or fails for good: an error that
    /// `transient` rejects, the `tries`-th failure, or a failure when the next
    /// pause would not leave `margin` before `deadline`. Each transient
    /// failure is logged with `what`. A whole-operation retry on [`Backoff::drive`].
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
        let limits = Limits {
            tries,
            deadline,
            margin,
        };
        let mut made = 0u32;
        self.drive(
            limits,
            None,
            |_last: Option<E>| attempt(),
            |outcome| match outcome {
                Ok(value) => Ok(Step::Done(value)),
                Err(error) if transient(&error) => {
                    made += 1;
                    tracing::warn!(what, tries = made, %error, "transient failure");
                    Ok(Step::Again(Some(error)))
                }
                Err(error) => Err(error),
            },
            |last: Option<E>, _| last,
        )
        .await
        .map_err(|error| match error {
            Stopped::GaveUp(error) | Stopped::Exhausted(Some(error)) => error,
            // `Again` always carries the error it retries.
            Stopped::Exhausted(None) => unreachable_exhaustion(),
        })
    }

    /// The one retry loop: sends `work` with `send`, lets `classify` say what
    /// the try came to, and goes on until it is done, given up, or out of
    /// `limits`. A call site only classifies ([`Step`]): done, the rest to
    /// try again after a pause, the rest to try again at once (nothing in it
    /// asked for a pause), or an error to give up with. The driver owns the
    /// count, the backoff and the deadline. Pauses grow over the tries in a
    /// row that asked for one: the `n`-th such pause (1, 2, ...) is
    /// [`Backoff::delay`]`(n - 1)`, so the first is at most `base`, and a try
    /// that asked for none (`AgainNow`) starts the ramp again.
    ///
    /// # Errors
    /// [`Stopped::GaveUp`] with `classify`'s error, or
    /// [`Stopped::Exhausted`] with `exhausted(rest, tries)` when the tries or
    /// the time ran out with work left.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use shardline::retry::{Backoff, Limits, Step, Stopped};
    /// let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
    /// let mut written = Vec::new();
    /// // Each try takes the first two of what is left, like an API that
    /// // answers with unprocessed items.
    /// let result: Result<(), Stopped<&str, usize>> = backoff
    ///     .drive(
    ///         Limits::tries(8),
    ///         vec![1, 2, 3, 4, 5],
    ///         |mut rest: Vec<u32>| async move {
    ///             let tail = rest.split_off(rest.len().min(2));
    ///             (rest, tail)
    ///         },
    ///         |(taken, tail)| {
    ///             written.extend(taken);
    ///             Ok(if tail.is_empty() { Step::Done(()) } else { Step::Again(tail) })
    ///         },
    ///         |rest, _| rest.len(),
    ///     )
    ///     .await;
    /// assert!(result.is_ok());
    /// assert_eq!(written, [1, 2, 3, 4, 5]);
    /// # }
    /// ```
    pub async fn drive<T, R, O, E, X, F, Fut>(
        &self,
        limits: Limits,
        mut work: R,
        mut send: F,
        mut classify: impl FnMut(O) -> Result<Step<T, R>, E>,
        exhausted: impl FnOnce(R, u32) -> X,
    ) -> Result<T, Stopped<E, X>>
    where
        F: FnMut(R) -> Fut,
        Fut: Future<Output = O>,
    {
        let mut made = 0u32;
        let mut ramp = Ramp::default();
        loop {
            let outcome = send(work).await;
            let (rest, pause) = match classify(outcome).map_err(Stopped::GaveUp)? {
                Step::Done(value) => return Ok(value),
                Step::Again(rest) => (rest, true),
                Step::AgainNow(rest) => (rest, false),
            };
            made += 1;
            let delay = ramp.next(self, pause);
            let out_of_time = limits
                .deadline
                .remaining()
                .is_some_and(|left| left < delay + limits.margin);
            if made >= limits.tries || out_of_time {
                return Err(Stopped::Exhausted(exhausted(rest, made)));
            }
            tokio::time::sleep(delay).await;
            work = rest;
        }
    }
}

/// The pauses of one driven operation: they grow over the tries in a row that
/// asked for one.
#[derive(Debug, Default)]
struct Ramp {
    paused_in_a_row: u32,
}

impl Ramp {
    /// The pause after a try that asked for one (`pause`) or not.
    fn next(&mut self, backoff: &Backoff, pause: bool) -> Duration {
        if pause {
            self.paused_in_a_row += 1;
            backoff.delay(self.paused_in_a_row - 1)
        } else {
            self.paused_in_a_row = 0;
            Duration::ZERO
        }
    }
}

impl<E> Stopped<E, E> {
    /// The error, whichever way the driver stopped.
    pub fn into_inner(self) -> E {
        match self {
            Stopped::GaveUp(error) | Stopped::Exhausted(error) => error,
        }
    }
}

/// `retry` hands `drive` its last error with every `Again`.
#[cold]
fn unreachable_exhaustion<E>() -> E {
    unreachable!("an exhausted retry always has its last error")
}

/// How far [`Backoff::drive`] goes: at most `tries` tries, and no pause that
/// would leave less than `margin` before `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most tries, the first included.
    pub tries: u32,
    /// When the work must be over.
    pub deadline: Deadline,
    /// The time to keep before `deadline` after a pause.
    pub margin: Duration,
}

impl Limits {
    /// At most `tries` tries, with no deadline.
    pub fn tries(tries: u32) -> Self {
        Limits {
            tries,
            deadline: Deadline::none(),
            margin: Duration::ZERO,
        }
    }
}

/// What one try of a driven operation came to.
#[derive(Debug)]
pub enum Step<T, R> {
    /// It is done, with its result.
    Done(T),
    /// This is left (all or the rest): try it again after a pause.
    Again(R),
    /// This is left, but nothing in it failed for a reason a pause helps
    /// (it was held back by another part that failed): try it again at once.
    AgainNow(R),
}

/// Why [`Backoff::drive`] stopped without a result.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped<E, X> {
    /// A try failed in a way no retry mends.
    GaveUp(E),
    /// Tries or time ran out with work left (what `exhausted` made of it).
    Exhausted(X),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_driver_stops_at_its_tries_with_the_rest_or_at_a_give_up() {
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let mut sent = Vec::new();
        let stopped: Result<(), Stopped<&str, (Vec<u32>, u32)>> = backoff
            .drive(
                Limits::tries(3),
                vec![7, 8],
                |rest: Vec<u32>| std::future::ready(rest),
                |rest| {
                    sent.push(rest.len());
                    Ok(Step::AgainNow(rest.iter().skip(1).copied().collect()))
                },
                |rest, tries| (rest, tries),
            )
            .await;
        assert_eq!(stopped, Err(Stopped::Exhausted((vec![], 3))));
        assert_eq!(sent, [2, 1, 0], "three tries, each with what the last left");

        let mut tries = 0;
        let gave_up: Result<(), Stopped<&str, ()>> = backoff
            .drive(
                Limits::tries(5),
                (),
                |()| std::future::ready(()),
                |()| {
                    tries += 1;
                    if tries < 2 {
                        Ok(Step::Again(()))
                    } else {
                        Err("refused")
                    }
                },
                |(), _| (),
            )
            .await;
        assert_eq!(gave_up, Err(Stopped::GaveUp("refused")));
        assert_eq!(tries, 2);
    }

    #[tokio::test]
    async fn the_driver_keeps_its_margin_before_the_deadline() {
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        let limits = Limits {
            tries: u32::MAX,
            deadline: Deadline::after(Duration::from_millis(50)),
            margin: Duration::from_millis(100),
        };
        let stopped: Result<(), Stopped<(), u32>> = backoff
            .drive(
                limits,
                (),
                |()| std::future::ready(()),
                |()| Ok(Step::Again(())),
                |(), n| n,
            )
            .await;
        assert_eq!(
            stopped,
            Err(Stopped::Exhausted(1)),
            "no pause fits: one try"
        );
    }

    #[test]
    fn pauses_ramp_over_the_tries_in_a_row_that_asked_for_one() {
        let backoff = Backoff::fixed(Duration::from_millis(10), Duration::from_millis(40));
        let mut ramp = Ramp::default();
        let pauses: Vec<u64> = [true, true, true, true, false, true, true]
            .into_iter()
            .map(|pause| ramp.next(&backoff, pause).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 40, 0, 10, 20]);
    }

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

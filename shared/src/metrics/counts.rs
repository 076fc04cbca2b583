//! The counts an invocation adds of its own: a handler's ([`add_count`]),
//! kept per invocation in a task-local scope ([`counted`]), and a batch's
//! sinks' ([`Counts`], carried by the batch into its report).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts added during one invocation, by name: a handler's own
/// ([`add_count`]) and, in [`BatchReport::counts`], a batch's sink's.
#[derive(Debug, Default)]
pub(crate) struct Counts(Mutex<BTreeMap<&'static str, u64>>);

impl Counts {
    /// Adds `value` to `name`.
    pub(crate) fn add(&self, name: &'static str, value: u64) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(name).or_default() += value;
    }

    /// Takes (and clears) what was added.
    pub(crate) fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

tokio::task_local! {
    /// The counts of the invocation the current task runs (see [`counted`]).
    static INVOCATION_COUNTS: Counts;
}

/// Adds `value` to the function's own count `name` (unit Count), printed with
/// the metrics line of the invocation whose task calls it: overlapping
/// invocations in one process (Lambda Managed Instances) keep their counts
/// apart. A count added outside an invocation's task (a task the handler
/// spawned, say) is not reported. Names of Shardline's own metrics, and
/// `Function` and `RequestId`, are refused there with a warning.
///
/// ```
/// shardline::metrics::add_count("UsersWritten", 3);
/// ```
pub fn add_count(name: &'static str, value: u64) {
    if INVOCATION_COUNTS
        .try_with(|counts| counts.add(name, value))
        .is_err()
    {
        tracing::debug!(
            name,
            value,
            "a count added outside an invocation is not reported"
        );
    }
}

/// Runs `invocation` with counts of its own ([`add_count`]); returns its
/// output and what it counted.
pub(crate) async fn counted<F: std::future::Future>(
    invocation: F,
) -> (F::Output, BTreeMap<&'static str, u64>) {
    INVOCATION_COUNTS
        .scope(Counts::default(), async move {
            let output = invocation.await;
            (output, INVOCATION_COUNTS.with(Counts::take))
        })
        .await
}

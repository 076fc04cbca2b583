//! What the mapping did, counted: the progress line and the summary.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counts, updated by every slot and reader.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    read: AtomicU64,
    invocations: AtomicU64,
    delivered: AtomicU64,
    done: AtomicU64,
    retries: AtomicU64,
    bisects: AtomicU64,
    function_errors: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    discarded: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Snapshot {
    /// Records read from the stream.
    pub records_read: u64,
    /// Invocations of the function.
    pub invocations: u64,
    /// Records handed to the function, retries included.
    pub records_delivered: u64,
    /// Records the function finished (checkpointed past).
    pub records_done: u64,
    /// Batches retried (each counts against MaximumRetryAttempts).
    pub retries: u64,
    /// Batches split in two (BisectBatchOnFunctionError, or at a reported record).
    pub bisects: u64,
    /// Invocations answered with an error.
    pub function_errors: u64,
    /// Function processes that died in an invocation (killed by chaos included).
    pub crashes: u64,
    /// Invocations past the function timeout (the process was killed).
    pub timeouts: u64,
    /// Records discarded (retries exhausted, too old).
    pub discarded: u64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn read(&self, n: usize) {
        add(&self.read, n);
    }
    pub(crate) fn invocation(&self, records: usize) {
        add(&self.invocations, 1);
        add(&self.delivered, records);
    }
    pub(crate) fn done(&self, n: usize) {
        add(&self.done, n);
    }
    pub(crate) fn retry(&self) {
        add(&self.retries, 1);
    }
    pub(crate) fn bisect(&self) {
        add(&self.bisects, 1);
    }
    pub(crate) fn function_error(&self) {
        add(&self.function_errors, 1);
    }
    pub(crate) fn crash(&self) {
        add(&self.crashes, 1);
    }
    pub(crate) fn timeout(&self) {
        add(&self.timeouts, 1);
    }
    pub(crate) fn discarded(&self, n: usize) {
        add(&self.discarded, n);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            records_read: get(&self.read),
            invocations: get(&self.invocations),
            records_delivered: get(&self.delivered),
            records_done: get(&self.done),
            retries: get(&self.retries),
            bisects: get(&self.bisects),
            function_errors: get(&self.function_errors),
            crashes: get(&self.crashes),
            timeouts: get(&self.timeouts),
            discarded: get(&self.discarded),
        }
    }
}

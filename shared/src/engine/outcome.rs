//! What became of one record in a batch: what the run phase decides, the
//! flush phase may change, and the fold phase folds into progress.

use crate::time::Instant;

use crate::quarantine::QuarantineReason;
use crate::skip::SkipRule;

/// What became of one record in this batch.
#[derive(Debug)]
pub(super) enum Outcome {
    Skipped(SkipRule),
    Quarantined {
        reason: QuarantineReason,
        detail: String,
        attempts: u32,
    },
    /// The handler succeeded; done unless the flush names it.
    Handled,
    /// Handled, but not written by a flush that failed: left for the retry.
    Pending,
    /// To be quarantined, but its unit's commit carries all it may
    /// (`budget.rs`): left for the retry, and its lane stops.
    Deferred,
    /// Failed for now (attempt `attempts`): its lane stops here.
    Failed {
        attempts: u32,
    },
    /// Still running when the invocation ran into its reserve; settled once
    /// every call has ended (see `run.rs`).
    Overran {
        started: Instant,
    },
    /// Not run: another record holding its dedup key has not finished (see
    /// `claims.rs`); its lane stops here.
    Waiting,
    /// Not run: its unit stopped earlier, or the invocation is short of time.
    NotStarted {
        cut_off: bool,
    },
}

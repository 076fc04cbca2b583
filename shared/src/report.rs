//! What one batch did, counted: the local `invoke` summary and the metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::decode::KplCounts;
use crate::quarantine::QuarantineReason;
use crate::skip::SkipRule;

/// Counts of what the engine did with one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// User records in the event (KPL aggregates counted by their user records).
    pub records: u64,
    /// Records the handler processed.
    pub processed: u64,
    /// Records at or below the checkpoint.
    pub skipped_checkpointed: u64,
    /// Records older than the maximum age.
    pub skipped_stale: u64,
    /// Records whose dedup key another record holds.
    pub skipped_duplicate: u64,
    /// Records quarantined because the handler said permanent.
    pub quarantined_permanent: u64,
    /// Records quarantined after `max_attempts` retryable failures.
    pub quarantined_exhausted: u64,
    /// Records quarantined because their payload could not be decoded.
    pub quarantined_undecodable: u64,
    /// Records reported for retry after a retryable failure.
    pub failed: u64,
    /// Records left for Lambda's retry: not started after a failure or for lack
    /// of time, or handled but not written by a flush that failed.
    pub not_started: u64,
    /// Records held back because a parent shard is not finished.
    pub blocked_on_parent: u64,
    /// Shards whose batch stopped because the invocation ran short of time.
    pub cut_off: u64,
    /// Commits refused because a newer invocation had written the shard.
    pub superseded: u64,
    /// KPL deaggregation counts.
    pub kpl: KplCounts,
    /// Now minus the oldest record's arrival: how far behind the consumer is.
    pub iterator_age: Option<Duration>,
    /// Counts the batch's handler and sinks added through
    /// `Batch::add_count` (the fan-out's
    /// requests, retries and aggregates), by metric name: printed with the
    /// invocation's metrics line.
    pub counts: BTreeMap<&'static str, u64>,
}

impl BatchReport {
    pub(crate) fn count_skip(&mut self, rule: SkipRule) {
        match rule {
            SkipRule::Checkpointed => self.skipped_checkpointed += 1,
            SkipRule::Stale => self.skipped_stale += 1,
            SkipRule::Duplicate => self.skipped_duplicate += 1,
        }
    }

    pub(crate) fn count_quarantine(&mut self, reason: QuarantineReason) {
        match reason {
            QuarantineReason::Permanent => self.quarantined_permanent += 1,
            QuarantineReason::Exhausted => self.quarantined_exhausted += 1,
            QuarantineReason::Undecodable => self.quarantined_undecodable += 1,
        }
    }

    /// Records skipped by any rule.
    pub fn skipped(&self) -> u64 {
        self.skipped_checkpointed + self.skipped_stale + self.skipped_duplicate
    }

    /// Records quarantined for any reason.
    pub fn quarantined(&self) -> u64 {
        self.quarantined_permanent + self.quarantined_exhausted + self.quarantined_undecodable
    }
}

impl fmt::Display for BatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records: {} processed, {} skipped ({} checkpointed, {} stale, {} duplicate), \
             {} quarantined ({} permanent, {} exhausted, {} undecodable), {} failed, {} not started",
            self.records,
            self.processed,
            self.skipped(),
            self.skipped_checkpointed,
            self.skipped_stale,
            self.skipped_duplicate,
            self.quarantined(),
            self.quarantined_permanent,
            self.quarantined_exhausted,
            self.quarantined_undecodable,
            self.failed,
            self.not_started,
        )?;
        if self.blocked_on_parent > 0 {
            write!(f, "; held back by an unfinished parent shard")?;
        }
        if self.cut_off > 0 {
            write!(f, "; cut off by the remaining time")?;
        }
        if self.superseded > 0 {
            write!(f, "; superseded by a newer invocation")?;
        }
        if self.kpl.aggregates > 0 || self.kpl.fallbacks > 0 {
            write!(
                f,
                "; KPL: {} aggregates held {} records, {} fell back to plain",
                self.kpl.aggregates, self.kpl.user_records, self.kpl.fallbacks
            )?;
        }
        Ok(())
    }
}

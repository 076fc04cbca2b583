//! After the run: a failed flush becomes the outcomes of its records, the
//! outcomes fold into each unit's progress in record order, and the batch's
//! changes are committed in one write per shard.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::EngineError;
use super::claims::Claims;
use super::run::{Outcome, ShardRun};
use super::units::Units;
use crate::decode::Item;
use crate::handler::{FailureKind, FlushError, Handler, HandlerError};
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, Record};
use crate::report::BatchReport;
use crate::retry::Backoff;
use crate::state::{CommitOutcome, KeyCommit, ProgressMode, StateError};

/// Tries of a commit that the store refuses for a transient reason.
const COMMIT_TRIES: u32 = 8;
/// The pause between them: from 25 ms, doubling, up to 1 s.
const COMMIT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(1));
/// Time a last try needs before the invocation's end.
const COMMIT_MARGIN: Duration = Duration::from_millis(200);

/// What the batch settled, folded out of its outcomes.
pub(super) struct Folded {
    units: Units,
    retry_from: Option<Position>,
}

impl<H: Handler> ShardRun<'_, H> {
    /// Turns a failed flush into the outcomes of the records it concerns, lane
    /// by lane: the first record of a lane the flush did not write counts an
    /// attempt (retryable) or is quarantined (permanent, or out of attempts),
    /// unless the flush ran out of time before trying it (no attempt);
    /// after a retryable one, the lane's later handled records are left for
    /// the retry too, so the retry applies the lane's records in order again.
    pub(super) fn settle_flush(
        &self,
        items: &[Item],
        outcomes: &mut [Outcome],
        units: &Units,
        error: FlushError,
    ) {
        let (mut named, whole) = match error {
            FlushError::Records(failures) => (
                failures
                    .into_iter()
                    .map(|f| (f.position, f.error))
                    .collect::<HashMap<Position, HandlerError>>(),
                None,
            ),
            FlushError::Batch(error) => (HashMap::new(), Some(error)),
        };
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut charged: HashSet<&str> = HashSet::new();
        for (item, outcome) in items.iter().zip(outcomes.iter_mut()) {
            let record = item.record();
            let lane = self.lane_of(record);
            let failed = matches!(outcome, Outcome::Handled | Outcome::Failed { .. });
            if stopped.contains(lane) {
                if failed {
                    *outcome = Outcome::Pending;
                }
                continue;
            }
            if !matches!(outcome, Outcome::Handled) {
                continue;
            }
            let error = match (named.remove(&record.position), &whole) {
                (Some(error), _) => error,
                // A whole flush failed: it says nothing of one record, so one
                // attempt per unit (the shard, or a key), as at concurrency 1.
                (None, Some(error))
                    if error.kind() == FailureKind::Permanent
                        || charged.insert(units.key_of(record)) =>
                {
                    error.again()
                }
                (None, Some(_)) => {
                    *outcome = Outcome::Pending;
                    stopped.insert(lane);
                    continue;
                }
                (None, None) => continue,
            };
            if !error.counts_attempt() {
                // Not tried for lack of time: left for the retry, no attempt.
                *outcome = Outcome::Pending;
                stopped.insert(lane);
                continue;
            }
            *outcome = self.failed(record, units, &error);
            if matches!(outcome, Outcome::Failed { .. }) {
                stopped.insert(lane);
            }
        }
    }

    /// Folds the outcomes into each unit's progress, in record order. A
    /// quarantine past what its unit's commit may carry ([`super::budget`])
    /// is left for the retry instead.
    pub(super) fn fold(
        &self,
        items: &[Item],
        outcomes: &[Outcome],
        mut units: Units,
        claims: &Claims,
        report: &mut BatchReport,
    ) -> Folded {
        let mut retry_from: Option<Position> = None;
        for (item, outcome) in items.iter().zip(outcomes) {
            let record = item.record();
            let unit = units.unit_mut(record);
            unit.positions.push(record.position.clone());
            match outcome {
                Outcome::Skipped(rule) => {
                    report.count_skip(*rule);
                    unit.advance(&record.position);
                }
                Outcome::Handled => {
                    report.processed += 1;
                    unit.settled
                        .done
                        .extend(claims.won.get(&record.position).cloned());
                    unit.advance(&record.position);
                }
                Outcome::Quarantined {
                    reason,
                    detail,
                    attempts,
                } if unit.carried.admit(record.data.len()) => {
                    self.log_quarantine(record, *reason, detail, *attempts);
                    report.count_quarantine(*reason);
                    unit.settled.quarantine.push(QuarantinedRecord::new(
                        record,
                        *reason,
                        detail.clone(),
                        *attempts,
                        self.now,
                    ));
                    unit.settled
                        .released
                        .extend(claims.won.get(&record.position).cloned());
                    unit.advance(&record.position);
                    if self.config.skip.handle_checkpointed && *attempts > 0 {
                        unit.keep_quarantined(&record.position, *attempts);
                    }
                }
                Outcome::Failed { attempts } => {
                    report.failed += 1;
                    unit.fail(&record.position, *attempts);
                    earliest(&mut retry_from, &record.position);
                }
                Outcome::Quarantined { .. }
                | Outcome::Deferred
                | Outcome::Waiting
                | Outcome::Pending
                | Outcome::Overran { .. }
                | Outcome::NotStarted { .. } => {
                    if let Outcome::NotStarted { cut_off: true } = outcome {
                        report.cut_off = 1;
                    }
                    report.not_started += 1;
                    unit.leave();
                    earliest(&mut retry_from, &record.position);
                }
            }
        }
        Folded { units, retry_from }
    }

    fn log_quarantine(
        &self,
        record: &Record,
        reason: QuarantineReason,
        detail: &str,
        attempts: u32,
    ) {
        tracing::warn!(
            shard = %record.shard.shard_id,
            sequence_number = %record.position.sequence,
            subsequence_number = record.position.subsequence,
            reason = reason.name(),
            attempts,
            detail = %detail,
            "record quarantined with its payload"
        );
    }

    /// Writes what the batch changed (nothing when nothing changed) and returns
    /// the position to retry from.
    pub(super) async fn commit(
        &self,
        folded: Folded,
        noted: &HashMap<String, HashSet<Position>>,
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let Folded {
            units,
            mut retry_from,
        } = folded;
        let mode = units.mode();
        let mut commits = Vec::new();
        let mut first_done = HashMap::new();
        for (name, unit) in units.into_units() {
            let progress = unit.progress(noted);
            if unit.changed(&progress) || !unit.settled.is_empty() {
                // Where Lambda retries from if this commit loses: the first
                // record the batch did, or (when the change came only from
                // records done before) the unit's first record in the batch.
                let first = unit
                    .first_done
                    .clone()
                    .or_else(|| unit.positions.first().cloned());
                if let Some(first) = first {
                    first_done.insert(name.clone(), first);
                }
                commits.push(KeyCommit {
                    partition_key: name,
                    read_version: unit.read.version,
                    progress,
                    settled: unit.settled,
                });
            }
        }
        if commits.is_empty() {
            return Ok(retry_from);
        }
        let superseded = self.write(mode, commits).await?;
        for name in superseded {
            tracing::warn!(
                shard = %self.key.shard.shard_id,
                partition_key = %name,
                "a newer invocation committed this first; this one's progress was not written \
                 and Lambda retries from its first record done"
            );
            report.superseded += 1;
            if let Some(first) = first_done.get(&name) {
                earliest(&mut retry_from, first);
            }
        }
        Ok(retry_from)
    }

    /// Writes the commits (one for the shard, or one per key), each with what
    /// it settled; returns the keys a newer invocation wrote first.
    ///
    /// The commit is what makes the batch's work stick: a transient refusal
    /// is tried again while the invocation has time, rather than handing the
    /// whole batch back to Lambda (which would redo, and resend, all of it).
    /// A retry after a write that landed unanswered finds the version moved
    /// and reads as superseded: Lambda's retry then skips by checkpoint.
    async fn write(
        &self,
        mode: ProgressMode,
        mut commits: Vec<KeyCommit>,
    ) -> Result<Vec<String>, EngineError> {
        let superseded = match mode {
            ProgressMode::Shard => {
                let Some(commit) = commits.pop() else {
                    return Ok(Vec::new());
                };
                let write = || {
                    let (progress, settled) = (&commit.progress, &commit.settled);
                    self.store
                        .commit(self.key, commit.read_version, progress, settled)
                };
                match self.retried("commit a checkpoint", write).await? {
                    CommitOutcome::Superseded => vec![commit.partition_key],
                    CommitOutcome::Committed { .. } => Vec::new(),
                }
            }
            ProgressMode::PartitionKey => {
                // In key order, so requests are the same from run to run.
                commits.sort_by(|a, b| a.partition_key.cmp(&b.partition_key));
                let write = || self.store.commit_key_progress(self.key, &commits);
                self.retried("commit key progress", write).await?
            }
        };
        Ok(superseded)
    }

    /// `write`, tried again on transient state errors with the commit's
    /// backoff while the invocation has time.
    async fn retried<T, F, Fut>(&self, what: &str, write: F) -> Result<T, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StateError>>,
    {
        COMMIT_BACKOFF
            .retry(
                what,
                COMMIT_TRIES,
                self.deadline,
                COMMIT_MARGIN,
                StateError::is_transient,
                write,
            )
            .await
            .map_err(|e| self.state_error(e))
    }
}

pub(super) fn earliest(slot: &mut Option<Position>, position: &Position) {
    if slot.as_ref().is_none_or(|p| position < p) {
        *slot = Some(position.clone());
    }
}

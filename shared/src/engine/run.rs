//! One shard's batch, phase by phase: open, run, flush, fold, commit.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;

use super::units::Units;
use super::{EngineConfig, EngineError};
use crate::decode::Item;
use crate::guard::Verdict;
use crate::handler::{Batch, Deliveries, FailureKind, FlushError, Handler, HandlerError};
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, Record};
use crate::report::BatchReport;
use crate::skip::SkipRule;
use crate::state::{
    ClaimOutcome, CommitOutcome, DedupClaim, KeyCommit, ProgressMode, Settled, ShardKey,
    StateError, StateStore,
};
use crate::time::Deadline;

pub(super) struct ShardRun<'a, H> {
    pub key: &'a ShardKey,
    pub handler: &'a H,
    pub store: &'a dyn StateStore,
    pub config: &'a EngineConfig,
    pub deadline: Deadline,
    pub now: SystemTime,
}

/// What became of one record in this batch.
#[derive(Debug)]
enum Outcome {
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
    /// Failed for now (attempt `attempts`): its unit stops here.
    Failed {
        attempts: u32,
    },
    /// Not run: its unit stopped earlier, or the invocation is short of time.
    NotStarted {
        cut_off: bool,
    },
}

/// The dedup claims of a batch: records that lost theirs, and those won.
#[derive(Default)]
struct Claims {
    duplicates: HashMap<Position, String>,
    won: HashMap<Position, DedupClaim>,
}

/// What the batch settled, folded out of its outcomes.
struct Folded {
    units: Units,
    settled: Settled,
    retry_from: Option<Position>,
}

impl<H: Handler> ShardRun<'_, H> {
    fn state_error(&self, source: StateError) -> EngineError {
        EngineError::State {
            stream_arn: self.key.shard.stream_arn.to_string(),
            shard_id: self.key.shard.shard_id.to_string(),
            source,
        }
    }

    /// Runs one shard's records; returns the position to retry from, if any.
    pub async fn process(
        &self,
        items: &[Item],
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let Some(units) = self.open(items, report).await? else {
            return Ok(items.first().map(|item| item.record().position.clone()));
        };
        let claims = self.claim_dedup_keys(items, &units).await?;
        let deliveries = Deliveries::new(units.held(items));
        let batch = Batch {
            consumer: &self.key.consumer,
            shard: &self.key.shard,
            deadline: self.deadline.reserve(self.config.time_reserve),
            deliveries: &deliveries,
        };
        self.handler.begin(&batch).await;
        let mut outcomes = self.run_records(items, &units, &claims).await;
        let flushed = self.handler.flush(&batch).await;
        if let Err(error) = flushed {
            tracing::warn!(shard = %self.key.shard.shard_id, error = %error, "the handler's flush did not write everything");
            self.settle_flush(items, &mut outcomes, &units, error);
        }
        let noted = deliveries.into_noted();
        let folded = self.fold(items, &outcomes, units, &claims, report);
        self.commit(folded, &noted, report).await
    }

    /// Reads the shard's state and asks the guard; `None` when the batch is held back.
    async fn open(
        &self,
        items: &[Item],
        report: &mut BatchReport,
    ) -> Result<Option<Units>, EngineError> {
        let state = self
            .store
            .load_shard(self.key)
            .await
            .map_err(|e| self.state_error(e))?;
        if let Some(guard) = &self.config.guard {
            let verdict = guard
                .check(
                    self.store,
                    self.key,
                    &state,
                    self.config.progress,
                    self.deadline,
                    self.config.time_reserve,
                )
                .await
                .map_err(|source| EngineError::Guard {
                    shard_id: self.key.shard.shard_id.to_string(),
                    source,
                })?;
            if let Verdict::Blocked {
                waiting_for,
                detail,
            } = verdict
            {
                tracing::warn!(
                    shard = %self.key.shard.shard_id,
                    waiting_for = %waiting_for,
                    detail = %detail,
                    records = items.len(),
                    "child shard held back until its parent is finished; the whole batch is reported failed"
                );
                report.blocked_on_parent += items.len() as u64;
                report.not_started += items.len() as u64;
                return Ok(None);
            }
        }
        match self.config.progress {
            ProgressMode::Shard => Ok(Some(Units::shard(state.progress))),
            ProgressMode::PartitionKey => {
                let mut keys: Vec<String> = items
                    .iter()
                    .map(|item| item.record().ordering_key().to_owned())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let read = self
                    .store
                    .load_key_progress(self.key, &keys)
                    .await
                    .map_err(|e| self.state_error(e))?;
                Ok(Some(Units::keys(read)))
            }
        }
    }

    /// Runs the records in order; a unit stops at its first failure, and every
    /// unit stops when the invocation is short of time.
    async fn run_records(&self, items: &[Item], units: &Units, claims: &Claims) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut all_stopped = false;
        let mut stopped: HashSet<&str> = HashSet::new();
        let mut slowest = Duration::ZERO;
        for item in items {
            let record = item.record();
            let unit = units.key_of(record);
            if all_stopped || stopped.contains(unit) {
                outcomes.push(Outcome::NotStarted { cut_off: false });
                continue;
            }
            let outcome = self.decide(item, units, claims, &mut slowest).await;
            match &outcome {
                Outcome::Failed { .. } => {
                    stopped.insert(unit);
                    all_stopped = units.mode() == ProgressMode::Shard;
                }
                Outcome::NotStarted { cut_off: true } => {
                    tracing::warn!(
                        shard = %record.shard.shard_id,
                        sequence_number = %record.position.sequence,
                        "invocation is short of time; reporting the first unstarted record"
                    );
                    all_stopped = true;
                }
                _ => {}
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Applies the skip rules and, if none applies, the handler.
    async fn decide(
        &self,
        item: &Item,
        units: &Units,
        claims: &Claims,
        slowest: &mut Duration,
    ) -> Outcome {
        let record = item.record();
        if units.is_done(record) {
            return Outcome::Skipped(SkipRule::Checkpointed);
        }
        if self.config.skip.is_stale(record, self.now) {
            return Outcome::Skipped(SkipRule::Stale);
        }
        if claims.duplicates.contains_key(&record.position) {
            return Outcome::Skipped(SkipRule::Duplicate);
        }
        let record = match item {
            Item::Undecodable { reason, .. } => {
                return Outcome::Quarantined {
                    reason: QuarantineReason::Undecodable,
                    detail: reason.clone(),
                    attempts: 0,
                };
            }
            Item::Ready(record) => record,
        };
        let budget = self.deadline.reserve(self.config.time_reserve);
        if budget
            .remaining()
            .is_some_and(|left| left.is_zero() || left < *slowest)
        {
            return Outcome::NotStarted { cut_off: true };
        }
        let started = Instant::now();
        let result = self.call_handler(record, budget).await;
        *slowest = (*slowest).max(started.elapsed());
        match result {
            Ok(()) => Outcome::Handled,
            Err(error) => self.failed(record, units, &error),
        }
    }

    /// The handler on one record, its panic and its overrun turned into
    /// retryable failures (counted as attempts, so such a record ends in the
    /// quarantine instead of failing the invocation forever).
    async fn call_handler(&self, record: &Record, budget: Deadline) -> Result<(), HandlerError> {
        let call = AssertUnwindSafe(self.handler.handle(record)).catch_unwind();
        let result = match budget.remaining() {
            Some(left) => match tokio::time::timeout(left, call).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(HandlerError::retryable(format!(
                        "the handler did not finish within the invocation's time ({} ms kept back for the commit)",
                        self.config.time_reserve.as_millis()
                    )));
                }
            },
            None => call.await,
        };
        result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            Err(HandlerError::retryable(format!(
                "the handler panicked: {message}"
            )))
        })
    }

    /// A failed record: quarantined if permanent or out of attempts, else failed for now.
    fn failed(&self, record: &Record, units: &Units, error: &HandlerError) -> Outcome {
        let attempts = units.prior_attempts(record) + 1;
        let reason = match error.kind() {
            FailureKind::Permanent => QuarantineReason::Permanent,
            FailureKind::Retryable if attempts >= self.config.max_attempts => {
                QuarantineReason::Exhausted
            }
            FailureKind::Retryable => {
                tracing::warn!(
                    shard = %record.shard.shard_id,
                    sequence_number = %record.position.sequence,
                    subsequence_number = record.position.subsequence,
                    partition_key = %record.ordering_key(),
                    attempts,
                    max_attempts = self.config.max_attempts,
                    error = %error,
                    "record failed; Lambda will retry from it"
                );
                return Outcome::Failed { attempts };
            }
        };
        Outcome::Quarantined {
            reason,
            detail: error.to_string(),
            attempts,
        }
    }

    /// Turns a failed flush into the outcomes of the records it concerns.
    fn settle_flush(
        &self,
        items: &[Item],
        outcomes: &mut [Outcome],
        units: &Units,
        error: FlushError,
    ) {
        let handled = |outcomes: &[Outcome], i: usize| matches!(outcomes[i], Outcome::Handled);
        match error {
            FlushError::Records(failures) => {
                let index: HashMap<&Position, usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| handled(outcomes, *i))
                    .map(|(i, item)| (&item.record().position, i))
                    .collect();
                for failure in failures {
                    if let Some(&i) = index.get(&failure.position) {
                        outcomes[i] = self.failed(items[i].record(), units, &failure.error);
                    }
                }
            }
            FlushError::Batch(error) => {
                let mut charged: HashSet<&str> = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    if !handled(outcomes, i) {
                        continue;
                    }
                    let record = item.record();
                    let first = charged.insert(units.key_of(record));
                    outcomes[i] = match error.kind() {
                        FailureKind::Permanent => self.failed(record, units, &error),
                        FailureKind::Retryable if first => self.failed(record, units, &error),
                        FailureKind::Retryable => Outcome::Pending,
                    };
                }
            }
        }
    }

    /// Folds the outcomes into each unit's progress, in record order.
    fn fold(
        &self,
        items: &[Item],
        outcomes: &[Outcome],
        mut units: Units,
        claims: &Claims,
        report: &mut BatchReport,
    ) -> Folded {
        let mut settled = Settled::default();
        let mut retry_from: Option<Position> = None;
        for (item, outcome) in items.iter().zip(outcomes) {
            let record = item.record();
            let unit = units.unit_mut(record);
            unit.positions.push(record.position.clone());
            if unit.stopped {
                report.not_started += 1;
                continue;
            }
            match outcome {
                Outcome::Skipped(SkipRule::Checkpointed) => {
                    report.count_skip(SkipRule::Checkpointed)
                }
                Outcome::Skipped(rule) => {
                    report.count_skip(*rule);
                    unit.advance(&record.position);
                }
                Outcome::Handled => {
                    report.processed += 1;
                    unit.advance(&record.position);
                }
                Outcome::Quarantined {
                    reason,
                    detail,
                    attempts,
                } => {
                    self.log_quarantine(record, *reason, detail, *attempts);
                    report.count_quarantine(*reason);
                    settled.quarantine.push(QuarantinedRecord::new(
                        record,
                        *reason,
                        detail.clone(),
                        *attempts,
                        self.now,
                    ));
                    settled
                        .released
                        .extend(claims.won.get(&record.position).cloned());
                    unit.advance(&record.position);
                }
                Outcome::Failed { attempts } => {
                    report.failed += 1;
                    unit.fail(&record.position, *attempts);
                    earliest(&mut retry_from, &record.position);
                }
                Outcome::Pending | Outcome::NotStarted { .. } => {
                    if let Outcome::NotStarted { cut_off: true } = outcome {
                        report.cut_off = 1;
                    }
                    report.not_started += 1;
                    unit.stopped = true;
                    earliest(&mut retry_from, &record.position);
                }
            }
        }
        Folded {
            units,
            settled,
            retry_from,
        }
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
    async fn commit(
        &self,
        folded: Folded,
        noted: &HashMap<String, HashSet<Position>>,
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let Folded {
            units,
            settled,
            mut retry_from,
        } = folded;
        let mode = units.mode();
        let mut commits = Vec::new();
        let mut first_done = HashMap::new();
        for (name, unit) in units.into_units() {
            let progress = unit.progress(noted);
            if unit.changed(&progress) {
                if let Some(first) = unit.first_done.clone() {
                    first_done.insert(name.clone(), first);
                }
                commits.push(KeyCommit {
                    partition_key: name,
                    read_version: unit.read.version,
                    progress,
                });
            }
        }
        if commits.is_empty() && settled.is_empty() {
            return Ok(retry_from);
        }
        let superseded = match mode {
            ProgressMode::Shard => {
                let Some(commit) = commits.pop() else {
                    return Ok(retry_from);
                };
                let outcome = self
                    .store
                    .commit(self.key, commit.read_version, &commit.progress, &settled)
                    .await
                    .map_err(|e| self.state_error(e))?;
                match outcome {
                    CommitOutcome::Superseded => vec![commit.partition_key],
                    CommitOutcome::Committed { .. } => Vec::new(),
                }
            }
            ProgressMode::PartitionKey => self
                .store
                .commit_key_progress(self.key, &commits, &settled)
                .await
                .map_err(|e| self.state_error(e))?,
        };
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

    /// Claims the dedup keys of the records that may be handled, in one store
    /// call: records that lost (duplicates, with the holder) and the claims won.
    async fn claim_dedup_keys(&self, items: &[Item], units: &Units) -> Result<Claims, EngineError> {
        let mut claims = Claims::default();
        let Some(rule) = &self.config.skip.dedup else {
            return Ok(claims);
        };
        let mut wanted: Vec<(Position, DedupClaim)> = Vec::new();
        let mut first_owner: HashMap<String, String> = HashMap::new();
        for item in items {
            let Item::Ready(record) = item else { continue };
            if units.is_done(record) || self.config.skip.is_stale(record, self.now) {
                continue;
            }
            let Some(key) = (rule.key)(record) else {
                continue;
            };
            // A key twice in one batch: the first record claims it, the later
            // ones are duplicates without a store round trip.
            if let Some(holder) = first_owner.get(&key) {
                claims
                    .duplicates
                    .insert(record.position.clone(), holder.clone());
                continue;
            }
            let owner = owner_of(record);
            first_owner.insert(key.clone(), owner.clone());
            let expires_at = self.now + rule.window;
            wanted.push((
                record.position.clone(),
                DedupClaim {
                    key,
                    owner,
                    expires_at,
                },
            ));
        }
        if wanted.is_empty() {
            return Ok(claims);
        }
        let only_claims: Vec<DedupClaim> = wanted.iter().map(|(_, c)| c.clone()).collect();
        let outcomes = self
            .store
            .claim_dedup_keys(&self.key.consumer, &only_claims, self.now)
            .await
            .map_err(|e| self.state_error(e))?;
        for ((position, claim), outcome) in wanted.into_iter().zip(outcomes) {
            match outcome {
                ClaimOutcome::HeldBy(holder) => {
                    claims.duplicates.insert(position, holder);
                }
                ClaimOutcome::Won => {
                    claims.won.insert(position, claim);
                }
            }
        }
        Ok(claims)
    }
}

fn earliest(slot: &mut Option<Position>, position: &Position) {
    if slot.as_ref().is_none_or(|p| position < p) {
        *slot = Some(position.clone());
    }
}

/// The owner name of a record's dedup claim.
fn owner_of(record: &Record) -> String {
    format!(
        "{}|{}|{}",
        record.shard.stream_arn, record.shard.shard_id, record.position
    )
}

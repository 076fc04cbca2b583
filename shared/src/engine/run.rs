//! One shard's batch, phase by phase: open, run, flush, fold, commit.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::time::Instant;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};

use super::budget::QuarantineBudget;
use super::claims::{ClaimVerdict, Claims};
use super::lanes::Lanes;
use super::units::Units;
use super::{EngineConfig, EngineError};
use crate::decode::Item;
use crate::guard::Verdict;
use crate::handler::{Batch, Deliveries, FailureKind, Handler, HandlerError};
use crate::metrics::Counts;
use crate::quarantine::QuarantineReason;
use crate::record::{Position, Record};
use crate::report::BatchReport;
use crate::skip::SkipRule;
use crate::state::{ConsumerShard, ProgressMode, StateError, StateStore};
use crate::time::Deadline;

pub(super) struct ShardRun<'a, H> {
    pub key: &'a ConsumerShard,
    pub handler: &'a H,
    pub store: &'a dyn StateStore,
    pub config: &'a EngineConfig,
    pub deadline: Deadline,
    pub now: SystemTime,
}

/// How fast the batch's handler calls go, and the time its flush keeps back.
struct Pace {
    /// The longest handler call seen, in microseconds: a record starts only
    /// with that much time left.
    slowest: AtomicU64,
    /// Time kept back for the flush.
    flush_reserve: Duration,
}

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
    /// ([`super::budget`]): left for the retry, and its lane stops.
    Deferred,
    /// Failed for now (attempt `attempts`): its lane stops here.
    Failed {
        attempts: u32,
    },
    /// Still running when the invocation ran into its reserve; settled once
    /// every call has ended (see [`ShardRun::settle_overruns`]).
    Overran {
        started: Instant,
    },
    /// Not run: another record holding its dedup key has not finished (see
    /// [`super::claims`]); its lane stops here.
    Waiting,
    /// Not run: its unit stopped earlier, or the invocation is short of time.
    NotStarted {
        cut_off: bool,
    },
}

impl<H: Handler> ShardRun<'_, H> {
    pub(super) fn state_error(&self, source: StateError) -> EngineError {
        EngineError::State {
            stream_arn: self.key.shard.stream_arn.to_string(),
            shard_id: self.key.shard.shard_id.to_string(),
            source,
        }
    }

    /// Runs one shard's records; returns the position to retry from, if any.
    pub(super) async fn process(
        &self,
        items: &[Item],
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let Some(units) = self.open(items, report).await? else {
            return Ok(items.first().map(|item| item.record().position.clone()));
        };
        let claims = self.claim_dedup_keys(items, &units).await?;
        let deliveries = Deliveries::new(units.held(items));
        let counts = Counts::default();
        let batch = Batch {
            consumer: &self.key.consumer,
            shard: &self.key.shard,
            deadline: self.deadline.reserve(self.config.time_reserve),
            deliveries: &deliveries,
            counts: &counts,
        };
        self.handler.begin(&batch).await;
        let mut outcomes = self.run_records(items, &units, &claims).await;
        let flushed = self.handler.flush(&batch).await;
        if let Err(error) = flushed {
            tracing::warn!(shard = %self.key.shard.shard_id, error = %error, "the handler's flush did not write everything");
            self.settle_flush(items, &mut outcomes, &units, error);
        }
        for (name, value) in counts.take() {
            *report.counts.entry(name).or_default() += value;
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

    /// Runs the records, up to [`EngineConfig::concurrency`] at once across
    /// lanes ([`Lanes`]): a lane stops at its first failure, and no record
    /// starts once the invocation is short of time (those running finish).
    async fn run_records(&self, items: &[Item], units: &Units, claims: &Claims) -> Vec<Outcome> {
        let concurrency = self.config.concurrency.max(1);
        let lanes = items.iter().map(|item| self.lane_of(item.record()));
        let mut lanes = Lanes::new(lanes);
        let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
        let pace = Pace {
            slowest: AtomicU64::new(0),
            flush_reserve: self.flush_reserve(),
        };
        let budget = QuarantineBudget::default();
        let start = |index: usize| {
            let (pace, budget) = (&pace, &budget);
            async move {
                let item = &items[index];
                let outcome = match self.decide(item, units, claims, pace).await {
                    Outcome::Quarantined { .. }
                        if !budget.admit(units.key_of(item.record()), item.record().data.len()) =>
                    {
                        Outcome::Deferred
                    }
                    outcome => outcome,
                };
                (index, outcome)
            }
        };
        let mut running = FuturesUnordered::new();
        let mut cut_off = false;
        loop {
            let (index, outcome) = if concurrency == 1 {
                // One at a time: no need for the set of running calls.
                let Some(index) = lanes.start() else { break };
                if cut_off {
                    break;
                }
                start(index).await
            } else {
                while !cut_off && running.len() < concurrency {
                    let Some(index) = lanes.start() else { break };
                    running.push(start(index));
                }
                let Some(next) = running.next().await else {
                    break;
                };
                next
            };
            let go_on = match &outcome {
                Outcome::Failed { .. }
                | Outcome::Overran { .. }
                | Outcome::Deferred
                | Outcome::Waiting => false,
                Outcome::NotStarted { cut_off: true } => {
                    let record = items[index].record();
                    tracing::warn!(
                        shard = %record.shard.shard_id,
                        sequence_number = %record.position.sequence,
                        "invocation is short of time; records not started are left for the retry"
                    );
                    cut_off = true;
                    false
                }
                _ => true,
            };
            lanes.finished(index, go_on);
            outcomes[index] = Some(outcome);
        }
        let mut outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::NotStarted { cut_off: false }))
            .collect();
        self.settle_overruns(items, &mut outcomes, units);
        outcomes
    }

    /// Calls cut off by the reserve: only the one that ran longest counts an
    /// attempt (the call that hangs, if one does: at concurrency 1 it is the
    /// only one), in either progress mode; the others are left for the retry
    /// without one, so a slow spell does not charge every key in flight.
    fn settle_overruns(&self, items: &[Item], outcomes: &mut [Outcome], units: &Units) {
        let longest = outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| match outcome {
                Outcome::Overran { started } => Some((*started, index)),
                _ => None,
            })
            .min();
        let Some((_, charged)) = longest else {
            return;
        };
        for (index, outcome) in outcomes.iter_mut().enumerate() {
            if !matches!(outcome, Outcome::Overran { .. }) {
                continue;
            }
            *outcome = if index == charged {
                let error = HandlerError::retryable(format!(
                    "the handler did not finish within the invocation's time ({} ms kept back for the commit)",
                    self.config.time_reserve.as_millis()
                ));
                self.failed(items[index].record(), units, &error)
            } else {
                Outcome::Pending
            };
        }
    }

    /// The time kept back for the handler's flush: what it asks for
    /// ([`Handler::flush_time`]), at most half of the invocation's time left
    /// past the commit's reserve, so records still start.
    fn flush_reserve(&self) -> Duration {
        let wanted = self.handler.flush_time();
        match self.deadline.remaining() {
            Some(left) => wanted.min(left.saturating_sub(self.config.time_reserve) / 2),
            None => wanted,
        }
    }

    /// The lane of `record`: the whole shard when records run one at a time
    /// in checkpoint mode, else its ordering key.
    pub(super) fn lane_of<'r>(&self, record: &'r Record) -> &'r str {
        if self.config.concurrency <= 1 && self.config.progress == ProgressMode::Shard {
            ""
        } else {
            record.ordering_key()
        }
    }

    /// Applies the skip rules and, if none applies, the handler.
    async fn decide(&self, item: &Item, units: &Units, claims: &Claims, pace: &Pace) -> Outcome {
        let record = item.record();
        let done = units.is_done(record);
        let verdict = claims.verdict(&record.position);
        let duplicate = verdict == Some(ClaimVerdict::Duplicate);
        if let Some(rule) = self.config.skip.rule_for(record, self.now, done, duplicate) {
            return Outcome::Skipped(rule);
        }
        if let Some(ClaimVerdict::Waiting(holder)) = verdict {
            tracing::warn!(
                shard = %record.shard.shard_id,
                sequence_number = %record.position.sequence,
                subsequence_number = record.position.subsequence,
                holder = %holder,
                "another record holding this record's dedup key has not finished; Lambda will retry from it"
            );
            return Outcome::Waiting;
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
        // Time is kept back for the commit and for the handler's flush (at
        // most half of what the invocation had, so records still start).
        let budget = self
            .deadline
            .reserve(self.config.time_reserve + pace.flush_reserve);
        let longest = Duration::from_micros(pace.slowest.load(Ordering::Relaxed));
        if budget
            .remaining()
            .is_some_and(|left| left.is_zero() || left < longest)
        {
            return Outcome::NotStarted { cut_off: true };
        }
        let started = Instant::now();
        let Some(result) = self.call_handler(record, budget).await else {
            return Outcome::Overran { started };
        };
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        pace.slowest.fetch_max(took, Ordering::Relaxed);
        match result {
            Ok(()) => {
                claims.handled(&record.position);
                Outcome::Handled
            }
            Err(error) => self.failed(record, units, &error),
        }
    }

    /// The handler on one record, its panic turned into a retryable failure
    /// (counted as an attempt, so such a record ends in the quarantine instead
    /// of failing the invocation forever); `None` when it ran into the reserve.
    async fn call_handler(
        &self,
        record: &Record,
        budget: Deadline,
    ) -> Option<Result<(), HandlerError>> {
        let call = AssertUnwindSafe(self.handler.handle(record)).catch_unwind();
        let result = match budget.remaining() {
            Some(left) => tokio::time::timeout(left, call).await.ok()?,
            None => call.await,
        };
        Some(result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            Err(HandlerError::retryable(format!(
                "the handler panicked: {message}"
            )))
        }))
    }

    /// A failed record: quarantined if permanent or out of attempts, else failed for now.
    pub(super) fn failed(&self, record: &Record, units: &Units, error: &HandlerError) -> Outcome {
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
}

//! The run phase: records go, up to [`super::EngineConfig::concurrency`] at
//! once across lanes and in order within one (`lanes.rs`), through the skip
//! rules; a record is not started when the invocation is short of time; the
//! handler then succeeds, fails for good or fails for now. A handler that
//! panics, or runs into the time kept back for the commit, fails for now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::time::Instant;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::budget::QuarantineBudget;
use super::claims::{ClaimVerdict, Claims};
use super::lanes::Lanes;
use super::open::Opened;
use super::outcome::Outcome;
use super::shard::ShardRun;
use super::units::Units;
use crate::decode::Item;
use crate::handler::{Guarded, Handler, HandlerError, guarded};
use crate::quarantine::QuarantineReason;
use crate::record::Record;
use crate::time::Deadline;

/// What the run phase hands the flush: each record's outcome, in batch order.
pub(super) struct Ran {
    pub(super) outcomes: Vec<Outcome>,
}

/// How fast the batch's handler calls go, and the time its flush keeps back.
struct Pace {
    /// The longest handler call seen, in microseconds: a record starts only
    /// with that much time left.
    slowest: AtomicU64,
    /// Time kept back for the flush.
    flush_reserve: Duration,
}

/// Runs the batch's records (see [`run_records`]).
pub(super) async fn run<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    opened: &Opened,
) -> Ran {
    Ran {
        outcomes: run_records(shard, items, &opened.units, &opened.claims).await,
    }
}

/// Runs the records, up to [`super::EngineConfig::concurrency`] at once across
/// lanes ([`Lanes`]): a lane stops at its first failure, and no record
/// starts once the invocation is short of time (those running finish).
async fn run_records<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    units: &Units,
    claims: &Claims,
) -> Vec<Outcome> {
    let concurrency = shard.config.concurrency.max(1);
    let lanes = items.iter().map(|item| shard.lane_of(item.record()));
    let mut lanes = Lanes::new(lanes);
    let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
    let pace = Pace {
        slowest: AtomicU64::new(0),
        flush_reserve: flush_reserve(shard),
    };
    let budget = QuarantineBudget::default();
    let start = |index: usize| {
        let (pace, budget) = (&pace, &budget);
        async move {
            let item = &items[index];
            let outcome = match decide(shard, item, units, claims, pace).await {
                Outcome::Quarantined { .. }
                    if !budget.admit(units.unit_of(item.record()), item.record().data.len()) =>
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
    charge_longest_overrun(shard, items, &mut outcomes, units);
    outcomes
}

/// Calls cut off by the reserve: only the one that ran longest counts an
/// attempt (the call that hangs, if one does: at concurrency 1 it is the
/// only one), in either progress mode; the others are left for the retry
/// without one, so a slow spell does not charge every key in flight.
fn charge_longest_overrun<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    outcomes: &mut [Outcome],
    units: &Units,
) {
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
                shard.config.time_reserve.as_millis()
            ));
            shard.failed(items[index].record(), units, &error)
        } else {
            Outcome::Pending
        };
    }
}

/// The time kept back for the handler's flush: what it asks for
/// ([`Handler::flush_time`]), at most half of the invocation's time left
/// past the commit's reserve, so records still start.
fn flush_reserve<H: Handler>(shard: &ShardRun<'_, H>) -> Duration {
    let wanted = shard.handler.flush_time();
    match shard.deadline.remaining() {
        Some(left) => wanted.min(left.saturating_sub(shard.config.time_reserve) / 2),
        None => wanted,
    }
}

/// Applies the skip rules and, if none applies, the handler.
async fn decide<H: Handler>(
    shard: &ShardRun<'_, H>,
    item: &Item,
    units: &Units,
    claims: &Claims,
    pace: &Pace,
) -> Outcome {
    let record = item.record();
    let done = units.is_done(record);
    let verdict = claims.verdict(&record.position);
    let duplicate = verdict == Some(ClaimVerdict::Duplicate);
    if let Some(rule) = shard
        .config
        .skip
        .rule_for(record, shard.now, done, duplicate)
    {
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
    let budget = shard
        .deadline
        .reserve(shard.config.time_reserve + pace.flush_reserve);
    let longest = Duration::from_micros(pace.slowest.load(Ordering::Relaxed));
    if budget
        .remaining()
        .is_some_and(|left| left.is_zero() || left < longest)
    {
        return Outcome::NotStarted { cut_off: true };
    }
    let started = Instant::now();
    let Some(result) = call_handler(shard, record, budget).await else {
        return Outcome::Overran { started };
    };
    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    pace.slowest.fetch_max(took, Ordering::Relaxed);
    match result {
        Ok(()) => {
            claims.handled(&record.position);
            Outcome::Handled
        }
        Err(error) => shard.failed(record, units, &error),
    }
}

/// The handler on one record, its panic turned into a retryable failure
/// (counted as an attempt, so such a record ends in the quarantine instead
/// of failing the invocation forever); `None` when it ran into the reserve.
async fn call_handler<H: Handler>(
    shard: &ShardRun<'_, H>,
    record: &Record,
    budget: Deadline,
) -> Option<Result<(), HandlerError>> {
    match guarded(shard.handler.handle(record), budget).await {
        Guarded::Finished(result) => Some(result),
        Guarded::Panicked(message) => Some(Err(HandlerError::retryable(format!(
            "the handler panicked: {message}"
        )))),
        Guarded::OutOfTime => None,
    }
}

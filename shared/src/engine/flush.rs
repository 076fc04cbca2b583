//! The flush phase: the handler's [`Handler::flush`] writes what it
//! buffered; a record it could not write counts an attempt like a failed
//! `handle`, and its lane stops there.

use std::collections::{HashMap, HashSet};

use super::outcome::Outcome;
use super::run::Ran;
use super::shard::ShardRun;
use super::units::Units;
use crate::decode::Item;
use crate::handler::{Batch, FailureKind, FlushError, Handler, HandlerError};
use crate::record::Position;
use crate::state::Unit;

/// What the flush phase hands the fold: each record's outcome once the
/// flush is known.
pub(super) struct Flushed {
    pub(super) outcomes: Vec<Outcome>,
}

/// Flushes the handler's buffers for `batch` and settles what it could not write.
pub(super) async fn flush<H: Handler>(
    shard: &ShardRun<'_, H>,
    batch: &Batch<'_>,
    items: &[Item],
    units: &Units,
    ran: Ran,
) -> Flushed {
    let mut outcomes = ran.outcomes;
    if let Err(error) = shard.handler.flush(batch).await {
        tracing::warn!(shard = %shard.key.shard.shard_id, error = %error, "the handler's flush did not write everything");
        charge_flush_failure(shard, items, &mut outcomes, units, error);
    }
    Flushed { outcomes }
}

/// Turns a failed flush into the outcomes of the records it concerns, lane
/// by lane: the first record of a lane the flush did not write counts an
/// attempt (retryable) or is quarantined (permanent, or out of attempts),
/// unless the flush ran out of time before trying it (no attempt);
/// after a retryable one, the lane's later handled records are left for
/// the retry too, so the retry applies the lane's records in order again.
fn charge_flush_failure<H: Handler>(
    shard: &ShardRun<'_, H>,
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
    let mut charged: HashSet<Unit<&str>> = HashSet::new();
    for (item, outcome) in items.iter().zip(outcomes.iter_mut()) {
        let record = item.record();
        let lane = shard.lane_of(record);
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
                    || charged.insert(units.unit_of(record)) =>
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
        *outcome = shard.failed(record, units, &error);
        if matches!(outcome, Outcome::Failed { .. }) {
            stopped.insert(lane);
        }
    }
}

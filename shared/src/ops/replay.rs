//! `quarantine replay`: quarantined records through the function's own handler
//! again, in their original order per shard.
//!
//! Each record is claimed in the store before its handler runs (a conditional
//! write of `replay_started_at`), and its outcome is written after: a success
//! deletes it, a failure keeps it with the new reason, error text and attempt
//! count and releases the claim. A replay that stops in between (killed,
//! interrupted) leaves the claim: a later replay leaves such a record alone,
//! since its handler may have applied it, so no replay applies a record twice.
//! `--include-interrupted` takes those over, for an operator who checked.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::Serialize;

use crate::handler::{Batch, Deliveries, FailureKind, FlushError, Handler, HandlerError};
use crate::quarantine::{DETAIL_MAX_BYTES, QuarantineReason, QuarantinedRecord, cut};
use crate::state::{QuarantineStore, StateError};
use crate::time::{Deadline, epoch_millis};

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Only say what would run; change nothing, call no handler.
    pub dry_run: bool,
    /// Also replay records an earlier replay claimed and did not finish (their
    /// handler may have applied them: check first).
    pub include_interrupted: bool,
    /// Time each record's handler (and flush) gets.
    pub timeout: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            dry_run: false,
            include_interrupted: false,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// The handler succeeded: the record left the quarantine.
    Replayed,
    /// The handler failed again: the record stays, with this failure.
    Failed {
        /// The new reason.
        reason: QuarantineReason,
        /// The new error text.
        detail: String,
        /// The new attempt count.
        attempts: u32,
    },
    /// A dry run: the record would run.
    WouldRun,
    /// The handler neither succeeded nor failed (it panicked, or ran out of
    /// time): it may have applied the record, so the record keeps its replay
    /// claim and later replays leave it alone.
    Unsettled {
        /// What happened.
        why: String,
    },
    /// Left alone, and why.
    Skipped {
        /// Why.
        why: String,
    },
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The store failed on one record.
    #[error("replay of {shard_id}/{sequence_number}: {source}")]
    State {
        /// The record's shard.
        shard_id: String,
        /// The record's sequence number.
        sequence_number: String,
        /// The store's error.
        #[source]
        source: StateError,
    },
}

/// Replays `records` (already filtered) of `consumer` through `handler`: per
/// shard in sequence order, a record at a time, calling `report` with each
/// record's outcome as it is settled. Returns the outcomes, in the order run.
///
/// # Errors
/// [`ReplayError`] when the store fails (the record being replayed keeps its
/// claim: a later replay leaves it alone unless told to include it).
pub async fn replay<H: Handler>(
    store: &dyn QuarantineStore,
    handler: &H,
    consumer: &str,
    records: Vec<QuarantinedRecord>,
    options: &ReplayOptions,
    mut report: impl FnMut(&QuarantinedRecord, &ReplayOutcome),
) -> Result<Vec<ReplayOutcome>, ReplayError> {
    let mut outcomes = Vec::with_capacity(records.len());
    for record in in_shard_order(records) {
        let outcome = replay_one(store, handler, consumer, &record, options)
            .await
            .map_err(|source| ReplayError::State {
                shard_id: record.shard_id.clone(),
                sequence_number: record.sequence_number.clone(),
                source,
            })?;
        report(&record, &outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The records grouped by stream and shard, each shard in sequence order (a
/// sequence number that is not a number sorts last, by its text).
pub fn in_shard_order(mut records: Vec<QuarantinedRecord>) -> Vec<QuarantinedRecord> {
    records.sort_by(|a, b| {
        (&a.stream_arn, &a.shard_id)
            .cmp(&(&b.stream_arn, &b.shard_id))
            .then_with(|| match (a.position(), b.position()) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.sequence_number.cmp(&b.sequence_number),
            })
    });
    records
}

async fn replay_one<H: Handler>(
    store: &dyn QuarantineStore,
    handler: &H,
    consumer: &str,
    entry: &QuarantinedRecord,
    options: &ReplayOptions,
) -> Result<ReplayOutcome, StateError> {
    let skip = |why: &str| {
        Ok(ReplayOutcome::Skipped {
            why: why.to_owned(),
        })
    };
    if entry.reason == QuarantineReason::Undecodable {
        return skip("undecodable: there is no payload to hand over (redrive or purge it)");
    }
    let Some(record) = entry.to_record() else {
        return skip("its sequence number is not a number");
    };
    if entry.replay_started_at.is_some() && !options.include_interrupted {
        return skip(
            "an earlier replay claimed it and did not record the outcome: it may have been \
             applied (check, then purge it or rerun with --include-interrupted)",
        );
    }
    if options.dry_run {
        return Ok(ReplayOutcome::WouldRun);
    }
    let key = entry.key();
    let now = epoch_millis(crate::time::now());
    if !store
        .claim_replay(consumer, &key, now, options.include_interrupted)
        .await?
    {
        return skip("another replay holds it, or it left the quarantine meanwhile");
    }
    match run_handler(handler, consumer, &record, options.timeout).await {
        Ran::Done(Ok(())) => {
            store.remove_quarantined(consumer, &key).await?;
            Ok(ReplayOutcome::Replayed)
        }
        Ran::Unsettled(why) => Ok(ReplayOutcome::Unsettled { why }),
        Ran::Done(Err(error)) => {
            let reason = match error.kind() {
                FailureKind::Permanent => QuarantineReason::Permanent,
                FailureKind::Retryable => QuarantineReason::Exhausted,
            };
            let detail = cut(error.to_string(), DETAIL_MAX_BYTES);
            let attempts = entry.attempts.saturating_add(1);
            store
                .requeue(consumer, &key, reason, &detail, attempts)
                .await?;
            Ok(ReplayOutcome::Failed {
                reason,
                detail,
                attempts,
            })
        }
    }
}

/// How a handler call ended.
enum Ran {
    /// It answered.
    Done(Result<(), HandlerError>),
    /// It panicked or ran out of time.
    Unsettled(String),
}

/// One record through the handler as a batch of one: `begin`, `handle`,
/// `flush`, within `timeout`.
async fn run_handler<H: Handler>(
    handler: &H,
    consumer: &str,
    record: &crate::Record,
    timeout: Duration,
) -> Ran {
    let deliveries = Deliveries::default();
    let batch = Batch {
        consumer,
        shard: &record.shard,
        deadline: Deadline::after(timeout),
        deliveries: &deliveries,
    };
    let work = async {
        handler.begin(&batch).await;
        handler.handle(record).await?;
        match handler.flush(&batch).await {
            Ok(()) => Ok(()),
            Err(FlushError::Batch(error)) => Err(error),
            Err(FlushError::Records(mut failures)) if !failures.is_empty() => {
                Err(failures.swap_remove(0).error)
            }
            Err(FlushError::Records(_)) => Ok(()),
        }
    };
    match tokio::time::timeout(timeout, AssertUnwindSafe(work).catch_unwind()).await {
        Ok(Ok(result)) => Ran::Done(result),
        Ok(Err(_)) => Ran::Unsettled("the handler panicked".into()),
        Err(_) => Ran::Unsettled(format!(
            "the handler did not finish within {} ms",
            timeout.as_millis()
        )),
    }
}

//! `quarantine replay`: quarantined records through the function's own handler
//! again, in their original order per shard.
//!
//! Each record is claimed in the store before its handler runs (a conditional
//! write of `replay_started_at`), and its outcome is written after: a success
//! deletes it, a failure keeps it with the new reason, error text and attempt
//! count and releases the claim. A replay that stops in between (killed,
//! interrupted) leaves the claim: a later replay leaves such a record alone,
//! since its handler may have applied it, so no replay applies a record twice.
//! `--include-interrupted` takes those over, for an operator who checked, but
//! only claims older than [`ReplayOptions::timeout`] plus [`TAKE_OVER_MARGIN`]:
//! a replay still running holds a claim only while one record's handler runs,
//! so a younger claim may be one it is applying right now.
//!
//! A key's records are applied in order: when a record is not applied (it
//! fails again, its handler does not answer, or it is skipped: claimed by
//! another replay, say), the later records of its partition key in this
//! replay are not run either ([`ReplayOutcome::Held`]) and stay in the
//! quarantine as they were; other keys go on. The key is the record's own partition key, per stream (the
//! shards in order of their ids, so a child shard's records come after its
//! parents'): for a KPL user record that is its key from the aggregate, not
//! the aggregate's, since that is the key the entry keeps and the one the
//! handler and the producer order by (the aggregate's key is the KPL's choice
//! of packing, and a user key's records can sit in aggregates of different
//! keys). An undecodable record holds no key: replay never applies it.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::handler::{
    Batch, Deliveries, FailureKind, FlushError, Guarded, Handler, HandlerError, guarded,
};
use crate::quarantine::{
    DETAIL_MAX_BYTES, QuarantineKey, QuarantineReason, QuarantinedRecord, cut,
};
use crate::state::{QuarantineStore, StateError};
use crate::time::{Deadline, epoch_millis};

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Only say what would run; change nothing, call no handler.
    pub dry_run: bool,
    /// Also replay records an earlier replay claimed and did not finish (their
    /// handler may have applied them: check first): those claimed longer ago
    /// than `timeout` plus [`TAKE_OVER_MARGIN`] (see
    /// [`ReplayOptions::take_over_before`]). A younger claim may belong to a
    /// replay still running, and is left alone.
    pub include_interrupted: bool,
    /// Time each record's handler (and flush) gets. Replays running at the
    /// same time are taken to use the same (the function's
    /// `SHARDLINE_TIMEOUT_SECONDS` for the command line).
    pub timeout: Duration,
}

/// How long after [`ReplayOptions::timeout`] a running replay may still hold
/// a claim: the claim's own write before the handler, the outcome's write
/// after it (with the SDK's retries), and the clocks of two machines that
/// differ. `--include-interrupted` takes over only claims older than both.
pub const TAKE_OVER_MARGIN: Duration = Duration::from_secs(60);

impl ReplayOptions {
    /// The newest claim (epoch milliseconds) this replay takes over at
    /// `now_ms`: `now_ms - timeout - TAKE_OVER_MARGIN` with
    /// `include_interrupted`, else `None` (no claim is taken over).
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use shardline::quarantine::ReplayOptions;
    ///
    /// let options = ReplayOptions {
    ///     include_interrupted: true,
    ///     timeout: Duration::from_secs(30),
    ///     ..ReplayOptions::default()
    /// };
    /// assert_eq!(options.take_over_before(1_000_000), Some(910_000));
    /// assert_eq!(ReplayOptions::default().take_over_before(1_000_000), None);
    /// ```
    pub fn take_over_before(&self, now_ms: u64) -> Option<u64> {
        let held_for = self.timeout.saturating_add(TAKE_OVER_MARGIN).as_millis();
        self.include_interrupted
            .then(|| now_ms.saturating_sub(u64::try_from(held_for).unwrap_or(u64::MAX)))
    }
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
    /// Not run, and left in the quarantine as it was: an earlier record of its
    /// partition key was not applied in this replay (it failed again, did not
    /// answer, or was skipped), so running this one would apply the key out of
    /// order.
    Held {
        /// The earlier record it waits behind (`shard/sequence/subsequence`):
        /// the first of its key this replay did not apply.
        behind: String,
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
/// record's outcome as it is settled. A record whose partition key has an
/// earlier record this replay did not apply is held ([`ReplayOutcome::Held`]).
/// Returns the outcomes, in the order run.
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
    let mut waiting = Waiting::default();
    for record in in_shard_order(records) {
        let outcome = match waiting.behind(&record) {
            Some(first) => ReplayOutcome::Held {
                behind: first.to_string(),
            },
            None => replay_one(store, handler, consumer, &record, options)
                .await
                .map_err(|source| ReplayError::State {
                    shard_id: record.shard_id.clone(),
                    sequence_number: record.sequence_number.clone(),
                    source,
                })?,
        };
        waiting.hold_unapplied(&record, &outcome);
        report(&record, &outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The partition keys (per stream) a replay holds back, each with the first
/// of its records the replay did not apply.
#[derive(Debug, Default)]
struct Waiting(HashMap<(String, String), QuarantineKey>);

impl Waiting {
    /// The record `record` waits behind, if its key is held.
    fn behind(&self, record: &QuarantinedRecord) -> Option<&QuarantineKey> {
        self.0
            .get(&(record.stream_arn.clone(), record.partition_key.clone()))
    }

    /// Holds `record`'s key when `outcome` did not apply it (and replay could
    /// have: an undecodable record holds nothing). A dry run's `WouldRun`
    /// holds nothing either: it says what would run.
    fn hold_unapplied(&mut self, record: &QuarantinedRecord, outcome: &ReplayOutcome) {
        let applied = matches!(outcome, ReplayOutcome::Replayed | ReplayOutcome::WouldRun);
        if applied || record.reason == QuarantineReason::Undecodable {
            return;
        }
        self.0
            .entry((record.stream_arn.clone(), record.partition_key.clone()))
            .or_insert_with(|| record.key());
    }
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
    let now = epoch_millis(crate::time::now());
    let take_over_before = options.take_over_before(now);
    if let Some(why) = claimed(entry.replay_started_at, take_over_before, now, options) {
        return skip(&why);
    }
    if options.dry_run {
        return Ok(ReplayOutcome::WouldRun);
    }
    let key = entry.key();
    if !store
        .claim_replay(consumer, &key, now, take_over_before)
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

/// Why a record claimed at `started_at` (epoch ms, if claimed) is left alone
/// at `now`, or `None` when it may be claimed: it is not claimed, or the claim
/// is at or before `take_over_before`.
fn claimed(
    started_at: Option<u64>,
    take_over_before: Option<u64>,
    now: u64,
    options: &ReplayOptions,
) -> Option<String> {
    let started_at = started_at?;
    let Some(before) = take_over_before else {
        return Some(
            "an earlier replay claimed it and did not record the outcome: it may have been \
             applied (check, then purge it or rerun with --include-interrupted)"
                .into(),
        );
    };
    (started_at > before).then(|| {
        format!(
            "a replay claimed it {} s ago and may still be running it: \
             --include-interrupted takes over only claims older than {} s \
             (the timeout plus {} s)",
            now.saturating_sub(started_at) / 1000,
            options.timeout.saturating_add(TAKE_OVER_MARGIN).as_secs(),
            TAKE_OVER_MARGIN.as_secs(),
        )
    })
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
    // A replay prints no metrics line: what the sinks count is not kept.
    let counts = crate::metrics::Counts::default();
    let batch = Batch {
        consumer,
        shard: &record.shard,
        deadline: Deadline::after(timeout),
        deliveries: &deliveries,
        counts: &counts,
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
    match guarded(crate::buffer::in_batch(work), Deadline::after(timeout)).await {
        Guarded::Finished(result) => Ran::Done(result),
        Guarded::Panicked(_) => Ran::Unsettled("the handler panicked".into()),
        Guarded::OutOfTime => Ran::Unsettled(format!(
            "the handler did not finish within {} ms",
            timeout.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        shard: &str,
        sequence: &str,
        key: &str,
        reason: QuarantineReason,
    ) -> QuarantinedRecord {
        QuarantinedRecord {
            stream_arn: "arn:aws:kinesis:us-east-1:1:stream/s".into(),
            shard_id: shard.into(),
            sequence_number: sequence.into(),
            subsequence_number: 0,
            partition_key: key.into(),
            reason,
            detail: String::new(),
            attempts: 1,
            quarantined_at: 0,
            data: bytes::Bytes::new(),
            explicit_hash_key: None,
            replay_started_at: None,
        }
    }

    fn failed() -> ReplayOutcome {
        ReplayOutcome::Failed {
            reason: QuarantineReason::Permanent,
            detail: "again".into(),
            attempts: 2,
        }
    }

    #[test]
    fn a_key_waits_behind_the_first_of_its_records_not_applied() {
        use QuarantineReason::{Permanent, Undecodable};
        let mut waiting = Waiting::default();
        let first = entry("shardId-1", "1", "k", Permanent);
        let later = entry("shardId-1", "2", "k", Permanent);
        let child = entry("shardId-2", "3", "k", Permanent);
        let other = entry("shardId-1", "4", "other", Permanent);
        waiting.hold_unapplied(&first, &failed());
        assert_eq!(waiting.behind(&later), Some(&first.key()));
        waiting.hold_unapplied(&later, &ReplayOutcome::Held { behind: "x".into() });
        assert_eq!(
            waiting.behind(&child),
            Some(&first.key()),
            "still the first"
        );
        assert_eq!(waiting.behind(&other), None, "other keys go on");
        let elsewhere = QuarantinedRecord {
            stream_arn: "arn:aws:kinesis:us-east-1:1:stream/t".into(),
            ..later.clone()
        };
        assert_eq!(waiting.behind(&elsewhere), None, "a key is per stream");

        let mut waiting = Waiting::default();
        for outcome in [ReplayOutcome::Replayed, ReplayOutcome::WouldRun] {
            waiting.hold_unapplied(&first, &outcome);
        }
        let skipped = ReplayOutcome::Skipped {
            why: "no payload".into(),
        };
        waiting.hold_unapplied(&entry("shardId-1", "1", "k", Undecodable), &skipped);
        assert_eq!(waiting.behind(&later), None, "applied, or never applicable");
        for outcome in [
            ReplayOutcome::Unsettled {
                why: "timed out".into(),
            },
            ReplayOutcome::Skipped {
                why: "claimed".into(),
            },
        ] {
            let mut waiting = Waiting::default();
            waiting.hold_unapplied(&first, &outcome);
            assert_eq!(waiting.behind(&later), Some(&first.key()), "{outcome:?}");
        }
    }

    #[test]
    fn only_a_claim_older_than_the_timeout_and_margin_is_taken_over() {
        let options = ReplayOptions {
            include_interrupted: true,
            timeout: Duration::from_secs(30),
            ..ReplayOptions::default()
        };
        let now = 10_000_000;
        let before = options.take_over_before(now);
        assert_eq!(before, Some(now - 90_000));
        assert_eq!(claimed(None, before, now, &options), None, "not claimed");
        assert_eq!(claimed(Some(now - 90_000), before, now, &options), None);
        let young = claimed(Some(now - 89_999), before, now, &options);
        assert!(
            young
                .as_deref()
                .is_some_and(|why| why.contains("89 s ago") && why.contains("than 90 s")),
            "{young:?}"
        );
        let without = ReplayOptions::default();
        assert_eq!(without.take_over_before(now), None);
        let old = claimed(Some(0), None, now, &without);
        assert!(old.is_some_and(|why| why.contains("--include-interrupted")));
        let long = ReplayOptions {
            timeout: Duration::MAX,
            ..options
        };
        assert_eq!(long.take_over_before(now), Some(0), "saturates");
    }
}

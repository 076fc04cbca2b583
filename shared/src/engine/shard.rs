//! One shard's batch: the context every phase reads, and the phases in
//! order, each handing its typed result to the next:
//! `open.rs` ([`Opened`]) → `run.rs` ([`Ran`]) → `flush.rs` ([`Flushed`]) →
//! `fold.rs` ([`Folded`]) → `commit.rs` (the position to retry from).

use std::time::SystemTime;

use super::commit::commit;
use super::flush::{Flushed, flush};
use super::fold::{Folded, fold};
use super::open::{Opened, open};
use super::outcome::Outcome;
use super::run::{Ran, run};
use super::units::Units;
use super::{EngineConfig, EngineError};
use crate::decode::Item;
use crate::handler::{Batch, Deliveries, FailureKind, Handler, HandlerError};
use crate::metrics::Counts;
use crate::quarantine::QuarantineReason;
use crate::record::{Position, Record};
use crate::report::BatchReport;
use crate::state::{ConsumerShard, ProgressMode, StateError, StateStore};
use crate::time::Deadline;

/// What every phase of one shard's batch reads: the shard, the handler, the
/// store, the settings, the deadline and the batch's clock.
pub(super) struct ShardRun<'a, H> {
    pub key: &'a ConsumerShard,
    pub handler: &'a H,
    pub store: &'a dyn StateStore,
    pub config: &'a EngineConfig,
    pub deadline: Deadline,
    pub now: SystemTime,
}

impl<H: Handler> ShardRun<'_, H> {
    /// Runs one shard's records, phase by phase; returns the position to
    /// retry from, if any.
    pub(super) async fn process(
        &self,
        items: &[Item],
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let opened: Opened = match Box::pin(open(self, items, report)).await? {
            Some(opened) => opened,
            // Held back by the guard: the whole batch is left for the retry.
            None => return Ok(items.first().map(|item| item.record().position.clone())),
        };
        let deliveries = Deliveries::new(opened.units.held(items));
        let counts = Counts::default();
        let batch = Batch {
            consumer: &self.key.consumer,
            shard: &self.key.shard,
            deadline: self.deadline.reserve(self.config.time_reserve),
            deliveries: &deliveries,
            counts: &counts,
        };
        // One batch for the handler's buffers, apart from any other batch the
        // process runs at once (Lambda Managed Instances). Each phase is
        // boxed: a debug build keeps a copy of every inline future in the
        // frame that awaits it, too much for a tokio worker thread's stack.
        let flushed: Flushed = crate::buffer::in_batch(Box::pin(async {
            self.handler.begin(&batch).await;
            let ran: Ran = Box::pin(run(self, items, &opened)).await;
            Box::pin(flush(self, &batch, items, &opened.units, ran)).await
        }))
        .await;
        for (name, value) in counts.take() {
            *report.counts.entry(name).or_default() += value;
        }
        let noted = deliveries.into_noted();
        let folded: Folded = fold(self, items, flushed, opened, report);
        Box::pin(commit(self, folded, &noted, report)).await
    }

    pub(super) fn state_error(&self, source: StateError) -> EngineError {
        EngineError::State {
            stream_arn: self.key.shard.stream_arn.to_string(),
            shard_id: self.key.shard.shard_id.to_string(),
            source,
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

/// Keeps in `retry_from` the earlier of it and `position`.
pub(super) fn earliest(retry_from: &mut Option<Position>, position: &Position) {
    if retry_from.as_ref().is_none_or(|p| position < p) {
        *retry_from = Some(position.clone());
    }
}

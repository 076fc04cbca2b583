//! The fold phase: the outcomes fold into each unit's progress in record
//! order (a checkpoint moves only over done records), with the quarantined
//! records and the dedup claims each unit's commit settles.

use super::flush::Flushed;
use super::open::Opened;
use super::outcome::Outcome;
use super::shard::{ShardRun, earliest};
use super::units::Units;
use crate::decode::Item;
use crate::handler::Handler;
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, Record};
use crate::report::BatchReport;

/// What the batch settled, folded out of its outcomes.
pub(super) struct Folded {
    pub(super) units: Units,
    pub(super) retry_from: Option<Position>,
}

/// Folds the outcomes into each unit's progress, in record order. A
/// quarantine past what its unit's commit may carry ([`super::budget`])
/// is left for the retry instead.
pub(super) fn fold<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    flushed: Flushed,
    opened: Opened,
    report: &mut BatchReport,
) -> Folded {
    let Opened { mut units, claims } = opened;
    let outcomes = &flushed.outcomes;
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
                log_quarantine(record, *reason, detail, *attempts);
                report.count_quarantine(*reason);
                unit.settled.quarantine.push(QuarantinedRecord::new(
                    record,
                    *reason,
                    detail.clone(),
                    *attempts,
                    shard.now,
                ));
                unit.settled
                    .released
                    .extend(claims.won.get(&record.position).cloned());
                unit.advance(&record.position);
                if shard.config.skip.handle_checkpointed && *attempts > 0 {
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

fn log_quarantine(record: &Record, reason: QuarantineReason, detail: &str, attempts: u32) {
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

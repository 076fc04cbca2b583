//! The ordering units of one shard's batch, and how a batch's outcomes fold into
//! their progress.
//!
//! A unit is what keeps order: the shard itself ([`crate::state::ProgressMode::Shard`]) or one
//! partition key of it ([`crate::state::ProgressMode::PartitionKey`]; for KPL user records the
//! aggregate's key, which is what Lambda routes by). A unit's checkpoint only
//! moves over done records; past the first record that is not done (another
//! key of the shard may have gone on, with in-batch concurrency), done records
//! are kept as ranges, and each failing record keeps its attempts.

use std::collections::{HashMap, HashSet};

use super::budget::Carried;
use crate::decode::Item;
use crate::progress::just_after;
use crate::record::{Position, Record};
use crate::state::{Delivered, HeadAttempts, PositionRanges, Progress, Settled, Unit};

/// One unit: what was read, and what this batch makes of it.
#[derive(Debug, Default)]
pub(super) struct UnitChange {
    /// As stored when the batch began.
    pub read: Progress,
    pub checkpoint: Option<Position>,
    /// Failing records and their attempts: as read, less those now done, plus
    /// those that failed in this batch.
    heads: Vec<HeadAttempts>,
    /// The first record this batch did (to retry from if the commit loses).
    pub first_done: Option<Position>,
    /// Whether a record of the unit was left for Lambda's retry: the
    /// checkpoint stops there, and records done after it are kept as ranges.
    gap: bool,
    /// Records done after the gap.
    done_after_gap: HashSet<Position>,
    /// Records done by an earlier invocation that failed in this one (a
    /// window handles checkpointed records again): their attempts are kept
    /// although the checkpoint is past them.
    failed_again: HashSet<Position>,
    /// The unit's records in this batch, in order.
    pub positions: Vec<Position>,
    /// What the batch quarantined of the unit's records, and their claims
    /// given back: committed with its progress.
    pub settled: Settled,
    /// How much quarantine the unit's commit carries so far.
    pub carried: Carried,
}

impl UnitChange {
    fn from_read(read: Progress) -> Self {
        UnitChange {
            checkpoint: read.checkpoint.clone(),
            heads: read.heads.clone(),
            read,
            ..UnitChange::default()
        }
    }

    /// The record at `position` is done (processed, skipped or quarantined).
    pub(super) fn advance(&mut self, position: &Position) {
        if !self.read.is_done(position) {
            self.first_done.get_or_insert_with(|| position.clone());
        }
        self.heads.retain(|h| h.position != *position);
        if self.gap {
            self.done_after_gap.insert(position.clone());
        } else if self.checkpoint.as_ref().is_none_or(|cp| cp < position) {
            self.checkpoint = Some(position.clone());
        }
    }

    /// The record at `position` was quarantined after `attempts`, in a
    /// function that handles checkpointed records again (a window, when
    /// Lambda resends an aggregate or older state): its attempts are kept
    /// past the checkpoint, so a resend quarantines it again at once instead
    /// of counting from one while the records after it wait.
    pub(super) fn keep_quarantined(&mut self, position: &Position, attempts: u32) {
        self.failed_again.insert(position.clone());
        self.heads.retain(|h| h.position != *position);
        self.heads.push(HeadAttempts {
            position: position.clone(),
            attempts,
        });
    }

    /// The record at `position` failed on attempt `attempts`.
    pub(super) fn fail(&mut self, position: &Position, attempts: u32) {
        if self.read.is_done(position) {
            self.failed_again.insert(position.clone());
        }
        self.heads.retain(|h| h.position != *position);
        self.heads.push(HeadAttempts {
            position: position.clone(),
            attempts,
        });
        self.gap = true;
    }

    /// The record at `position` was not done (not started, or not written by
    /// the flush): left for Lambda's retry.
    pub(super) fn leave(&mut self) {
        self.gap = true;
    }

    /// The progress to store after this batch, with `noted` (what destinations
    /// received in this attempt) merged into what they held before.
    pub(super) fn progress(&self, noted: &HashMap<String, HashSet<Position>>) -> Progress {
        let after = |p: &Position| self.checkpoint.as_ref().is_none_or(|cp| p > cp);
        let mut heads: Vec<HeadAttempts> = self
            .heads
            .iter()
            .filter(|h| after(&h.position) || self.failed_again.contains(&h.position))
            .cloned()
            .collect();
        heads.sort_by(|a, b| a.position.cmp(&b.position));
        Progress {
            checkpoint: self.checkpoint.clone(),
            done: self.done(),
            heads,
            delivered: self.delivered(noted),
            version: self.read.version,
        }
    }

    /// Whether the batch changed anything of the unit.
    pub(super) fn changed(&self, progress: &Progress) -> bool {
        progress.checkpoint != self.read.checkpoint
            || progress.heads != self.read.heads
            || progress.done != self.read.done
            || progress.delivered != self.read.delivered
    }

    /// The unit's records done past the new checkpoint: within the batch's
    /// span, runs of records done now or before; outside it, what was stored.
    fn done(&self) -> PositionRanges {
        let (Some(first), Some(last)) = (self.positions.first(), self.positions.last()) else {
            return self.read.done.clone();
        };
        let positions: Vec<&Position> = self.positions.iter().collect();
        let runs = PositionRanges::from_runs(&positions, |i| {
            self.done_after_gap.contains(positions[i]) || self.read.done.contains(positions[i])
        });
        let done = runs.union(&self.read.done.outside(first, &just_after(last)));
        match &self.checkpoint {
            Some(checkpoint) => done.after(checkpoint),
            None => done,
        }
    }

    /// What each destination holds of the unit's records after the new checkpoint.
    ///
    /// Within the batch's span, the runs of its records a destination holds
    /// (before or now); outside it, what was stored before (a shorter retry, or
    /// the first half of a bisected batch, keeps what lies past its end).
    fn delivered(&self, noted: &HashMap<String, HashSet<Position>>) -> Delivered {
        let mut delivered = Delivered::new();
        let (Some(first), Some(last)) = (self.positions.first(), self.positions.last()) else {
            return self.read.delivered.clone();
        };
        let span_end = just_after(last);
        let positions: Vec<&Position> = self.positions.iter().collect();
        let mut names: Vec<&String> = self.read.delivered.iter().map(|(n, _)| n).collect();
        names.extend(noted.keys());
        names.sort();
        names.dedup();
        let empty = PositionRanges::new();
        for name in names {
            let before = self
                .read
                .delivered
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&empty, |(_, ranges)| ranges);
            let now = noted.get(name);
            let runs = PositionRanges::from_runs(&positions, |i| {
                before.contains(positions[i]) || now.is_some_and(|n| n.contains(positions[i]))
            });
            let mut held = runs.union(&before.outside(first, &span_end));
            if let Some(checkpoint) = &self.checkpoint {
                held = held.after(checkpoint);
            }
            delivered.set(name, held);
        }
        delivered
    }
}

/// The units of one shard's batch.
#[derive(Debug)]
pub(super) enum Units {
    /// Checkpoint mode: the shard is the one unit (no lookup per record).
    Shard(Box<UnitChange>),
    /// Per-key mode: one unit per partition key.
    Keys(HashMap<String, UnitChange>),
}

impl Units {
    /// The shard as one unit.
    pub(super) fn shard(read: Progress) -> Self {
        Units::Shard(Box::new(UnitChange::from_read(read)))
    }

    /// One unit per partition key, from what was read of them.
    pub(super) fn keys(read: HashMap<String, Progress>) -> Self {
        Units::Keys(
            read.into_iter()
                .map(|(key, progress)| (key, UnitChange::from_read(progress)))
                .collect(),
        )
    }

    /// The unit `record` belongs to.
    pub(super) fn unit_of<'r>(&self, record: &'r Record) -> Unit<&'r str> {
        match self {
            Units::Shard(_) => Unit::Shard,
            Units::Keys(_) => Unit::Key(record.ordering_key()),
        }
    }

    fn read_of(&self, record: &Record) -> Option<&Progress> {
        match self {
            Units::Shard(unit) => Some(&unit.read),
            Units::Keys(units) => units.get(record.ordering_key()).map(|u| &u.read),
        }
    }

    /// Done by earlier invocations: at or below the checkpoint read at the
    /// start of the batch, or in the ranges done past it.
    pub(super) fn is_done(&self, record: &Record) -> bool {
        self.read_of(record)
            .is_some_and(|p| p.is_done(&record.position))
    }

    /// Attempts made on `record` by earlier invocations.
    pub(super) fn prior_attempts(&self, record: &Record) -> u32 {
        self.read_of(record)
            .map_or(0, |p| p.attempts(&record.position))
    }

    /// Per destination, the records of `records` it held before this batch.
    pub(super) fn held(&self, items: &[Item]) -> HashMap<String, HashSet<Position>> {
        let mut held: HashMap<String, HashSet<Position>> = HashMap::new();
        let reads = |unit: &UnitChange| unit.read.delivered.iter().next().is_some();
        let any = match self {
            Units::Shard(unit) => reads(unit),
            Units::Keys(units) => units.values().any(reads),
        };
        if !any {
            return held;
        }
        for record in items.iter().map(Item::record) {
            let Some(read) = self.read_of(record) else {
                continue;
            };
            for (name, ranges) in read.delivered.iter() {
                if ranges.contains(&record.position) {
                    held.entry(name.clone())
                        .or_default()
                        .insert(record.position.clone());
                }
            }
        }
        held
    }

    /// The unit of `record`, made if this batch is its first.
    pub(super) fn unit_mut(&mut self, record: &Record) -> &mut UnitChange {
        match self {
            Units::Shard(unit) => unit,
            Units::Keys(units) => units.entry(record.ordering_key().to_owned()).or_default(),
        }
    }

    /// Every unit, with what the batch made of it.
    pub(super) fn into_units(self) -> Vec<(Unit, UnitChange)> {
        match self {
            Units::Shard(unit) => vec![(Unit::Shard, *unit)],
            Units::Keys(units) => units
                .into_iter()
                .map(|(key, unit)| (Unit::Key(key), unit))
                .collect(),
        }
    }
}

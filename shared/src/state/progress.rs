//! How far an ordering unit (a shard, or one partition key of a shard) has got:
//! its checkpoint, the record failing at its head, and what each destination of
//! a fan-out already holds beyond the checkpoint.
//!
//! Both stores keep a [`Progress`] in the same shape (see [`Delivered::to_texts`]),
//! so they cannot drift apart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::record::{Position, SequenceNumber};

/// The most bytes the text form of one unit's [`Delivered`] may take; past it,
/// the ranges of the latest positions are dropped (those records may then be
/// sent twice, never lost). Well under DynamoDB's 400 KB item limit.
pub const MAX_DELIVERED_BYTES: usize = 256 * 1024;

/// Where progress is kept, and so what order is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressMode {
    /// One checkpoint per shard: a retryable failure stops the shard, nothing
    /// after it runs. For one batch per shard at a time (ParallelizationFactor 1).
    #[default]
    Shard,
    /// One checkpoint per partition key: a retryable failure stops only its key;
    /// other keys go on. Correct when several batches of one shard run at once
    /// (ParallelizationFactor 2..10), which Lambda orders per key only.
    PartitionKey,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "shard" => Ok(ProgressMode::Shard),
            "partition-key" => Ok(ProgressMode::PartitionKey),
            other => Err(format!("unknown progress mode {other:?}")),
        }
    }
}

/// A record that has failed and is at the head of its unit, with the number of
/// attempts made on it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadAttempts {
    /// The failing record.
    pub position: Position,
    /// Attempts made, across invocations.
    pub attempts: u32,
}

/// Progress of one ordering unit: a shard (one batch per shard at a time) or
/// one partition key of a shard (ParallelizationFactor above 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last position done (processed, skipped or quarantined), every record
    /// of the unit at or before it being done; `None` before the first commit.
    pub checkpoint: Option<Position>,
    /// The record that last failed at the head of the unit, if any.
    pub head: Option<HeadAttempts>,
    /// What each fan-out destination holds of the unit's records after the checkpoint.
    pub delivered: Delivered,
    /// Bumped by every commit; a commit names the version it read, so a stale
    /// writer cannot overwrite a newer one. 0 when nothing is stored.
    pub version: u64,
}

/// Positions as sorted, disjoint, half-open ranges `[from, to)`.
///
/// A range means "every record of the unit from `from` up to `to`": it is only
/// built from a run of the unit's records that a batch held one after another
/// (Lambda delivers a unit's records in order, with none left out), so it never
/// claims a record it did not see. Bounds need no arithmetic on sequence
/// numbers: the bound just after position `p` is `p` with its subsequence + 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionRanges {
    ranges: Vec<(Position, Position)>,
}

/// The lowest bound above `position`: no record lies strictly between them.
pub fn just_after(position: &Position) -> Position {
    Position::new(
        position.sequence.clone(),
        position.subsequence.saturating_add(1),
    )
}

impl PositionRanges {
    /// No positions.
    pub fn new() -> Self {
        PositionRanges::default()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, in order, as `[from, to)`.
    pub fn ranges(&self) -> &[(Position, Position)] {
        &self.ranges
    }

    /// Whether `position` is in a range.
    pub fn contains(&self, position: &Position) -> bool {
        let after = self.ranges.partition_point(|(from, _)| from <= position);
        after > 0 && *position < self.ranges[after - 1].1
    }

    /// Adds `[from, to)`, merging with the ranges it touches.
    pub fn insert(&mut self, from: Position, to: Position) {
        if from >= to {
            return;
        }
        let (mut from, mut to) = (from, to);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for (a, b) in self.ranges.drain(..) {
            if b < from || to < a {
                kept.push((a, b));
            } else {
                from = from.min(a);
                to = to.max(b);
            }
        }
        let at = kept.partition_point(|(a, _)| *a < from);
        kept.insert(at, (from, to));
        self.ranges = kept;
    }

    /// The positions of runs of `positions` (sorted, every record of the unit in
    /// their span) for which `included` holds.
    pub fn from_runs(positions: &[&Position], included: impl Fn(usize) -> bool) -> Self {
        let mut set = PositionRanges::new();
        let mut start: Option<usize> = None;
        for index in 0..=positions.len() {
            let inside = index < positions.len() && included(index);
            match (inside, start) {
                (true, None) => start = Some(index),
                (false, Some(first)) => {
                    set.ranges
                        .push((positions[first].clone(), just_after(positions[index - 1])));
                    start = None;
                }
                _ => {}
            }
        }
        set
    }

    /// The part strictly after `bound`.
    pub fn after(&self, bound: &Position) -> Self {
        let floor = just_after(bound);
        PositionRanges {
            ranges: self
                .ranges
                .iter()
                .filter(|(_, to)| *to > floor)
                .map(|(from, to)| (from.clone().max(floor.clone()), to.clone()))
                .collect(),
        }
    }

    /// The part outside `[from, to)`.
    pub fn outside(&self, from: &Position, to: &Position) -> Self {
        let mut kept = Vec::new();
        for (a, b) in &self.ranges {
            if a < from {
                kept.push((a.clone(), b.clone().min(from.clone())));
            }
            if b > to {
                kept.push((a.clone().max(to.clone()), b.clone()));
            }
        }
        kept.retain(|(a, b)| a < b);
        PositionRanges { ranges: kept }
    }

    /// Every position of `self` or `other`.
    pub fn union(mut self, other: &PositionRanges) -> Self {
        for (from, to) in &other.ranges {
            self.insert(from.clone(), to.clone());
        }
        self
    }

    /// The text form: `seq/sub..seq/sub` ranges joined by commas.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (i, (from, to)) in self.ranges.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{from}..{to}");
        }
        text
    }

    /// Reads the text form; `None` if it is not one.
    pub fn from_text(text: &str) -> Option<Self> {
        let position = |p: &str| -> Option<Position> {
            let (seq, sub) = p.split_once('/')?;
            Some(Position::new(
                seq.parse::<SequenceNumber>().ok()?,
                sub.parse().ok()?,
            ))
        };
        let mut set = PositionRanges::new();
        for range in text.split(',').filter(|r| !r.is_empty()) {
            let (from, to) = range.split_once("..")?;
            set.insert(position(from)?, position(to)?);
        }
        Some(set)
    }
}

/// Per destination, the positions it holds (see [`PositionRanges`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered(BTreeMap<String, PositionRanges>);

impl Delivered {
    /// Nothing delivered anywhere.
    pub fn new() -> Self {
        Delivered::default()
    }

    /// Whether no destination holds anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `destination` holds `position`.
    pub fn contains(&self, destination: &str, position: &Position) -> bool {
        self.0
            .get(destination)
            .is_some_and(|ranges| ranges.contains(position))
    }

    /// The destinations and their positions.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PositionRanges)> {
        self.0.iter()
    }

    /// Sets what `destination` holds (an empty set removes it).
    pub fn set(&mut self, destination: &str, ranges: PositionRanges) {
        if ranges.is_empty() {
            self.0.remove(destination);
        } else {
            self.0.insert(destination.to_owned(), ranges);
        }
    }

    /// The text form of each destination's ranges, within [`MAX_DELIVERED_BYTES`]
    /// in all: when over, the ranges with the latest positions go first (those
    /// records may be sent again, never lost).
    pub fn to_texts(&self) -> Vec<(String, String)> {
        let mut sets: Vec<(&String, Vec<String>)> = self
            .0
            .iter()
            .map(|(name, ranges)| {
                let texts = ranges
                    .ranges
                    .iter()
                    .map(|(from, to)| format!("{from}..{to}"))
                    .collect();
                (name, texts)
            })
            .collect();
        let mut size: usize = sets
            .iter()
            .map(|(name, texts)| name.len() + texts.iter().map(|t| t.len() + 1).sum::<usize>())
            .sum();
        let mut dropped = 0usize;
        while size > MAX_DELIVERED_BYTES {
            let Some((_, longest)) = sets.iter_mut().max_by_key(|(_, texts)| texts.len()) else {
                break;
            };
            let Some(last) = longest.pop() else { break };
            size -= last.len() + 1;
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "too many delivered ranges to keep; records past them may be sent again"
            );
        }
        sets.into_iter()
            .filter(|(_, texts)| !texts.is_empty())
            .map(|(name, texts)| (name.clone(), texts.join(",")))
            .collect()
    }

    /// Reads the text forms of [`Delivered::to_texts`].
    ///
    /// # Errors
    /// The name of the destination whose text does not parse.
    pub fn from_texts<'a>(
        texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut delivered = Delivered::new();
        for (name, text) in texts {
            let ranges = PositionRanges::from_text(text).ok_or_else(|| name.to_owned())?;
            delivered.set(name, ranges);
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 56-digit sequence number, as Kinesis makes them.
    fn p(seq: u64, sub: u64) -> Position {
        Position::new(
            format!("4959033827149025660855969253836157109592157598{seq:010}")
                .parse()
                .unwrap(),
            sub,
        )
    }

    #[test]
    fn runs_become_ranges_that_hold_exactly_their_records() {
        let batch: Vec<Position> = (1..=10).map(|n| p(n * 10, 0)).collect();
        let refs: Vec<&Position> = batch.iter().collect();
        let set = PositionRanges::from_runs(&refs, |i| i != 3 && i != 7);
        assert_eq!(set.ranges().len(), 3);
        for (i, position) in batch.iter().enumerate() {
            assert_eq!(set.contains(position), i != 3 && i != 7, "{position}");
        }
        // Nothing between the unit's records is claimed beyond the run's last.
        assert!(!set.contains(&p(31, 0)));
        assert!(set.contains(&p(30, 0)));
        let back = PositionRanges::from_text(&set.to_text()).unwrap();
        assert_eq!(back, set);
        assert_eq!(
            PositionRanges::from_text("").unwrap(),
            PositionRanges::new()
        );
        assert!(PositionRanges::from_text("garbage").is_none());
    }

    #[test]
    fn aggregates_are_split_by_subsequence() {
        let batch = [p(5, 0), p(5, 1), p(5, 2), p(6, 0)];
        let refs: Vec<&Position> = batch.iter().collect();
        let set = PositionRanges::from_runs(&refs, |i| i <= 1);
        assert!(set.contains(&p(5, 1)) && !set.contains(&p(5, 2)));
        let after = set.after(&p(5, 0));
        assert!(!after.contains(&p(5, 0)) && after.contains(&p(5, 1)));
    }

    #[test]
    fn clipping_keeps_what_lies_outside() {
        let mut set = PositionRanges::new();
        set.insert(p(1, 0), p(100, 0));
        let outside = set.outside(&p(20, 0), &p(40, 0));
        assert!(outside.contains(&p(19, 0)) && !outside.contains(&p(20, 0)));
        assert!(!outside.contains(&p(39, 0)) && outside.contains(&p(40, 0)));
        assert!(outside.contains(&p(99, 0)) && !outside.contains(&p(100, 0)));
        let after = set.after(&p(50, 0));
        assert!(!after.contains(&p(50, 0)) && after.contains(&p(51, 0)));
        assert!(set.after(&p(100, 0)).is_empty());
        let joined = outside.union(&after);
        assert!(joined.contains(&p(60, 0)) && !joined.contains(&p(30, 0)));
    }

    #[test]
    fn inserts_merge_touching_ranges() {
        let mut set = PositionRanges::new();
        set.insert(p(10, 0), p(20, 0));
        set.insert(p(30, 0), p(40, 0));
        set.insert(p(20, 0), p(30, 0));
        assert_eq!(set.ranges(), [(p(10, 0), p(40, 0))]);
        set.insert(p(1, 0), p(2, 0));
        assert_eq!(set.ranges().len(), 2);
        assert_eq!(set.ranges()[0].0, p(1, 0));
    }

    #[test]
    fn delivered_texts_round_trip_and_stay_bounded() {
        let mut delivered = Delivered::new();
        let mut ranges = PositionRanges::new();
        ranges.insert(p(1, 0), p(3, 0));
        delivered.set("a", ranges);
        let texts = delivered.to_texts();
        let back =
            Delivered::from_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
        assert_eq!(back, delivered);
        assert!(back.contains("a", &p(2, 0)) && !back.contains("b", &p(2, 0)));

        let mut huge = PositionRanges::new();
        for n in 0..10_000u64 {
            huge.insert(p(n * 2, 0), p(n * 2 + 1, 0));
        }
        let mut big = Delivered::new();
        big.set("a", huge);
        let texts = big.to_texts();
        let bytes: usize = texts.iter().map(|(n, t)| n.len() + t.len()).sum();
        assert!(bytes <= MAX_DELIVERED_BYTES, "{bytes}");
        let kept =
            Delivered::from_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).unwrap();
        assert!(kept.contains("a", &p(0, 0)), "the earliest ranges are kept");
        assert!(!kept.contains("a", &p(19_998, 0)), "the latest are dropped");
    }
}

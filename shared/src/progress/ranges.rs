//! Sets of record positions as half-open ranges: what a unit has done past its
//! checkpoint, and what a fan-out destination holds.

use std::fmt::Write as _;

use crate::record::{Position, SequenceNumber};

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

    /// The text form within `max_bytes`: when over, the ranges with the latest
    /// positions are left out (the caller says what that costs).
    pub fn to_text_within(&self, max_bytes: usize) -> (String, usize) {
        let mut text = String::new();
        for (kept, (from, to)) in self.ranges.iter().enumerate() {
            let item = format!("{from}..{to}");
            if text.len() + item.len() + 1 > max_bytes {
                return (text, self.ranges.len() - kept);
            }
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(&item);
        }
        (text, 0)
    }

    /// Reads a position's text form, `seq/sub`.
    pub fn position_from_text(text: &str) -> Option<Position> {
        let (seq, sub) = text.split_once('/')?;
        Some(Position::new(
            seq.parse::<SequenceNumber>().ok()?,
            sub.parse().ok()?,
        ))
    }

    /// Reads the text form; `None` if it is not one.
    pub fn from_text(text: &str) -> Option<Self> {
        let mut set = PositionRanges::new();
        for range in text.split(',').filter(|r| !r.is_empty()) {
            let (from, to) = range.split_once("..")?;
            set.insert(
                Self::position_from_text(from)?,
                Self::position_from_text(to)?,
            );
        }
        Some(set)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A position with a 56-digit sequence number, as Kinesis makes them.
    pub(crate) fn p(seq: u64, sub: u64) -> Position {
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
}

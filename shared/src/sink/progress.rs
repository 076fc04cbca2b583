//! What one destination has received of a shard's current batch.
//!
//! Kept as ranges of source positions, so a retried batch sends a destination
//! only what it lacks. In ordered delivery a failure leaves few holes (one per
//! stuck key), so the ranges stay few; the text form is capped at
//! [`MAX_RANGES`] ranges (about 250 KB), past which later ranges are dropped
//! (those records could then be sent twice, never lost).

use std::fmt::Write as _;

use crate::record::{Position, SequenceNumber};

/// The most ranges kept.
pub const MAX_RANGES: usize = 2_000;

/// Source positions a destination has received, as sorted disjoint ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    ranges: Vec<(Position, Position)>,
}

impl Delivered {
    /// Nothing delivered.
    pub fn none() -> Self {
        Delivered::default()
    }

    /// Whether `position` was delivered.
    pub fn contains(&self, position: &Position) -> bool {
        let after = self.ranges.partition_point(|(from, _)| from <= position);
        after > 0 && *position <= self.ranges[after - 1].1
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(Position, Position)] {
        &self.ranges
    }

    /// What is delivered after a batch: `positions` (sorted) are the batch's
    /// records, `now` says which were delivered by this attempt; records
    /// delivered before stay delivered.
    pub fn after_batch(&self, positions: &[Position], now: impl Fn(usize) -> bool) -> Delivered {
        let mut ranges: Vec<(Position, Position)> = Vec::new();
        let mut open: Option<(Position, Position)> = None;
        for (index, position) in positions.iter().enumerate() {
            if now(index) || self.contains(position) {
                match &mut open {
                    Some((_, to)) => *to = position.clone(),
                    None => open = Some((position.clone(), position.clone())),
                }
            } else if let Some(run) = open.take() {
                ranges.push(run);
            }
        }
        ranges.extend(open);
        if ranges.len() > MAX_RANGES {
            tracing::warn!(
                ranges = ranges.len(),
                kept = MAX_RANGES,
                "too many delivered ranges to keep; records past them may be sent twice"
            );
            ranges.truncate(MAX_RANGES);
        }
        Delivered { ranges }
    }

    /// The text form: `seq/sub-seq/sub` ranges joined by commas.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (i, (from, to)) in self.ranges.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{from}-{to}");
        }
        text
    }

    /// Reads the text form; `None` if it is not one.
    pub fn from_text(text: &str) -> Option<Delivered> {
        if text.is_empty() {
            return Some(Delivered::none());
        }
        let position = |p: &str| -> Option<Position> {
            let (seq, sub) = p.split_once('/')?;
            Some(Position::new(
                seq.parse::<SequenceNumber>().ok()?,
                sub.parse().ok()?,
            ))
        };
        let mut ranges = Vec::new();
        for range in text.split(',') {
            let (from, to) = range.split_once('-')?;
            ranges.push((position(from)?, position(to)?));
        }
        ranges.sort();
        Some(Delivered { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Position {
        Position::new(seq.to_string().parse().unwrap(), 0)
    }

    #[test]
    fn ranges_grow_across_attempts_and_round_trip() {
        let batch: Vec<Position> = (1..=10).map(p).collect();
        let first = Delivered::none().after_batch(&batch, |i| i != 3 && i != 7);
        assert_eq!(first.ranges().len(), 3);
        assert!(first.contains(&p(1)) && first.contains(&p(3)) && !first.contains(&p(4)));
        assert!(first.contains(&p(6)) && !first.contains(&p(8)) && first.contains(&p(10)));
        let back = Delivered::from_text(&first.to_text()).unwrap();
        assert_eq!(back, first);
        // The retry delivers record 4 only; 8 is still missing.
        let retry: Vec<Position> = (4..=10).map(p).collect();
        let second = back.after_batch(&retry, |i| i == 0);
        assert!(second.contains(&p(4)) && second.contains(&p(7)) && !second.contains(&p(8)));
        assert_eq!(Delivered::from_text("").unwrap(), Delivered::none());
        assert!(Delivered::from_text("garbage").is_none());
    }
}

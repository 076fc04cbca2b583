//! A unit's progress: its checkpoint, what it has done past the checkpoint,
//! the records failing at the head of their keys, and what its destinations
//! hold ([`Delivered`]).

use super::{Delivered, PositionRanges};
use crate::record::Position;

/// The most bytes the text form of [`Progress::done`] may take; past it, the
/// ranges of the latest positions are dropped (those records run again on the
/// retry: at-least-once, never lost).
pub const MAX_DONE_BYTES: usize = 128 * 1024;

/// The most bytes the text form of [`Progress::heads`] may take; past it, the
/// latest failing records are dropped (their attempt counts start again).
/// With [`MAX_DONE_BYTES`] and [`super::MAX_DELIVERED_BYTES`], well under
/// DynamoDB's 400 KB item limit.
pub const MAX_HEADS_BYTES: usize = 32 * 1024;

/// A record that has failed and is at the head of its key (or of the shard),
/// with the number of attempts made on it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadAttempts {
    /// The failing record.
    pub position: Position,
    /// Attempts made, across invocations.
    pub attempts: u32,
}

impl HeadAttempts {
    /// The text form of a list: `seq/sub=attempts` joined by commas, within
    /// [`MAX_HEADS_BYTES`] (the lowest positions are kept).
    pub fn list_to_text(heads: &[HeadAttempts]) -> String {
        let mut text = String::new();
        for head in heads {
            let item = format!("{}={}", head.position, head.attempts);
            if text.len() + item.len() + 1 > MAX_HEADS_BYTES {
                tracing::warn!(
                    kept = text.split(',').count(),
                    failing = heads.len(),
                    "too many failing records to keep their attempt counts; the latest start again"
                );
                break;
            }
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(&item);
        }
        text
    }

    /// Reads [`HeadAttempts::list_to_text`]'s form; `None` if it is not one.
    pub fn list_from_text(text: &str) -> Option<Vec<HeadAttempts>> {
        let mut heads = Vec::new();
        for item in text.split(',').filter(|i| !i.is_empty()) {
            let (position, attempts) = item.split_once('=')?;
            heads.push(HeadAttempts {
                position: PositionRanges::position_from_text(position)?,
                attempts: attempts.parse().ok()?,
            });
        }
        heads.sort_by(|a, b| a.position.cmp(&b.position));
        Some(heads)
    }
}

/// Progress of one ordering unit: a shard (one batch per shard at a time) or
/// one partition key of a shard (ParallelizationFactor above 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last position done (processed, skipped or quarantined), every record
    /// of the unit at or before it being done; `None` before the first commit.
    pub checkpoint: Option<Position>,
    /// Records done past the checkpoint: when a key stops at a failure while
    /// other keys go on (in-batch concurrency), what they did is kept here so
    /// Lambda's retry from the failure skips it. Usually empty.
    pub done: PositionRanges,
    /// The records that failed at the head of their key (of the unit, with one
    /// key at a time), lowest first, with their attempts.
    pub heads: Vec<HeadAttempts>,
    /// What each fan-out destination holds of the unit's records after the checkpoint.
    pub delivered: Delivered,
    /// Bumped by every commit; a commit names the version it read, so a stale
    /// writer cannot overwrite a newer one. 0 when nothing is stored.
    pub version: u64,
}

impl Progress {
    /// Drops done ranges at or below the checkpoint (a version of Shardline
    /// that did not know them may have moved the checkpoint past them); the
    /// stores call it on every read. Failing records at or below the
    /// checkpoint are kept: a windowed function handles checkpointed records
    /// again when Lambda resends them with an older state, and such a record
    /// that fails again must keep its attempts, or it never reaches the
    /// quarantine (the engine drops them from the next commit that does not
    /// fail them again).
    pub fn tidied(mut self) -> Self {
        if let Some(checkpoint) = &self.checkpoint
            && !self.done.is_empty()
        {
            self.done = self.done.after(checkpoint);
        }
        self
    }

    /// The lowest failing record past the checkpoint, if any: what holds the
    /// unit (a record at or below the checkpoint was done once already).
    pub fn head(&self) -> Option<&HeadAttempts> {
        self.heads
            .iter()
            .find(|h| self.checkpoint.as_ref().is_none_or(|cp| h.position > *cp))
    }

    /// Whether the record at `position` is done: at or before the checkpoint,
    /// or done past it.
    pub fn is_done(&self, position: &Position) -> bool {
        self.checkpoint.as_ref().is_some_and(|cp| position <= cp) || self.done.contains(position)
    }

    /// Attempts made on the record at `position` (0 if it is not failing).
    pub fn attempts(&self, position: &Position) -> u32 {
        self.heads
            .iter()
            .find(|h| h.position == *position)
            .map_or(0, |h| h.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::ranges::tests::p;

    #[test]
    fn done_ranges_and_failing_heads_stay_within_their_bounds() {
        let mut done = PositionRanges::new();
        for n in 0..10_000u64 {
            done.insert(p(n * 2, 0), p(n * 2 + 1, 0));
        }
        let (text, dropped) = done.to_text_within(MAX_DONE_BYTES);
        assert!(
            text.len() <= MAX_DONE_BYTES && dropped > 0,
            "{}",
            text.len()
        );
        let kept = PositionRanges::from_text(&text).unwrap();
        assert!(kept.contains(&p(0, 0)), "the earliest ranges are kept");
        assert!(!kept.contains(&p(19_998, 0)), "the latest are dropped");
        assert_eq!(kept.ranges().len() + dropped, 10_000);

        let heads: Vec<HeadAttempts> = (0..5_000u64)
            .map(|n| HeadAttempts {
                position: p(n, 0),
                attempts: 2,
            })
            .collect();
        let text = HeadAttempts::list_to_text(&heads);
        assert!(text.len() <= MAX_HEADS_BYTES, "{}", text.len());
        let kept = HeadAttempts::list_from_text(&text).unwrap();
        assert_eq!(kept[0], heads[0], "the lowest failing records are kept");
        assert!(kept.len() < heads.len() && kept.iter().all(|h| h.attempts == 2));
    }
}

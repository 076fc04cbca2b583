//! How far an ordering unit (a shard, or one partition key of a shard) has got:
//! its checkpoint, what it has done past the checkpoint, the records failing at
//! the head of their keys, and what each destination of a fan-out already holds
//! beyond the checkpoint.
//!
//! Both stores keep a [`Progress`] in the same text shapes ([`Delivered::to_texts`],
//! [`PositionRanges::to_text_within`], [`HeadAttempts::list_to_text`]), so they
//! cannot drift apart.

use std::collections::BTreeMap;

use crate::record::Position;
pub use crate::state::ranges::{PositionRanges, just_after};

/// The most bytes the text form of one unit's [`Delivered`] may take; past it,
/// the ranges of the latest positions are dropped (those records may then be
/// sent twice, never lost).
pub const MAX_DELIVERED_BYTES: usize = 192 * 1024;

/// The most bytes the text form of [`Progress::done`] may take; past it, the
/// ranges of the latest positions are dropped (those records run again on the
/// retry: at-least-once, never lost).
pub const MAX_DONE_BYTES: usize = 128 * 1024;

/// The most bytes the text form of [`Progress::heads`] may take; past it, the
/// latest failing records are dropped (their attempt counts start again).
/// With the two above, well under DynamoDB's 400 KB item limit.
pub const MAX_HEADS_BYTES: usize = 32 * 1024;

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
                    .ranges()
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
    use crate::state::ranges::tests::p;

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

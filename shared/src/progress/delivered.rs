//! What the destinations of a fan-out hold of a unit's records: kept with its
//! progress ([`Delivered`]), and the batch's own view for the handler's
//! flush ([`Deliveries`]), so a retry writes nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::PositionRanges;
use crate::record::Position;

/// The most bytes the text form of one unit's [`Delivered`] may take; past it,
/// the ranges of the latest positions are dropped (those records may then be
/// sent twice, never lost).
pub const MAX_DELIVERED_BYTES: usize = 192 * 1024;

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

/// Per destination, the records of a batch it holds: those written by earlier
/// attempts (from Shardline's state) and those this attempt notes.
///
/// ```
/// use shardline::handler::Deliveries;
/// use shardline::Position;
/// let first = Position::new("1".parse().unwrap(), 0);
/// let deliveries = Deliveries::default();
/// assert!(!deliveries.holds("stream-a", &first));
/// deliveries.note("stream-a", &first);
/// assert!(deliveries.holds("stream-a", &first));
/// assert!(!deliveries.holds("stream-b", &first));
/// ```
#[derive(Debug, Default)]
pub struct Deliveries {
    before: HashMap<String, HashSet<Position>>,
    noted: Mutex<HashMap<String, HashSet<Position>>>,
}

impl Deliveries {
    pub(crate) fn new(before: HashMap<String, HashSet<Position>>) -> Self {
        Deliveries {
            before,
            noted: Mutex::default(),
        }
    }

    /// Whether `destination` holds the record at `position`.
    pub fn holds(&self, destination: &str, position: &Position) -> bool {
        self.before
            .get(destination)
            .is_some_and(|held| held.contains(position))
            || self
                .noted()
                .get(destination)
                .is_some_and(|held| held.contains(position))
    }

    /// Notes that `destination` now holds the record at `position`.
    pub fn note(&self, destination: &str, position: &Position) {
        self.noted()
            .entry(destination.to_owned())
            .or_default()
            .insert(position.clone());
    }

    /// What this attempt noted, per destination.
    pub(crate) fn into_noted(self) -> HashMap<String, HashSet<Position>> {
        self.noted.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn noted(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<Position>>> {
        self.noted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::ranges::tests::p;

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

//! Tumbling windows: each close holds the fold of its window's records.

use std::collections::{BTreeMap, BTreeSet};

use super::Judge;
use crate::world::{Kind, Produced};

impl Judge<'_> {
    /// Each window's close holds its records' fold: those that must be there,
    /// perhaps those a rule may have skipped, in order, each once.
    pub(super) fn windows(&mut self) {
        let Some(length) = self.scenario.features.window else {
            return;
        };
        let mut expected: BTreeMap<(String, u64), Vec<&Produced>> = BTreeMap::new();
        for record in self.world.produced.values() {
            let start = (record.arrival as u64) / length * length;
            expected
                .entry((record.shard.clone(), start))
                .or_default()
                .push(record);
        }
        for records in expected.values_mut() {
            records.sort_by(|a, b| a.position.cmp(&b.position));
        }
        for close in &self.world.closes {
            let Some(start) = window_start(&close.window) else {
                self.violation(format!("a close with a bad window start {}", close.window));
                continue;
            };
            let records = expected
                .get(&(close.shard.clone(), start))
                .cloned()
                .unwrap_or_default();
            self.window_fold(close, &records);
        }
    }

    fn window_fold(&mut self, close: &crate::world::Close, records: &[&Produced]) {
        let mut wanted = Vec::new();
        let mut optional = BTreeSet::new();
        for record in records {
            let id = record.payload.id;
            // A record quarantined by an invocation that then failed comes
            // again with the older state; if it goes well then, it is folded
            // too (the window module's docs say so).
            let refolded = self.quarantined.contains_key(&id)
                && self.world.exposures.get(&id).is_some_and(|n| *n > 0);
            let gone = self.quarantined.contains_key(&id) || self.discarded(record);
            if gone && !refolded {
                continue;
            }
            if refolded || record.payload.kind != Kind::Healthy || self.may_skip(record) {
                optional.insert(id);
            } else {
                wanted.push(id);
            }
        }
        let folded: Vec<u64> = close
            .ids
            .iter()
            .copied()
            .filter(|id| !optional.contains(id))
            .collect();
        let extra: Vec<u64> = close
            .ids
            .iter()
            .copied()
            .filter(|id| !optional.contains(id) && !wanted.contains(id))
            .collect();
        if folded != wanted || !extra.is_empty() {
            self.violation(format!(
                "window {} of {}: the close folded {:?}, the fold of its records is {:?}",
                close.window, close.shard, close.ids, wanted
            ));
        }
    }
}

/// The epoch seconds of a window's start as the event writes it
/// (`2020-12-09T07:04:00Z`).
fn window_start(text: &str) -> Option<u64> {
    let at =
        aws_smithy_types::DateTime::from_str(text, aws_smithy_types::date_time::Format::DateTime)
            .ok()?;
    u64::try_from(at.secs()).ok()
}

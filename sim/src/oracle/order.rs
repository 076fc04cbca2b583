//! The order checks: each key's records in sequence order, no handler run
//! again after a clean commit, no child shard before its parents.

use std::collections::BTreeMap;

use super::Judge;
use crate::world::Produced;

impl Judge<'_> {
    /// Landed records of each ordering key in sequence order (the stream's
    /// order; records the operator put back are out of it by design).
    pub(super) fn order(&mut self) {
        let operator_from = self.world.operator_from.unwrap_or(u64::MAX);
        let across_shards = self.scenario.features.guard;
        let mut by_key: BTreeMap<(String, String), Vec<(u64, &Produced)>> = BTreeMap::new();
        for (id, order) in &self.world.applied {
            let Some(record) = self.world.produced.get(id) else {
                continue;
            };
            if *order >= operator_from {
                continue;
            }
            let shard = if across_shards {
                String::new()
            } else {
                record.shard.clone()
            };
            by_key
                .entry((record.outer_key.clone(), shard))
                .or_default()
                .push((*order, record));
        }
        for ((key, _), mut landed) in by_key {
            landed.sort_by_key(|(order, _)| *order);
            for pair in landed.windows(2) {
                let (a, b) = (pair[0].1, pair[1].1);
                if b.position < a.position && !self.decided_otherwise(b.payload.id, a.payload.id) {
                    self.violation(format!(
                        "key {key}: record {} ({} {}) landed after record {} ({} {})",
                        b.payload.id, b.shard, b.position, a.payload.id, a.shard, a.position
                    ));
                }
            }
        }
    }

    /// Whether two attempts decided `earlier` otherwise: an invocation that
    /// did not commit cleanly (it died, timed out, was superseded, or was a
    /// duplicate delivery) applied `later` after failing `earlier` for good
    /// (out of attempts: quarantined, so its key went on) while another let
    /// `earlier` succeed, or a duplicate delivery of an older batch applied
    /// `earlier` late. Each attempt keeps its key's order; two together cannot
    /// (the README says so under Ordering and failures).
    pub(super) fn decided_otherwise(&self, earlier: u64, later: u64) -> bool {
        let invocations = &self.world.invocations;
        self.by_duplicate(earlier)
            || invocations.values().any(|log| {
                !log.clean
                    && log.handled.contains(&later)
                    && log.called.contains(&earlier)
                    && !log.handled.contains(&earlier)
            })
    }

    /// Whether a duplicate delivery of Lambda's landed `id`.
    fn by_duplicate(&self, id: u64) -> bool {
        self.landed_by(id).is_some_and(|log| log.duplicate)
    }

    /// Whether a duplicate delivery of Lambda's ran `id`'s handler, whoever
    /// landed it: its flush writes `id` to a fan-out's destinations when it
    /// runs, which may be after newer batches (seed 173088: the first
    /// delivery's flush failed one destination, Lambda discarded the batch
    /// at its retry limit, and the late second delivery wrote that
    /// destination's copy after the key's later records).
    pub(super) fn handled_by_duplicate(&self, id: u64) -> bool {
        self.world
            .invocations
            .values()
            .any(|log| log.duplicate && log.handled.contains(&id))
    }

    /// Whether a duplicate delivery whose commit did not land landed `id`.
    fn by_lost_duplicate(&self, id: u64) -> bool {
        self.landed_by(id)
            .is_some_and(|log| log.duplicate && !log.clean)
    }

    /// The invocation whose handler landed `id`.
    pub(super) fn landed_by(&self, id: u64) -> Option<&crate::world::InvocationLog> {
        self.world
            .applied_by
            .get(&id)
            .and_then(|n| self.world.invocations.get(n))
    }

    /// No record's handler runs again in an invocation that started after
    /// one handled it and committed cleanly (a fan-out re-runs a stopped
    /// key's handled records by design; duplicates deliveries are Lambda's).
    pub(super) fn reruns(&mut self) {
        if self.scenario.features.fan_out.is_some() {
            return;
        }
        let invocations = &self.world.invocations;
        let mut committed: BTreeMap<u64, shardline::time::Instant> = BTreeMap::new();
        let windows = self.scenario.features.window.is_some();
        for log in invocations.values().filter(|l| l.clean) {
            let Some(ended) = log.ended else { continue };
            for id in &log.handled {
                // A window's records from the retry point on come again (for
                // a KPL aggregate, all of its user records: Lambda only takes
                // an outer sequence number) and fold into the state returned.
                let resent = windows
                    && self
                        .world
                        .produced
                        .get(id)
                        .is_some_and(|p| log.asked_again(&p.position));
                if resent {
                    continue;
                }
                committed
                    .entry(*id)
                    .and_modify(|at| *at = (*at).min(ended))
                    .or_insert(ended);
            }
        }
        for (number, log) in invocations.iter().filter(|(_, l)| !l.duplicate) {
            for id in &log.called {
                if committed.get(id).is_some_and(|at| log.started > *at)
                    && !self.world.operated.contains(id)
                {
                    self.violation(format!(
                        "record {id} handled again by invocation {number} after a clean commit"
                    ));
                }
            }
        }
    }

    /// With the guard, no record of a child shard landed before its parents' last.
    ///
    /// A record a duplicate delivery landed without its commit landing is out
    /// of it: Lambda's second delivery of a parent's batch may run at once
    /// with the first and land, late, a record the first decided otherwise
    /// (quarantined), which no guard can hold (the README, Retries that
    /// decide otherwise).
    pub(super) fn children_after_parents(&mut self, lineage: &[(String, Vec<String>)]) {
        if !self.scenario.features.guard || self.scenario.features.window.is_some() {
            return;
        }
        let operator_from = self.world.operator_from.unwrap_or(u64::MAX);
        let mut span: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (id, order) in &self.world.applied {
            let Some(record) = self.world.produced.get(id) else {
                continue;
            };
            if *order >= operator_from || self.by_lost_duplicate(*id) {
                continue;
            }
            let entry = span
                .entry(record.shard.as_str())
                .or_insert((*order, *order));
            entry.0 = entry.0.min(*order);
            entry.1 = entry.1.max(*order);
        }
        for (child, parents) in lineage {
            let Some(&(first, _)) = span.get(child.as_str()) else {
                continue;
            };
            for parent in parents {
                if let Some(&(_, last)) = span.get(parent.as_str())
                    && last > first
                {
                    self.violation(format!(
                        "child shard {child} had a record applied before parent {parent}'s last"
                    ));
                }
            }
        }
    }
}

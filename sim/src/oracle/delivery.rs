//! The fan-out's destinations: every record there, copies only under faults
//! that allow them, each key in order where the README promises it.

use std::collections::{BTreeMap, BTreeSet};

use shardline::ProgressMode;
use shardline::sink::DeliveryOrder;

use super::{Held, Judge};
use crate::world::Produced;

impl Judge<'_> {
    /// Every record landed and neither quarantined nor discarded by Lambda
    /// (after its handler ran) is at every destination;
    /// copies counted; key order where the README promises it. Returns the
    /// copies beyond the first.
    pub(super) fn destinations(&mut self, held: &Held) -> u64 {
        let Some(spec) = self.scenario.features.fan_out else {
            return 0;
        };
        // Each user key in order where the README promises it: ordered or
        // aggregated delivery, when the source orders by that key (no KPL, or
        // a shard's records one at a time in one slot: Lambda routes a KPL
        // record by its aggregate's key), or when nothing disturbed the run
        // (then a shard's batches were done whole, one after the other, and
        // each flush writes in source order).
        let workload = &self.scenario.workload;
        let one_slot = self.scenario.mapping.parallelization == 1;
        let features = &self.scenario.features;
        // The engine runs a shard's records one at a time in one line only
        // at concurrency 1 with progress per shard (else one line per key).
        let one_at_a_time = features.concurrency == 1 && features.progress == ProgressMode::Shard;
        let by_user_key = workload.kpl_max == 0 || (one_at_a_time && one_slot);
        let whole = !self.world.disturbed && one_slot;
        let ordered =
            (by_user_key || whole) && (spec.order == DeliveryOrder::Ordered || spec.aggregate);
        let mut copies = 0;
        for (name, shards) in held {
            let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
            for ids in shards {
                for id in ids {
                    *seen.entry(*id).or_default() += 1;
                }
                if ordered {
                    self.destination_order(name, ids);
                }
            }
            for (id, count) in &seen {
                if *count > 1 && !self.world.operated.contains(id) {
                    copies += u64::from(count - 1);
                }
            }
            for id in self.world.applied.keys() {
                let discarded = self
                    .world
                    .produced
                    .get(id)
                    .is_some_and(|r| self.discarded(r));
                if !seen.contains_key(id)
                    && !self.quarantined.contains_key(id)
                    && !discarded
                    && !self.skipped_on_its_retry(*id)
                {
                    self.violation(format!(
                        "record {id} landed but destination {name} lacks it"
                    ));
                }
            }
        }
        if copies > 0 && !self.scenario.faults.may_duplicate_puts() {
            self.violation(format!(
                "{copies} destination copies without a fault that could make them"
            ));
        }
        copies
    }

    /// Whether `id` landed in an attempt that left it for Lambda's retry (the
    /// attempt did not commit, or answered to retry from it or before it:
    /// its flush did not write it) and a skip rule may have taken it on the
    /// retry (stale by the end, or a producer duplicate of a record that
    /// landed or is quarantined): the rule acknowledges it without the
    /// handler or the flush (README, Configuration and Dedup keys).
    fn skipped_on_its_retry(&self, id: u64) -> bool {
        let Some(record) = self.world.produced.get(&id) else {
            return false;
        };
        let skippable = self.may_skip(record);
        let left = self
            .landed_by(id)
            .is_some_and(|log| !log.clean || log.asked_again(&record.position));
        skippable && left
    }

    /// The first copies of each user key's records at one destination shard
    /// in sequence order. Without the guard, a child shard may run before its
    /// parents are done: only records of one source shard are compared then
    /// (so too for a KPL source).
    fn destination_order(&mut self, name: &str, ids: &[u64]) {
        // A KPL user key can sit in aggregates of keys routed to different
        // source shards, which run side by side.
        let across_shards = self.scenario.features.guard && self.scenario.workload.kpl_max == 0;
        let mut first: BTreeSet<u64> = BTreeSet::new();
        let mut last: BTreeMap<(&str, &str), &Produced> = BTreeMap::new();
        for id in ids {
            if !first.insert(*id) || self.world.operated.contains(id) {
                continue;
            }
            let Some(record) = self.world.produced.get(id) else {
                continue;
            };
            let shard = if across_shards {
                ""
            } else {
                record.shard.as_str()
            };
            let key = (record.user_key.as_str(), shard);
            // Two attempts that decided a record otherwise (the README's
            // "Retries that decide otherwise") write it after its key's
            // later records, as they apply it after them; so does a
            // duplicate delivery that ran its handler, whoever applied it.
            if let Some(before) = last.get(&key)
                && record.position < before.position
                && !self.decided_otherwise(record.payload.id, before.payload.id)
                && !self.handled_by_duplicate(record.payload.id)
            {
                self.violation(format!(
                    "destination {name}: key {} has record {} after record {}",
                    record.user_key, record.payload.id, before.payload.id
                ));
            }
            last.insert(key, record);
        }
    }
}

//! The oracle: what a run must have come to, checked from what landed (the
//! world's effects, the quarantine, the destinations, the windows closed),
//! never from what the code said it did.
//!
//! - every record's effect landed exactly once, or it is quarantined with its
//!   exact payload, skipped by a rule it meets, or discarded by Lambda; a
//!   healthy record is only quarantined after as many faults as attempts;
//! - each ordering key's records landed in sequence order, and no child
//!   shard's record before its parents' last one (with the guard);
//! - no record handled again after an invocation that committed it cleanly
//!   (at-least-once execution only where the README allows it);
//! - each destination holds every record once, in key order where promised;
//! - each window's close holds the fold of its records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use shardline::ProgressMode;
use shardline::decode::kpl::{Deaggregated, deaggregate};
use shardline::quarantine::{QuarantineReason, QuarantinedRecord};
use shardline::sink::DeliveryOrder;

use crate::run::{CONSUMER, Setup};
use crate::scenario::Scenario;
use crate::world::{Kind, Payload, Produced, Record};

/// What a run came to.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// What broke a promise.
    pub violations: Vec<String>,
    /// What happened, counted.
    pub stats: Stats,
    /// The invocations, one line each (for a failing run).
    pub story: Vec<String>,
}

/// What a run did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// User records put.
    pub records: u64,
    /// Invocations of the function (duplicates included).
    pub invocations: u64,
    /// Records whose effect landed.
    pub applied: u64,
    /// Records quarantined at the end.
    pub quarantined: u64,
    /// Records Lambda discarded.
    pub discarded: u64,
    /// Handler calls beyond the first per record.
    pub reruns: u64,
    /// Copies at destinations beyond the first (a put whose answer was lost).
    pub duplicates: u64,
}

impl Verdict {
    /// A run that could not be judged.
    pub fn fail(why: impl Into<String>) -> Self {
        Verdict {
            violations: vec![why.into()],
            stats: Stats::default(),
            story: Vec::new(),
        }
    }

    /// Whether every promise held.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records, {} invocations, {} applied, {} quarantined, {} discarded, {} handler re-runs, {} destination duplicates",
            self.records,
            self.invocations,
            self.applied,
            self.quarantined,
            self.discarded,
            self.reruns,
            self.duplicates
        )
    }
}

/// Judges the run of `setup`; its story is told on a violation, or always
/// with `trace`.
pub async fn judge(setup: &Setup, trace: bool) -> Verdict {
    let quarantine = match setup.quarantine.quarantined(CONSUMER).await {
        Ok(records) => records,
        Err(error) => return Verdict::fail(format!("the quarantine cannot be read: {error}")),
    };
    let destinations = read_destinations(setup);
    let lineage: Vec<(String, Vec<String>)> = setup
        .kinesis
        .shards(crate::run::SOURCE)
        .unwrap_or_default()
        .into_iter()
        .map(|shard| {
            let parents = shard.parents();
            (shard.shard_id, parents)
        })
        .collect();
    let world = setup.world.lock();
    let landed = if setup.scenario.features.window.is_some() {
        world
            .closes
            .iter()
            .flat_map(|c| c.ids.iter().copied())
            .collect()
    } else {
        world.applied.keys().copied().collect()
    };
    let mut judge = Judge {
        scenario: &setup.scenario,
        world: &world,
        landed,
        quarantined: BTreeMap::new(),
        violations: Vec::new(),
        end: shardline::sample::epoch_seconds(shardline::time::now()),
    };
    judge.quarantine(&quarantine);
    judge.accounting();
    judge.order();
    judge.reruns();
    judge.children_after_parents(&lineage);
    let duplicates = judge.destinations(&destinations);
    judge.windows();
    let stats = Stats {
        records: world.produced.len() as u64,
        invocations: world.invocations.len() as u64,
        applied: world.applied.len() as u64,
        quarantined: quarantine.len() as u64,
        discarded: world.discarded.len() as u64,
        reruns: world
            .calls
            .values()
            .map(|c| u64::from(c.saturating_sub(1)))
            .sum(),
        duplicates,
    };
    let story = if judge.violations.is_empty() && !trace {
        Vec::new()
    } else {
        story(&world)
    };
    Verdict {
        violations: judge.violations,
        stats,
        story,
    }
}

/// Per destination, the payload ids it holds, per destination shard in order.
type Held = Vec<(String, Vec<Vec<u64>>)>;

fn read_destinations(setup: &Setup) -> Held {
    setup
        .destinations
        .iter()
        .map(|name| {
            let shards = setup.kinesis.stream_records(name).unwrap_or_default();
            let ids = shards
                .values()
                .map(|records| {
                    records
                        .iter()
                        .flat_map(|r| match deaggregate(&r.data) {
                            Deaggregated::Aggregate(records) => records
                                .iter()
                                .filter_map(|u| Payload::decode(&u.data).map(|p| p.id))
                                .collect::<Vec<_>>(),
                            _ => Payload::decode(&r.data).map(|p| p.id).into_iter().collect(),
                        })
                        .collect()
                })
                .collect();
            (name.clone(), ids)
        })
        .collect()
}

struct Judge<'a> {
    scenario: &'a Scenario,
    world: &'a Record,
    /// Records whose effect landed (with windows: folded into a close).
    landed: BTreeSet<u64>,
    /// Quarantined record ids, with their reason.
    quarantined: BTreeMap<u64, QuarantineReason>,
    violations: Vec<String>,
    /// The run's end, epoch seconds.
    end: f64,
}

impl Judge<'_> {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    /// Every entry is a record put, with its exact payload; a healthy one met
    /// as many faults as attempts it needs.
    fn quarantine(&mut self, entries: &[QuarantinedRecord]) {
        for entry in entries {
            let Some(position) = entry.position() else {
                self.violation(format!(
                    "quarantine entry {} has no position",
                    entry.sequence_number
                ));
                continue;
            };
            let Some(produced) = self.world.at(&entry.shard_id, &position) else {
                self.violation(format!(
                    "quarantine entry {}/{position} was never put",
                    entry.shard_id
                ));
                continue;
            };
            let id = produced.payload.id;
            if entry.data != produced.data {
                self.violation(format!(
                    "record {id} is quarantined without its exact payload"
                ));
            }
            if self.quarantined.insert(id, entry.reason).is_some() {
                self.violation(format!("record {id} is in the quarantine twice"));
            }
            if produced.payload.kind == Kind::Healthy {
                let met = self.world.exposures.get(&id).copied().unwrap_or(0);
                let needs = match entry.reason {
                    QuarantineReason::Exhausted => self.scenario.features.max_attempts,
                    _ => u32::MAX,
                };
                if met < needs {
                    self.violation(format!(
                        "healthy record {id} is quarantined ({}, {} attempts: {}) after {met} faults",
                        entry.reason.name(),
                        entry.attempts,
                        entry.detail
                    ));
                }
            }
        }
    }

    /// Whether `record` may have been skipped by a rule: stale by the end, or
    /// a producer duplicate of a record that landed or is quarantined.
    fn may_skip(&self, record: &Produced) -> bool {
        let features = &self.scenario.features;
        let stale = features
            .max_age
            .is_some_and(|age| record.arrival + age.as_secs_f64() < self.end);
        let duplicate = features.dedup
            && self.world.produced.values().any(|other| {
                other.payload.id != record.payload.id
                    && other.payload.dedup == record.payload.dedup
                    && (self.landed.contains(&other.payload.id)
                        || self.quarantined.contains_key(&other.payload.id))
            });
        stale || duplicate
    }

    fn discarded(&self, record: &Produced) -> bool {
        self.world.discarded.contains(&record.payload.id)
    }

    /// Each record landed (in a window: was folded into a close), is
    /// quarantined, was skipped by a rule, or was discarded by Lambda (a
    /// window's result, too, past its retries); a poison record never landed.
    fn accounting(&mut self) {
        let windows = self.scenario.features.window.is_some();
        let dropped_windows = windows && self.scenario.mapping.retry_limit.is_some();
        let mended = self.world.mended;
        for (id, record) in &self.world.produced {
            let landed = self.landed.contains(id);
            let quarantined = self.quarantined.contains_key(id);
            if landed && record.payload.kind != Kind::Healthy && !mended {
                self.violation(format!("poison record {id} landed"));
            }
            let accounted = landed
                || quarantined
                || dropped_windows
                || self.discarded(record)
                || self.may_skip(record);
            if !accounted {
                self.violation(format!(
                    "record {id} ({:?}, key {}, {} {}) is lost: not applied, not quarantined, not discarded",
                    record.payload.kind, record.user_key, record.shard, record.position
                ));
            }
        }
    }

    /// Landed records of each ordering key in sequence order (the stream's
    /// order; records the operator put back are out of it by design).
    fn order(&mut self) {
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
    fn decided_otherwise(&self, earlier: u64, later: u64) -> bool {
        let invocations = &self.world.invocations;
        let by_duplicate = self
            .world
            .applied_by
            .get(&earlier)
            .and_then(|n| invocations.get(n))
            .is_some_and(|log| log.duplicate);
        by_duplicate
            || invocations.values().any(|log| {
                !log.clean
                    && log.handled.contains(&later)
                    && log.called.contains(&earlier)
                    && !log.handled.contains(&earlier)
            })
    }

    /// No record's handler runs again in an invocation that started after
    /// one handled it and committed cleanly (a fan-out re-runs a stopped
    /// key's handled records by design; duplicates deliveries are Lambda's).
    fn reruns(&mut self) {
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
                    && log.retry_from.as_ref().is_some_and(|from| {
                        self.world
                            .produced
                            .get(id)
                            .is_some_and(|p| p.position.sequence.to_string() >= *from)
                    });
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
    fn children_after_parents(&mut self, lineage: &[(String, Vec<String>)]) {
        if !self.scenario.features.guard || self.scenario.features.window.is_some() {
            return;
        }
        let operator_from = self.world.operator_from.unwrap_or(u64::MAX);
        let mut span: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (id, order) in &self.world.applied {
            let Some(record) = self.world.produced.get(id) else {
                continue;
            };
            if *order >= operator_from {
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

    /// Every record landed and neither quarantined nor discarded by Lambda
    /// (after its handler ran) is at every destination;
    /// copies counted; key order where the README promises it. Returns the
    /// copies beyond the first.
    fn destinations(&mut self, held: &Held) -> u64 {
        let Some(spec) = self.scenario.features.fan_out else {
            return 0;
        };
        // Each user key in order where the README promises it: ordered or
        // aggregated delivery, when the source orders by that key (no KPL, or
        // a shard's records one at a time in one lane: Lambda routes a KPL
        // record by its aggregate's key), or when nothing disturbed the run
        // (then a shard's batches were done whole, one after the other, and
        // each flush writes in source order).
        let workload = &self.scenario.workload;
        let one_lane = self.scenario.mapping.parallelization == 1;
        let features = &self.scenario.features;
        // The engine runs a shard's records one at a time in one line only
        // at concurrency 1 with progress per shard (else one line per key).
        let one_at_a_time = features.concurrency == 1 && features.progress == ProgressMode::Shard;
        let by_user_key = workload.kpl_max == 0 || (one_at_a_time && one_lane);
        let whole = !self.world.disturbed && one_lane;
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
                if !seen.contains_key(id) && !self.quarantined.contains_key(id) && !discarded {
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
            if let Some(before) = last.get(&key)
                && record.position < before.position
            {
                self.violation(format!(
                    "destination {name}: key {} has record {} after record {}",
                    record.user_key, record.payload.id, before.payload.id
                ));
            }
            last.insert(key, record);
        }
    }

    /// Each window's close holds its records' fold: those that must be there,
    /// perhaps those a rule may have skipped, in order, each once.
    fn windows(&mut self) {
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

/// One line per invocation: its shard, the records it called the handler on
/// (and which of them went well), what it answered.
fn story(world: &Record) -> Vec<String> {
    let mut lines: Vec<String> = world
        .invocations
        .iter()
        .map(|(n, log)| {
            format!(
                "#{n} {}{} called {:?} handled {:?} cut off {:?} clean {} retry from {:?}",
                log.shard,
                if log.duplicate {
                    " (duplicate delivery)"
                } else {
                    ""
                },
                log.called,
                log.handled,
                log.cut_off.iter().map(|c| c.2).collect::<Vec<_>>(),
                log.clean,
                log.retry_from
            )
        })
        .collect();
    lines.extend(
        world
            .closes
            .iter()
            .map(|c| format!("close {} {}: {:?}", c.shard, c.window, c.ids)),
    );
    lines
}

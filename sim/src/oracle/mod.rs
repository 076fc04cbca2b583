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

use shardline::decode::kpl::{Deaggregated, deaggregate};
use shardline::quarantine::{QuarantineReason, QuarantinedRecord};

use crate::run::{CONSUMER, Setup};
use crate::scenario::Scenario;
mod delivery;
mod order;
mod windows;

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
    /// Invocations that died with their process when another of its
    /// invocations crashed (Lambda Managed Instances).
    pub killed_with_process: u64,
    /// Invocations that timed out on Lambda Managed Instances and ran on.
    pub ran_on_after_timeout: u64,
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
            "{} records, {} invocations, {} applied, {} quarantined, {} discarded, {} handler re-runs, {} destination duplicates, {} killed with their process, {} ran on after a timeout",
            self.records,
            self.invocations,
            self.applied,
            self.quarantined,
            self.discarded,
            self.reruns,
            self.duplicates,
            self.killed_with_process,
            self.ran_on_after_timeout
        )
    }
}

/// Judges the run of `setup`; its story is told on a violation, or always
/// with `trace`.
pub async fn judge(setup: &Setup, trace: bool) -> Verdict {
    let quarantine = match setup.quarantine.list_quarantined(CONSUMER).await {
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
        killed_with_process: world.killed_with_process,
        ran_on_after_timeout: world.ran_on_after_timeout,
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
pub(super) type Held = Vec<(String, Vec<Vec<u64>>)>;

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

pub(super) struct Judge<'a> {
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
    pub(super) fn violation(&mut self, what: String) {
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
    pub(super) fn may_skip(&self, record: &Produced) -> bool {
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

    pub(super) fn discarded(&self, record: &Produced) -> bool {
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
}

/// One line per invocation: its shard, the records it called the handler on
/// (and which of them went well), what it answered.
pub fn story(world: &Record) -> Vec<String> {
    let mut lines: Vec<String> = world
        .invocations
        .iter()
        .map(|(n, log)| {
            format!(
                "#{n} {}{} delivered {:?} called {:?} handled {:?} cut off {:?} clean {} retry from {:?}",
                log.shard,
                if log.duplicate {
                    " (duplicate delivery)"
                } else {
                    ""
                },
                log.delivered,
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

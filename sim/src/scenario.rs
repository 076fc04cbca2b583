//! A scenario: everything one simulated run draws from its seed, the
//! function's features (the feature matrix), the stream's records and
//! reshards, Lambda's mapping settings and the faults.
//!
//! Every field is plain data, so a failing scenario prints as it is, and
//! [`crate::shrink`] can make it smaller field by field while it still fails.

use std::fmt;
use std::time::Duration;

use fastrand::Rng;
use shardline::ProgressMode;
use shardline::sink::DeliveryOrder;
use shardline_esm::MappingConfig;

/// Where the function keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite in a scratch folder, behind a store that injects faults.
    Embedded,
    /// The DynamoDB store over the simulated DynamoDB, faults at the service.
    DynamoDb,
}

/// The fan-out of a scenario: copies to simulated Kinesis streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutSpec {
    /// Destination streams (1..3).
    pub destinations: usize,
    /// Their delivery order.
    pub order: DeliveryOrder,
    /// KPL aggregates per destination shard.
    pub aggregate: bool,
    /// Shards per destination.
    pub shards: u32,
    /// The largest record (and aggregate) a destination takes: small ones
    /// make several aggregates per destination shard in one flush.
    pub max_record_bytes: usize,
}

/// What the function does: its features.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Progress per shard or per partition key.
    pub progress: ProgressMode,
    /// Records in flight at once within a batch.
    pub concurrency: usize,
    /// Attempts before a retryable failure is quarantined.
    pub max_attempts: u32,
    /// Producer duplicates skipped by a dedup key from the payload.
    pub dedup: bool,
    /// Records older than this are skipped (the engine's stale rule).
    pub max_age: Option<Duration>,
    /// Tumbling windows of this many seconds (the function folds a state).
    pub window: Option<u64>,
    /// A fan-out instead of the plain handler.
    pub fan_out: Option<FanOutSpec>,
    /// The parent-shard guard.
    pub guard: bool,
    /// The state store.
    pub store: StoreKind,
    /// Time kept back for the commit (ms).
    pub time_reserve_ms: u64,
}

/// The records the producer puts.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Records (user records: KPL ones counted one by one).
    pub records: usize,
    /// Distinct user keys; a few keys take most records.
    pub keys: usize,
    /// Put user records in KPL aggregates of up to this many (0: plain).
    pub kpl_max: usize,
    /// Share of poison records that fail for good.
    pub permanent: f64,
    /// Share of poison records that fail retryably, always.
    pub retryable: f64,
    /// Share of records whose handler call hangs, always.
    pub hang: f64,
    /// Share of records put twice by the producer (a new sequence number).
    pub duplicates: f64,
    /// Records put this long before the function starts reading (a backlog:
    /// old, so the age rules have something to skip).
    pub backlog: usize,
    /// How long the backlog waits before the mapping starts.
    pub backlog_age: Duration,
    /// Time between puts after the backlog.
    pub gap: Duration,
}

/// A reshard of the source stream: after this many records are put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reshard {
    /// Split the shard at this index of the open shards.
    Split { after: usize, shard: usize },
    /// Merge the shard at this index with its right neighbour.
    Merge { after: usize, shard: usize },
}

/// What goes wrong, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Invocations whose process dies at some await point.
    pub crash: f64,
    /// Invocations Lambda also delivers to a second process (a duplicate
    /// delivery, running beside the slot's later invocations).
    pub duplicate_delivery: f64,
    /// The function's timeout (Lambda's deadline).
    pub timeout: Duration,
    /// Handler calls of healthy records that fail retryably.
    pub handler_transient: f64,
    /// Handler calls slower than the rest (a slow spell).
    pub slow: f64,
    /// State requests failed before they apply.
    pub store_fail: f64,
    /// State writes applied whose answer is lost.
    pub store_lose: f64,
    /// Transactions cancelled on one item (DynamoDB).
    pub store_cancel: f64,
    /// PutRecords entries failed.
    pub entry_fail: f64,
    /// PutRecords requests failed whole, or answered late, or lost.
    pub put_fail: f64,
    /// The guard's reads of the source stream failed.
    pub source_fail: f64,
}

impl Faults {
    /// No fault at all (the drain phase).
    pub fn none(timeout: Duration) -> Self {
        Faults {
            crash: 0.0,
            duplicate_delivery: 0.0,
            timeout,
            handler_transient: 0.0,
            slow: 0.0,
            store_fail: 0.0,
            store_lose: 0.0,
            store_cancel: 0.0,
            entry_fail: 0.0,
            put_fail: 0.0,
            source_fail: 0.0,
        }
    }

    /// Whether a fault may write something twice to a destination, as the
    /// README allows: a put whose answer is lost or late, a process that dies
    /// after a put, a commit the store refuses after the flush (the batch goes
    /// back to Lambda), a duplicate delivery.
    pub fn may_duplicate_puts(&self) -> bool {
        let store = self.store_fail + self.store_lose + self.store_cancel;
        self.crash > 0.0 || self.put_fail > 0.0 || self.duplicate_delivery > 0.0 || store > 0.0
    }
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Drives every random choice of the run.
    pub seed: u64,
    /// Shards of the source stream at the start (1..8).
    pub shards: u32,
    /// The function.
    pub features: Features,
    /// The records.
    pub workload: Workload,
    /// Reshards during the run.
    pub reshards: Vec<Reshard>,
    /// Lambda's mapping.
    pub mapping: MappingConfig,
    /// Lambda starts a child shard at once, before its parents are done (the
    /// guard must hold it).
    pub children_at_once: bool,
    /// Faults while the producer puts.
    pub faults: Faults,
    /// A replay and a redrive of the quarantine during the drain.
    pub operator: bool,
    /// Invocations one function process serves at once: Lambda Managed
    /// Instances' `PerExecutionEnvironmentMaxConcurrency` (1: classic Lambda).
    /// A process that crashes or times out fails every one it has in flight.
    pub environment_concurrency: u32,
}

impl Scenario {
    /// Invocations the drain may spend on the README's guard caveat: with a record
    /// age on the mapping, children wait until Lambda discards their records
    /// too, in every slot of every shard, one generation after another. A held
    /// invocation ends when the guard's next poll (up to 5 s) would not leave
    /// the time reserve: it lasts at least its timeout less both, and half a
    /// second (the first poll) when that is less.
    pub fn held_by_age(&self) -> u64 {
        let scenario = self;
        let Some(age) = scenario.mapping.max_record_age else {
            return 0;
        };
        if !scenario.features.guard || scenario.reshards.is_empty() {
            return 0;
        }
        let shards = u64::from(scenario.shards) + 2 * scenario.reshards.len() as u64;
        let slots = shards * scenario.mapping.parallelization as u64;
        let held_ms = (scenario.faults.timeout.as_millis() as u64)
            .saturating_sub(scenario.features.time_reserve_ms + 5_000)
            .max(500);
        let generations = scenario.reshards.len() as u64;
        slots * generations * (age.as_millis() as u64 / held_ms + 2)
    }

    /// The scenario of `seed`.
    pub fn draw(seed: u64) -> Scenario {
        let mut rng = Rng::with_seed(seed);
        let features = draw_features(&mut rng);
        let shards = if rng.u8(..4) == 0 {
            rng.u32(2..=8)
        } else {
            rng.u32(1..=3)
        };
        let workload = draw_workload(&mut rng);
        let reshards = draw_reshards(&mut rng, workload.records, shards);
        let mapping = draw_mapping(&mut rng, &features);
        let faults = draw_faults(&mut rng, &features);
        Scenario {
            seed,
            shards,
            features,
            workload,
            reshards,
            mapping,
            children_at_once: rng.bool(),
            faults,
            operator: rng.u8(..4) == 0,
            // Drawn last: the draws before it stay as they were for a seed.
            environment_concurrency: if rng.u8(..4) == 0 {
                pick(&mut rng, &[2, 4, 8])
            } else {
                1
            },
        }
    }

    /// The command that replays it.
    pub fn replay_command(&self) -> String {
        format!("cargo run -p shardline-sim -- run --seed {}", self.seed)
    }
}

fn pick<T: Copy>(rng: &mut Rng, choices: &[T]) -> T {
    choices[rng.usize(..choices.len())]
}

fn draw_features(rng: &mut Rng) -> Features {
    let window = (rng.u8(..5) == 0).then(|| pick(rng, &[5, 30, 60]));
    let fan_out = (window.is_none() && rng.u8(..3) == 0).then(|| FanOutSpec {
        destinations: rng.usize(1..=3),
        order: pick(rng, &[DeliveryOrder::Ordered, DeliveryOrder::Throughput]),
        aggregate: rng.bool(),
        shards: rng.u32(1..=3),
        max_record_bytes: pick(rng, &[1024 * 1024, 200, 90]),
    });
    let progress = if window.is_none() && rng.u8(..3) == 0 {
        ProgressMode::PartitionKey
    } else {
        ProgressMode::Shard
    };
    Features {
        progress,
        concurrency: pick(rng, &[1, 1, 2, 4, 8, 16, 64]),
        max_attempts: rng.u32(1..=4),
        dedup: rng.u8(..4) == 0,
        max_age: (rng.u8(..5) == 0).then(|| Duration::from_secs(pick(rng, &[30, 120]))),
        window,
        fan_out,
        guard: rng.u8(..8) != 0,
        store: pick(rng, &[StoreKind::Embedded, StoreKind::DynamoDb]),
        time_reserve_ms: pick(rng, &[200, 500, 1_000]),
    }
}

fn draw_workload(rng: &mut Rng) -> Workload {
    let records = rng.usize(5..=60);
    let poison = rng.u8(..3) != 0;
    let share = |rng: &mut Rng| if poison { rng.f64() * 0.08 } else { 0.0 };
    Workload {
        records,
        keys: rng.usize(1..=12),
        kpl_max: if rng.u8(..4) == 0 {
            rng.usize(2..=6)
        } else {
            0
        },
        permanent: share(rng),
        retryable: share(rng),
        hang: if rng.u8(..4) == 0 { share(rng) } else { 0.0 },
        duplicates: if rng.u8(..4) == 0 {
            rng.f64() * 0.2
        } else {
            0.0
        },
        backlog: if rng.bool() {
            rng.usize(0..=records)
        } else {
            0
        },
        backlog_age: Duration::from_secs(pick(rng, &[0, 10, 90, 200])),
        gap: Duration::from_millis(pick(rng, &[0, 20, 200, 1_000])),
    }
}

fn draw_reshards(rng: &mut Rng, records: usize, shards: u32) -> Vec<Reshard> {
    let mut reshards = Vec::new();
    let mut open = shards as usize;
    for _ in 0..rng.usize(0..=2) {
        let after = rng.usize(0..=records);
        if open > 1 && rng.bool() {
            reshards.push(Reshard::Merge {
                after,
                shard: rng.usize(..open - 1),
            });
            open -= 1;
        } else {
            reshards.push(Reshard::Split {
                after,
                shard: rng.usize(..open),
            });
            open += 1;
        }
    }
    reshards.sort_by_key(|r| match r {
        Reshard::Split { after, .. } | Reshard::Merge { after, .. } => *after,
    });
    reshards
}

fn draw_mapping(rng: &mut Rng, features: &Features) -> MappingConfig {
    let parallelization = match (features.progress, features.window) {
        (ProgressMode::PartitionKey, None) => rng.usize(1..=4),
        _ => 1,
    };
    MappingConfig {
        batch_size: pick(rng, &[1, 3, 10, 25, 100]),
        parallelization,
        bisect: rng.u8(..3) == 0,
        retry_limit: (rng.u8(..6) == 0).then(|| rng.u32(1..=3)),
        max_record_age: (rng.u8(..8) == 0).then(|| Duration::from_secs(pick(rng, &[60, 180]))),
        report_failures: true,
        tumbling_window: features.window,
        batching_window: Duration::ZERO,
    }
}

fn draw_faults(rng: &mut Rng, features: &Features) -> Faults {
    if rng.u8(..5) == 0 {
        return Faults::none(Duration::from_secs(pick(rng, &[3, 10])));
    }
    let rate = |rng: &mut Rng, max: f64| if rng.bool() { rng.f64() * max } else { 0.0 };
    let fan_out = features.fan_out.is_some();
    Faults {
        crash: rate(rng, 0.15),
        duplicate_delivery: rate(rng, 0.1),
        timeout: Duration::from_secs(pick(rng, &[2, 3, 10])),
        handler_transient: rate(rng, 0.1),
        slow: rate(rng, 0.1),
        store_fail: rate(rng, 0.1),
        store_lose: rate(rng, 0.1),
        store_cancel: if features.store == StoreKind::DynamoDb {
            rate(rng, 0.1)
        } else {
            0.0
        },
        entry_fail: if fan_out { rate(rng, 0.2) } else { 0.0 },
        put_fail: if fan_out { rate(rng, 0.1) } else { 0.0 },
        source_fail: if features.guard { rate(rng, 0.2) } else { 0.0 },
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} shards, reshards {:?}, children at once {}",
            self.seed, self.shards, self.reshards, self.children_at_once
        )?;
        writeln!(f, "  features: {:?}", self.features)?;
        writeln!(f, "  workload: {:?}", self.workload)?;
        writeln!(f, "  mapping: {:?}", self.mapping)?;
        writeln!(f, "  faults: {:?}", self.faults)?;
        writeln!(
            f,
            "  invocations per process at once: {}",
            self.environment_concurrency
        )?;
        write!(f, "  operator actions: {}", self.operator)
    }
}

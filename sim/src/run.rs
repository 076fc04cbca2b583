//! One scenario, start to end: the services, the function, the producer, the
//! mapping with faults, the drain without them, the operator's replay and
//! redrive, then the oracle. On a paused tokio clock, on one thread, with
//! every random choice drawn from the scenario's seed: a seed replays exactly.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fastrand::Rng;
use shardline::decode::kpl::{UserRecord, aggregate};
use shardline::guard::ParentGuard;
use shardline::guard::kinesis::KinesisShards;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{FanOut, Sink, StaticDestinations};
use shardline::skip::DedupRule;
use shardline::state::{DynamoDbStore, EmbeddedStore, QuarantineStore};
use shardline::time::SimulatedWallClock;
use shardline::{EngineConfig, Position};

use crate::dynamodb::DynamoDb;
use crate::faults::{Dials, FaultyStore, KinesisFaults, dynamodb_fault};
use crate::function::{Calls, Function, HandlerDials, Instance, SimHandler, SimWindow};
use crate::kinesis::KinesisService;
use crate::mapping::Mapping;
use crate::oracle::{self, Verdict};
use crate::scenario::{Faults, Reshard, Scenario, StoreKind};
use crate::world::{Kind, Payload, Produced, World};

/// The source stream.
pub const SOURCE: &str = "source";
/// The consumer's name (its state's key).
pub const CONSUMER: &str = "sim";
/// Where the simulated wall clock starts.
const EPOCH_SECONDS: u64 = 1_780_000_000;

/// Everything a run is made of.
pub struct Setup {
    pub scenario: Scenario,
    pub world: World,
    pub kinesis: KinesisService,
    pub dials: Dials,
    pub handler_dials: Arc<Mutex<HandlerDials>>,
    pub function: Rc<Function>,
    pub quarantine: Rc<dyn QuarantineStore>,
    pub destinations: Vec<String>,
    _scratch: Option<Scratch>,
}

/// A scratch folder, removed when dropped.
#[derive(Debug)]
struct Scratch(std::path::PathBuf);

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("scenario", &self.scenario)
            .finish_non_exhaustive()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `scenario` and tells its story whatever the verdict: the stats, the
/// violations and one line per invocation (to compare two runs of a seed).
pub fn run_traced(scenario: &Scenario) -> (String, Vec<String>, Vec<String>) {
    let verdict = run_with(scenario, true);
    (verdict.stats.to_string(), verdict.violations, verdict.story)
}

/// Runs `scenario` on its own paused runtime; the oracle's verdict.
pub fn run(scenario: &Scenario) -> Verdict {
    run_with(scenario, false)
}

fn run_with(scenario: &Scenario, trace: bool) -> Verdict {
    fastrand::seed(scenario.seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build();
    let Ok(runtime) = runtime else {
        return Verdict::fail("the runtime could not start");
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let _clock =
            SimulatedWallClock::start(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECONDS));
        let setup = match setup(scenario.clone()).await {
            Ok(setup) => setup,
            Err(error) => return Verdict::fail(format!("setup: {error}")),
        };
        play(&setup, trace).await
    })
}

async fn setup(scenario: Scenario) -> Result<Setup, String> {
    let world = World::default();
    let kinesis = KinesisService::new();
    kinesis
        .create_stream(SOURCE, scenario.shards)
        .map_err(|e| e.to_string())?;
    let dials = Dials::new(scenario.faults.clone(), scenario.seed ^ 0x5eed);
    kinesis.set_faults(KinesisFaults {
        dials: dials.clone(),
        world: world.clone(),
        source: SOURCE.to_owned(),
    });
    let mut destinations = Vec::new();
    if let Some(fan_out) = scenario.features.fan_out {
        for n in 0..fan_out.destinations {
            let name = format!("dest-{n}");
            kinesis
                .create_stream(&name, fan_out.shards)
                .map_err(|e| e.to_string())?;
            destinations.push(name);
        }
    }
    let (store, quarantine, scratch) = store(&scenario, &dials).await?;
    let handler_dials = Arc::new(Mutex::new(HandlerDials {
        transient: scenario.faults.handler_transient,
        slow: scenario.faults.slow,
    }));
    let calls = Calls::new(world.clone(), handler_dials.clone(), scenario.seed ^ 0xca11);
    let start = starter(&scenario, &kinesis, &destinations, calls);
    let function = Rc::new(Function {
        config: engine_config(&scenario, &kinesis),
        store,
        start,
    });
    Ok(Setup {
        scenario,
        world,
        kinesis,
        dials,
        handler_dials,
        function,
        quarantine,
        destinations,
        _scratch: scratch,
    })
}

/// How a process of the function starts: its handler, with a fan-out of its
/// own (buffers, sinks, shard maps), or its window handler.
fn starter(
    scenario: &Scenario,
    kinesis: &KinesisService,
    destinations: &[String],
    calls: Calls,
) -> Box<dyn Fn() -> Instance> {
    let (spec, windows) = (
        scenario.features.fan_out,
        scenario.features.window.is_some(),
    );
    let (kinesis, destinations) = (kinesis.clone(), destinations.to_vec());
    Box::new(move || {
        let fan_out = spec.map(|spec| {
            let sinks: Vec<Arc<dyn Sink>> = destinations
                .iter()
                .map(|name| {
                    let sink = KinesisSink::new(kinesis.client(), name.clone())
                        .order(spec.order)
                        .aggregate(spec.aggregate)
                        .max_record_bytes(spec.max_record_bytes);
                    Arc::new(sink) as Arc<dyn Sink>
                })
                .collect();
            FanOut::new(StaticDestinations(sinks), spec.max_record_bytes)
        });
        Instance {
            handler: Arc::new(SimHandler::new(calls.clone(), fan_out)),
            window: windows.then(|| Arc::new(SimWindow::new(calls.clone()))),
        }
    })
}

type Stores = (
    Arc<dyn shardline::state::StateStore>,
    Rc<dyn QuarantineStore>,
    Option<Scratch>,
);

async fn store(scenario: &Scenario, dials: &Dials) -> Result<Stores, String> {
    match scenario.features.store {
        StoreKind::Embedded => {
            // One folder per run: runs of one seed may go at once (tests).
            static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "shardline-sim-{}-{}-{run}",
                std::process::id(),
                scenario.seed
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let open = || EmbeddedStore::open(&dir).map_err(|e| e.to_string());
            let faulty = FaultyStore {
                inner: open()?,
                dials: dials.clone(),
            };
            Ok((Arc::new(faulty), Rc::new(open()?), Some(Scratch(dir))))
        }
        StoreKind::DynamoDb => {
            let service = DynamoDb::new();
            let hook_dials = dials.clone();
            service.on_request(move |request, _tables| dynamodb_fault(&hook_dials, request));
            let table = "shardline-state";
            let store = DynamoDbStore::new(service.client(), table);
            let quiet = DynamoDbStore::new(service.client(), table);
            let faults = dials.now();
            dials.set(Faults::none(faults.timeout));
            let created = store.create_table().await.map_err(|e| e.to_string());
            dials.set(faults);
            created?;
            Ok((Arc::new(store), Rc::new(quiet), None))
        }
    }
}

fn engine_config(scenario: &Scenario, kinesis: &KinesisService) -> EngineConfig {
    let features = &scenario.features;
    let mut config = EngineConfig::new(CONSUMER);
    config.max_attempts = features.max_attempts;
    config.progress = features.progress;
    config.concurrency = features.concurrency;
    config.time_reserve = Duration::from_millis(features.time_reserve_ms);
    config.skip.max_record_age = features.max_age;
    if features.dedup {
        config.skip.dedup = Some(DedupRule {
            key: Arc::new(|record| Payload::decode(&record.data).map(|p| p.dedup.to_string())),
            window: Duration::from_secs(3_600),
        });
    }
    if features.guard {
        let directory = Arc::new(KinesisShards::new(kinesis.client()));
        config.guard = Some(Arc::new(ParentGuard::new(directory)));
    }
    config
}

/// The producer, the mapping with faults, the drain, the operator, the oracle.
async fn play(setup: &Setup, trace: bool) -> Verdict {
    let scenario = &setup.scenario;
    let workload = &scenario.workload;
    let mut producer = Producer::new(setup);
    producer.put(workload.backlog);
    tokio::time::sleep(workload.backlog_age).await;
    let mapping = Mapping::new(
        scenario.mapping.clone(),
        scenario.children_at_once,
        setup.kinesis.clone(),
        SOURCE,
        setup.function.clone(),
        setup.world.clone(),
        setup.dials.clone(),
    )
    .serving_at_once(scenario.environment_concurrency);
    let total = producer.total();
    let produce = async {
        while producer.done < total {
            producer.put(1);
            tokio::time::sleep(workload.gap).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let driving = mapping.run_until(|| false, u64::MAX);
    tokio::select! {
        biased;
        () = produce => {}
        _ = driving => {}
    }
    drain(setup, &mapping).await;
    let budget = 60 + 4 * total as u64 + scenario.held_by_age();
    if !mapping.run_until(|| true, budget).await {
        let mut verdict = Verdict::fail(format!(
            "a stall: the mapping did not drain in {budget} invocations after the faults stopped"
        ));
        verdict.story = oracle::story(&setup.world.lock());
        return verdict;
    }
    // Duplicate deliveries still running end within Lambda's timeout.
    tokio::time::sleep(scenario.faults.timeout * 2).await;
    if scenario.operator
        && let Err(error) = crate::operator::mend_and_return(setup, &mapping, budget).await
    {
        return Verdict::fail(error);
    }
    oracle::judge(setup, trace).await
}

/// Every fault stops.
async fn drain(setup: &Setup, _mapping: &Rc<Mapping>) {
    let timeout = setup.scenario.faults.timeout;
    setup.dials.set(Faults::none(timeout));
    *setup
        .handler_dials
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = HandlerDials::default();
}

/// Puts the scenario's records, in aggregates when it has KPL, with its
/// producer duplicates, resharding on the way.
struct Producer<'a> {
    setup: &'a Setup,
    rng: Rng,
    /// Records put so far (duplicates not counted).
    done: usize,
    next_id: u64,
    aggregates: u64,
    /// Reshards applied so far.
    reshards: usize,
}

impl<'a> Producer<'a> {
    fn new(setup: &'a Setup) -> Self {
        Producer {
            setup,
            rng: Rng::with_seed(setup.scenario.seed ^ 0x9e37),
            done: 0,
            next_id: 0,
            aggregates: 0,
            reshards: 0,
        }
    }

    fn total(&self) -> usize {
        self.setup.scenario.workload.records
    }

    /// Puts the next `count` records (or user records in aggregates).
    fn put(&mut self, count: usize) {
        let mut left = count.min(self.total() - self.done);
        while left > 0 {
            self.reshard_due();
            let kpl = self.setup.scenario.workload.kpl_max;
            let take = if kpl > 1 {
                self.rng.usize(1..=kpl).min(left)
            } else {
                1
            };
            let batch: Vec<(Payload, String)> = (0..take).map(|_| self.draw()).collect();
            self.done += take;
            left -= take;
            if kpl > 1 {
                self.put_aggregate(&batch);
            } else {
                for (payload, key) in &batch {
                    self.put_plain(*payload, key);
                    if self.rng.f64() < self.setup.scenario.workload.duplicates {
                        let copy = Payload {
                            id: self.next(),
                            kind: Kind::Healthy,
                            dedup: payload.dedup,
                        };
                        self.put_plain(copy, key);
                    }
                }
            }
        }
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn draw(&mut self) -> (Payload, String) {
        let workload = &self.setup.scenario.workload;
        let roll = self.rng.f64();
        let kind = if roll < workload.permanent {
            Kind::Permanent
        } else if roll < workload.permanent + workload.retryable {
            Kind::Retryable
        } else if roll < workload.permanent + workload.retryable + workload.hang {
            Kind::Hang
        } else {
            Kind::Healthy
        };
        let skew = self.rng.f64() * self.rng.f64();
        let key = format!("user-{}", (skew * workload.keys as f64) as usize);
        let id = self.next();
        (
            Payload {
                id,
                kind,
                dedup: id,
            },
            key,
        )
    }

    fn put_plain(&self, payload: Payload, key: &str) {
        let data = payload.encode(self.pad());
        let Ok(put) = self
            .setup
            .kinesis
            .put_record(SOURCE, key, None, data.clone())
        else {
            return;
        };
        self.produced(
            payload,
            data,
            key,
            key,
            &put.shard_id,
            &put.sequence_number,
            0,
        );
    }

    fn put_aggregate(&mut self, batch: &[(Payload, String)]) {
        let users: Vec<UserRecord> = batch
            .iter()
            .map(|(payload, key)| UserRecord {
                partition_key: key.clone(),
                explicit_hash_key: None,
                data: payload.encode(self.pad()),
            })
            .collect();
        self.aggregates += 1;
        let outer = format!("agg-{}", self.aggregates % 3);
        let data = Bytes::from(aggregate(&users));
        let Ok(put) = self.setup.kinesis.put_record(SOURCE, &outer, None, data) else {
            return;
        };
        for (sub, ((payload, key), user)) in batch.iter().zip(&users).enumerate() {
            let data = user.data.clone();
            self.produced(
                *payload,
                data,
                key,
                &outer,
                &put.shard_id,
                &put.sequence_number,
                sub as u64,
            );
        }
    }

    fn pad(&self) -> usize {
        (self.next_id % 7) as usize
    }

    #[allow(clippy::too_many_arguments)]
    fn produced(
        &self,
        payload: Payload,
        data: Bytes,
        key: &str,
        outer: &str,
        shard: &str,
        sequence: &str,
        sub: u64,
    ) {
        let Ok(sequence) = sequence.parse() else {
            return;
        };
        let arrival = shardline::sample::epoch_seconds(shardline::time::now());
        self.setup.world.lock().produced.insert(
            payload.id,
            Produced {
                payload,
                data,
                user_key: key.to_owned(),
                outer_key: outer.to_owned(),
                shard: shard.to_owned(),
                position: Position::new(sequence, sub),
                arrival,
            },
        );
    }

    /// Reshards planned at this point of the workload (or before it).
    fn reshard_due(&mut self) {
        let planned = &self.setup.scenario.reshards;
        while let Some(reshard) = planned.get(self.reshards) {
            let after = match reshard {
                Reshard::Split { after, .. } | Reshard::Merge { after, .. } => *after,
            };
            if after > self.done {
                return;
            }
            crate::reshard::apply(&self.setup.kinesis, SOURCE, *reshard);
            self.reshards += 1;
        }
    }
}

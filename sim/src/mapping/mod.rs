//! Lambda's Kinesis event source mapping over the simulated source stream:
//! shards found and started after their parents (or at once), read into
//! slots by partition key hash, and each slot driven by the shared model of
//! Lambda's rules ([`shardline_esm::SlotModel`]), invoking the function with
//! its faults: a process that dies at any await point, Lambda's timeout, and
//! a duplicate delivery that runs beside the slot's later invocations.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use shardline::time::{Instant, now};
use shardline_esm::{
    Answer, Discard, Environments, Invocation, MappingConfig, SlotModel, Step, StreamRecord,
    slot_of,
};

use crate::faults::Dials;
use crate::function::Function;
use crate::kinesis::{KinesisService, ShardRecord};
use crate::world::World;

mod invocation;

pub use invocation::Process;

/// How often the mapping looks for shards and records.
const POLL: Duration = Duration::from_millis(100);
/// The simulated time after which a mapping that is still busy has stalled.
const STALL_TIME: Duration = Duration::from_secs(3_600);
/// The pause before a window's failed final invocation is tried again.
const FINAL_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Where a shard is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Running,
    Finished,
}

/// One shard of the source stream, as the mapping tracks it.
#[derive(Debug)]
struct ShardRun {
    parents: Vec<String>,
    phase: Phase,
    slots: Vec<Rc<RefCell<SlotModel>>>,
    busy: Vec<Rc<Cell<bool>>>,
    /// Records read so far.
    read: usize,
}

/// The mapping of the source stream to the function.
#[derive(Debug)]
pub struct Mapping {
    /// Lambda's settings.
    pub config: MappingConfig,
    /// Start children before their parents are done.
    pub children_at_once: bool,
    /// The simulated Kinesis.
    pub kinesis: KinesisService,
    /// The source stream's name.
    pub stream: String,
    /// The function.
    pub function: Rc<Function>,
    /// What happened.
    pub world: World,
    /// Faults now.
    pub dials: Dials,
    shards: RefCell<BTreeMap<String, ShardRun>>,
    invocations: Cell<u64>,
    /// Invocations Lambda made (duplicates not counted).
    pub made: Cell<u64>,
    tasks: Cell<usize>,
    /// Polls an invocation takes, on average (where crashes land).
    typical_polls: Cell<f64>,
    /// Function processes, each serving one invocation at a time (classic
    /// Lambda) or several (Lambda Managed Instances), placed by the shared
    /// model's rules.
    environments: RefCell<Environments<Rc<Process>>>,
}

impl Mapping {
    /// A mapping of `stream` to `function`.
    pub fn new(
        config: MappingConfig,
        children_at_once: bool,
        kinesis: KinesisService,
        stream: &str,
        function: Rc<Function>,
        world: World,
        dials: Dials,
    ) -> Rc<Self> {
        Rc::new(Mapping {
            config,
            children_at_once,
            kinesis,
            stream: stream.to_owned(),
            function,
            world,
            dials,
            shards: RefCell::new(BTreeMap::new()),
            invocations: Cell::new(0),
            made: Cell::new(0),
            tasks: Cell::new(0),
            typical_polls: Cell::new(20.0),
            environments: RefCell::new(Environments::new(1)),
        })
    }

    /// Each function process serves up to `at_once` invocations at once
    /// (Lambda Managed Instances' `PerExecutionEnvironmentMaxConcurrency`);
    /// 1, one at a time, is classic Lambda and the default.
    pub fn serving_at_once(self: Rc<Self>, at_once: u32) -> Rc<Self> {
        self.environments.replace(Environments::new(at_once));
        self
    }

    fn arn(&self) -> String {
        KinesisService::stream_arn(&self.stream)
    }

    /// One round: shards found, started, read and finished; slots with work
    /// get a task. Returns whether nothing is left to do right now.
    pub fn tick(self: &Rc<Self>) -> bool {
        self.discover();
        self.start_ready();
        self.read();
        self.finish();
        self.spawn_slots();
        self.is_quiet()
    }

    /// Runs rounds until `done` holds and the mapping is quiet; a stall
    /// (`false`) when `budget` more invocations were made, or an hour of the
    /// simulated clock went by, first.
    pub async fn run_until(self: &Rc<Self>, done: impl Fn() -> bool, budget: u64) -> bool {
        let limit = self.made.get() + budget;
        let until = Instant::now() + STALL_TIME;
        loop {
            let quiet = self.tick();
            if quiet && done() {
                return true;
            }
            if self.made.get() > limit || Instant::now() > until {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn discover(&self) {
        let Ok(listed) = self.kinesis.shards(&self.stream) else {
            return;
        };
        let mut shards = self.shards.borrow_mut();
        for info in listed {
            shards
                .entry(info.shard_id.clone())
                .or_insert_with(|| ShardRun {
                    parents: info.parents(),
                    phase: Phase::Waiting,
                    slots: Vec::new(),
                    busy: Vec::new(),
                    read: 0,
                });
        }
    }

    fn start_ready(&self) {
        let mut shards = self.shards.borrow_mut();
        let finished: Vec<String> = shards
            .iter()
            .filter(|(_, s)| s.phase == Phase::Finished)
            .map(|(id, _)| id.clone())
            .collect();
        for run in shards.values_mut() {
            let ready = self.children_at_once || run.parents.iter().all(|p| finished.contains(p));
            if run.phase == Phase::Waiting && ready {
                run.phase = Phase::Running;
                let slots = self.config.parallelization.max(1);
                run.slots = (0..slots).map(|_| Rc::default()).collect();
                run.busy = (0..slots).map(|_| Rc::default()).collect();
            }
        }
    }

    fn read(&self) {
        let mut shards = self.shards.borrow_mut();
        for (id, run) in shards.iter_mut().filter(|(_, s)| s.phase == Phase::Running) {
            let Ok(records) = self
                .kinesis
                .shard_records(&self.stream, id, run.read, 10_000)
            else {
                continue;
            };
            run.read += records.len();
            for record in records {
                let slot = slot_of(&record.partition_key, run.slots.len());
                run.slots[slot].borrow_mut().push(stream_record(&record));
            }
        }
    }

    fn finish(&self) {
        let Ok(listed) = self.kinesis.shards(&self.stream) else {
            return;
        };
        let mut shards = self.shards.borrow_mut();
        for info in listed.iter().filter(|i| !i.is_open()) {
            let Some(run) = shards.get_mut(&info.shard_id) else {
                continue;
            };
            let total = self
                .kinesis
                .shard_records(&self.stream, &info.shard_id, 0, usize::MAX)
                .map_or(0, |r| r.len());
            let idle =
                run.slots.iter().all(|l| l.borrow().is_idle()) && run.busy.iter().all(|b| !b.get());
            if run.phase == Phase::Running && run.read == total && idle {
                run.phase = Phase::Finished;
            }
        }
    }

    fn spawn_slots(self: &Rc<Self>) {
        let shards = self.shards.borrow();
        for (id, run) in shards.iter().filter(|(_, s)| s.phase == Phase::Running) {
            for (slot, busy) in run.slots.iter().zip(&run.busy) {
                if busy.get() || !self.has_work(&mut slot.borrow_mut(), id) {
                    continue;
                }
                busy.set(true);
                self.tasks.set(self.tasks.get() + 1);
                let (me, id, slot, busy) = (self.clone(), id.clone(), slot.clone(), busy.clone());
                tokio::task::spawn_local(async move {
                    me.drive(&id, &slot).await;
                    busy.set(false);
                    me.tasks.set(me.tasks.get() - 1);
                });
            }
        }
    }

    /// Whether a slot has something to do: a batch in flight or to take, or
    /// a window whose time is over.
    fn has_work(&self, slot: &mut SlotModel, shard: &str) -> bool {
        if slot.in_flight() {
            return true;
        }
        if slot.queued() > 0 {
            return slot.take_batch(&self.config, &self.arn(), shard);
        }
        slot.close_if_over(now(), &self.config)
    }

    /// Nothing running and nothing waiting: every started shard's slots idle
    /// or holding only an open window, no task, no shard waiting on a parent
    /// that is still running.
    fn is_quiet(&self) -> bool {
        let shards = self.shards.borrow();
        self.tasks.get() == 0
            && shards.values().all(|run| match run.phase {
                Phase::Finished => true,
                Phase::Waiting => false,
                Phase::Running => run.slots.iter().all(|l| {
                    let slot = l.borrow();
                    !slot.in_flight() && slot.queued() == 0 && slot.window().is_none()
                }),
            })
    }

    /// Drives one slot until nothing is in flight.
    async fn drive(self: &Rc<Self>, shard: &str, slot: &Rc<RefCell<SlotModel>>) {
        loop {
            let step = slot.borrow_mut().next_step(&self.config, now());
            let invocation = match step {
                Step::Idle => return,
                Step::Discard(discard) => {
                    self.discarded(shard, &discard);
                    continue;
                }
                Step::Invoke(invocation) => invocation,
            };
            let answer = self.invoke(shard, &invocation).await;
            let failed_final = matches!(invocation, Invocation::Final { .. })
                && matches!(answer, Answer::Failed(_));
            let answered = slot
                .borrow_mut()
                .answered(&invocation, answer, &self.config);
            for discard in &answered.discards {
                self.discarded(shard, discard);
            }
            if failed_final {
                tokio::time::sleep(FINAL_RETRY_PAUSE).await;
            }
        }
    }

    fn discarded(&self, _shard: &str, discard: &Discard) {
        let mut world = self.world.lock();
        for record in &discard.records {
            world.discarded.extend(crate::faults::ids_in(&record.data));
        }
    }

    /// One invocation Lambda makes, and perhaps a duplicate delivery of it.
    async fn invoke(self: &Rc<Self>, shard: &str, invocation: &Invocation) -> Answer {
        let payload = match invocation.payload(&self.arn(), shard) {
            Ok(payload) => payload,
            Err(reason) => return Answer::Failed(reason),
        };
        self.made.set(self.made.get() + 1);
        let faults = self.dials.now();
        if self.dials.roll(faults.duplicate_delivery) {
            let delay =
                Duration::from_millis(self.dials.below(faults.timeout.as_millis() as usize) as u64);
            let (me, shard, copy) = (self.clone(), shard.to_owned(), payload.clone());
            let delivered_copy = Self::delivered(invocation);
            self.tasks.set(self.tasks.get() + 1);
            tokio::task::spawn_local(async move {
                tokio::time::sleep(delay).await;
                me.run_invocation(&shard, &copy, delivered_copy, true).await;
                me.tasks.set(me.tasks.get() - 1);
            });
        }
        self.run_invocation(shard, &payload, Self::delivered(invocation), false)
            .await
    }

    /// The record ids in an invocation's event.
    fn delivered(invocation: &Invocation) -> Vec<u64> {
        match invocation {
            Invocation::Records { records, .. } => records
                .iter()
                .flat_map(|r| crate::faults::ids_in(&r.data))
                .collect(),
            Invocation::Final { .. } => Vec::new(),
        }
    }
}

fn stream_record(record: &ShardRecord) -> Option<StreamRecord> {
    Some(StreamRecord {
        sequence: record.sequence_number.parse().ok()?,
        partition_key: record.partition_key.clone(),
        data: record.data.clone(),
        arrival: shardline::sample::epoch_seconds(record.arrival),
    })
}

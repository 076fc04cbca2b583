//! Lambda's Kinesis event source mapping over the simulated source stream:
//! shards found and started after their parents (or at once), read into
//! slots by partition key hash, and each slot driven by the shared model of
//! Lambda's rules ([`shardline_esm::SlotModel`]), invoking the function with
//! its faults: a process that dies at any await point, Lambda's timeout, and
//! a duplicate delivery that runs beside the slot's later invocations.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use shardline::Deadline;
use shardline::time::{Instant, now};
use shardline_esm::{
    Answer, Discard, Environments, Invocation, MappingConfig, SlotModel, Step, StreamRecord,
    slot_of,
};

use crate::faults::Dials;
use crate::function::{Function, INVOCATION, Instance};
use crate::kinesis::{KinesisService, ShardRecord};
use crate::world::{InvocationLog, World};

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

/// A function process: its instance, and the word of its death, which ends
/// every invocation it has in flight.
#[derive(Debug)]
pub struct Process {
    /// The handler (and fan-out) the process built.
    pub instance: Instance,
    gone: tokio::sync::watch::Sender<bool>,
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

    /// Runs the function on `payload` in a process that may die at an await
    /// point or run into Lambda's timeout.
    async fn run_invocation(
        &self,
        shard: &str,
        payload: &Bytes,
        delivered: Vec<u64>,
        duplicate: bool,
    ) -> Answer {
        let faults = self.dials.now();
        let id = self.invocations.get() + 1;
        self.invocations.set(id);
        self.world.lock().invocations.insert(
            id,
            InvocationLog {
                shard: shard.to_owned(),
                duplicate,
                started: Instant::now(),
                ended: None,
                clean: false,
                retry_from: None,
                delivered,
                called: Vec::new(),
                handled: Vec::new(),
                cut_off: Vec::new(),
            },
        );
        let crash_at = self.dials.roll(faults.crash).then(|| {
            let span = (self.typical_polls.get() * 1.5).max(2.0) as usize;
            1 + self.dials.below(span) as u32
        });
        // Lambda takes a moment to hand an event over: the simulated clock
        // moves with every invocation, as it does with Lambda's.
        let handover = Duration::from_millis(2 + self.dials.below(20) as u64);
        tokio::time::sleep(handover).await;
        let (environment, process) = self.take_process();
        let run = INVOCATION.scope(
            id,
            self.function
                .run(&process.instance, payload, Deadline::after(faults.timeout)),
        );
        let mut gone = process.gone.subscribe();
        // `biased`: the same seed, the same run.
        let outcome = tokio::select! {
            biased;
            outcome = tokio::time::timeout(faults.timeout, Crashable::new(run, crash_at)) => outcome,
            // Another invocation of the process crashed or timed out: this
            // one dies with it, at the await point it was at.
            _ = gone.wait_for(|gone| *gone) => {
                self.world.lock().killed_with_process += 1;
                Ok((None, 0))
            }
        };
        if matches!(outcome, Ok((Some(_), _))) {
            self.environments.borrow_mut().answered(environment);
        } else {
            // A process that died or timed out is gone, with every invocation
            // it had in flight; Lambda starts another.
            process.gone.send_replace(true);
            self.environments.borrow_mut().died(environment);
        }
        let undisturbed = matches!(&outcome, Ok((Some(Ok((_, report))), _))
            if report.not_started == 0 && report.failed == 0 && report.superseded == 0);
        if !undisturbed {
            self.world.lock().disturbed = true;
        }
        let answer = match outcome {
            Err(_) => Answer::Failed(format!("Task timed out after {:?}", faults.timeout)),
            Ok((None, _)) => Answer::Failed("the process died".into()),
            Ok((Some(Err(error)), polls)) => {
                self.took(polls);
                Answer::Failed(format!("function error: {error}"))
            }
            Ok((Some(Ok((body, report))), polls)) => {
                self.took(polls);
                self.answered(id, !duplicate && report.superseded == 0, &body);
                Answer::Response(body)
            }
        };
        self.ended(id);
        answer
    }

    /// A process with a free slot, or a new one (a cold start): its
    /// environment's id, and the process.
    fn take_process(&self) -> (u64, Rc<Process>) {
        let free = self.environments.borrow_mut().take_free();
        free.unwrap_or_else(|| {
            let process = Rc::new(Process {
                instance: (self.function.start)(),
                gone: tokio::sync::watch::channel(false).0,
            });
            let id = self.environments.borrow_mut().started(process.clone());
            (id, process)
        })
    }

    /// A process taken out of Lambda's hands for the operator's own command
    /// (a replay): an idle one, or a new one.
    pub fn take_instance(&self) -> Rc<Process> {
        let (environment, process) = self.take_process();
        self.environments.borrow_mut().died(environment);
        process
    }

    fn took(&self, polls: u32) {
        self.typical_polls
            .set(self.typical_polls.get() * 0.8 + f64::from(polls) * 0.2);
    }

    /// An invocation that answered: whether its answer is clean (no
    /// superseded commit, not a duplicate delivery), and what it asked Lambda
    /// to retry from.
    fn answered(&self, id: u64, clean: bool, body: &[u8]) {
        let mut world = self.world.lock();
        let Some(log) = world.invocations.get_mut(&id) else {
            return;
        };
        log.clean = clean;
        log.retry_from = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_owned)
            });
    }

    /// An invocation ended, however: the longest of its handler calls cut off
    /// met a fault (the engine counts an attempt against it when its commit
    /// lands, even if the answer is then lost).
    fn ended(&self, id: u64) {
        let mut world = self.world.lock();
        let Some(log) = world.invocations.get_mut(&id) else {
            return;
        };
        log.ended = Some(Instant::now());
        let longest = log
            .cut_off
            .iter()
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|c| c.2);
        if let Some(longest) = longest {
            world.expose(longest);
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

/// A future that can die: after `polls` polls it ends with `None` and drops
/// what it runs, as a process killed at an await point. Counts its polls.
struct Crashable<F> {
    inner: Pin<Box<F>>,
    die_at: Option<u32>,
    polls: u32,
}

impl<F> Crashable<F> {
    fn new(inner: F, die_at: Option<u32>) -> Self {
        Crashable {
            inner: Box::pin(inner),
            die_at,
            polls: 0,
        }
    }
}

impl<F: Future> Future for Crashable<F> {
    type Output = (Option<F::Output>, u32);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.polls += 1;
        if self.die_at.is_some_and(|at| self.polls >= at) {
            return Poll::Ready((None, self.polls));
        }
        let polls = self.polls;
        self.inner.as_mut().poll(cx).map(|out| (Some(out), polls))
    }
}

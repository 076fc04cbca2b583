//! The faults of a run, from its dials: hooks for the simulated Kinesis (the
//! source stream the guard reads, the fan-out's destinations) and DynamoDB,
//! and a store wrapper for the embedded store. The dials are shared: the
//! drain phase turns them to zero and every hook obeys at once.
//!
//! A fault that may count an attempt against a record is an exposure of that
//! record in the [`World`]: the oracle only accepts a healthy record in the
//! quarantine when it met as many faults as the attempts it needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use fastrand::Rng;
use shardline::decode::kpl::{Deaggregated, deaggregate};
use shardline::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Progress, ShardState, StateError,
    StateStore, StoreLayer, UnitCommit,
};

use crate::dynamodb::{Fault as DynamoFault, Request};
use crate::kinesis::{Call, EntryCall, EntryFault, Failure, Fault as KinesisFault, FaultHook};
use crate::scenario::Faults;
use crate::world::{Payload, World};

/// The run's dials and dice, shared by every hook.
#[derive(Debug, Clone)]
pub struct Dials {
    faults: Arc<Mutex<Faults>>,
    rng: Arc<Mutex<Rng>>,
}

impl Dials {
    /// Dials at `faults`, drawing from `seed`.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Dials {
            faults: Arc::new(Mutex::new(faults)),
            rng: Arc::new(Mutex::new(Rng::with_seed(seed))),
        }
    }

    /// The faults now.
    pub fn now(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the faults.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Whether an event of probability `rate` happens.
    pub fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.rng.lock().unwrap_or_else(|p| p.into_inner()).f64() < rate
    }

    /// A number in `0..n`.
    pub fn below(&self, n: usize) -> usize {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usize(..n.max(1))
    }
}

/// The user records (payload ids) in a Kinesis record's data.
pub fn ids_in(data: &[u8]) -> Vec<u64> {
    match deaggregate(&bytes::Bytes::copy_from_slice(data)) {
        Deaggregated::Aggregate(records) => records
            .iter()
            .filter_map(|r| Payload::decode(&r.data).map(|p| p.id))
            .collect(),
        _ => Payload::decode(data).map(|p| p.id).into_iter().collect(),
    }
}

/// The ids in a PutRecords request's entries.
fn request_ids(request: &serde_json::Value) -> Vec<u64> {
    let entries = request.get("Records").and_then(|r| r.as_array());
    let datas = entries
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("Data")?.as_str());
    datas
        .filter_map(|text| {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text).ok()
        })
        .flat_map(|data| ids_in(&data))
        .collect()
}

/// Faults of the simulated Kinesis: reads of the source stream fail (the
/// guard's ListShards, GetShardIterator, GetRecords); puts to destinations
/// fail, come back late, or lose their answer, and single entries fail.
#[derive(Debug)]
pub struct KinesisFaults {
    /// The dials.
    pub dials: Dials,
    /// Where exposures go.
    pub world: World,
    /// The source stream's name.
    pub source: String,
}

impl FaultHook for KinesisFaults {
    fn on_request(&mut self, call: &Call<'_>) -> Option<KinesisFault> {
        let faults = self.dials.now();
        let on_source = call
            .stream
            .is_some_and(|s| s == self.source || s.ends_with(&format!("/{}", self.source)));
        if on_source && call.operation != "PutRecords" && call.operation != "PutRecord" {
            return self
                .dials
                .roll(faults.source_fail)
                .then_some(KinesisFault::Fail(Failure::LimitExceeded));
        }
        if call.operation != "PutRecords" || !self.dials.roll(faults.put_fail) {
            return None;
        }
        let fault = match self.dials.below(3) {
            0 => KinesisFault::Fail(Failure::Internal),
            1 => KinesisFault::Late(faults.timeout),
            _ => KinesisFault::LoseAnswer,
        };
        let mut world = self.world.lock();
        for id in request_ids(call.request) {
            world.expose(id);
        }
        Some(fault)
    }

    fn on_entry(&mut self, _call: &Call<'_>, entry: &EntryCall<'_>) -> Option<EntryFault> {
        if !self.dials.roll(self.dials.now().entry_fail) {
            return None;
        }
        let mut world = self.world.lock();
        for id in ids_in(entry.data) {
            world.expose(id);
        }
        Some(EntryFault::Throughput)
    }
}

/// The fault of one DynamoDB request, from the dials.
pub fn dynamodb_fault(dials: &Dials, request: &Request<'_>) -> DynamoFault {
    let faults = dials.now();
    let writes = matches!(
        request.operation,
        "UpdateItem" | "PutItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem"
    );
    if dials.roll(faults.store_fail) {
        return match dials.below(3) {
            0 => DynamoFault::throttling(),
            1 => DynamoFault::throughput_exceeded(),
            _ => DynamoFault::internal_error(),
        };
    }
    if writes && dials.roll(faults.store_lose) {
        return DynamoFault::LoseAnswer;
    }
    let items = request.transact_items().len();
    if items > 0 && dials.roll(faults.store_cancel) {
        let code = if dials.roll(0.5) {
            "ThrottlingError"
        } else {
            "TransactionConflict"
        };
        return DynamoFault::CancelTransaction {
            item: dials.below(items),
            code: code.into(),
        };
    }
    DynamoFault::None
}

/// The embedded store with faults: a call that fails before it is made, or a
/// write whose answer is lost after it landed. SQLite's errors are not
/// transient, so each fails the invocation (Lambda retries it).
#[derive(Debug)]
pub struct FaultyStore<S> {
    /// The store.
    pub inner: S,
    /// The dials.
    pub dials: Dials,
}

impl<S> FaultyStore<S> {
    fn before(&self, operation: &'static str) -> Result<(), StateError> {
        if self.dials.roll(self.dials.now().store_fail) {
            return Err(injected(operation, "failed before it was made"));
        }
        Ok(())
    }

    fn after<T>(
        &self,
        operation: &'static str,
        result: Result<T, StateError>,
    ) -> Result<T, StateError> {
        let value = result?;
        if self.dials.roll(self.dials.now().store_lose) {
            return Err(injected(operation, "landed, but its answer was lost"));
        }
        Ok(value)
    }
}

fn injected(operation: &'static str, what: &str) -> StateError {
    StateError::Backend {
        backend: "simulated",
        operation,
        source: format!("an injected fault: the call {what}").into(),
    }
}

/// Faults on the engine's calls; the guard's writes and the quarantine's
/// calls pass through.
#[async_trait]
impl<S: StateStore> StoreLayer for FaultyStore<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn read_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        self.before("read a shard")?;
        self.inner.read_shard(key).await
    }

    async fn read_keys(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        self.before("read key progress")?;
        self.inner.read_keys(key, partition_keys).await
    }

    async fn claim(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        self.before("claim dedup keys")?;
        let result = self.inner.claim(consumer, claims, now).await;
        self.after("claim dedup keys", result)
    }

    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError> {
        self.before("commit")?;
        let result = self.inner.commit_batch(key, commits).await;
        self.after("commit", result)
    }
}

/// How long a late answer waits.
pub const LATE: Duration = Duration::from_secs(30);

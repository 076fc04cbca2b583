//! A simulated Kinesis Data Streams service: in-memory streams, shards,
//! records and resharding, answering the SDK's JSON requests through the
//! [`http`](crate::http) seam, with faults decided by a [`FaultHook`].
//!
//! - Deterministic: ordered maps only, tokio's clock for iterator and token
//!   expiry and for latency, [`shardline::time::now`] for arrival times, no
//!   randomness of its own.
//! - Streams are named by name or by ARN
//!   (`arn:aws:kinesis:us-east-1:000000000000:stream/NAME`, see
//!   [`KinesisService::stream_arn`]); shards are `shardId-000000000000`...
//! - Sequence numbers are 56 decimal digits, increasing within a shard and
//!   across the stream: a reshard's children start above their parents' end.
//! - SDK operations: `ListShards`, `DescribeStreamSummary`,
//!   `GetShardIterator`, `GetRecords`, `PutRecords`, `PutRecord`. Requests are
//!   validated as Kinesis does (see `put.rs` for the PutRecords limits).
//! - A direct API for the simulator: create streams, put records, split and
//!   merge shards, list shards and read their records.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use shardline_sim::kinesis::KinesisService;
//! let kinesis = KinesisService::new();
//! kinesis.create_stream("orders", 2).unwrap();
//! let put = kinesis.put_record("orders", "user-1", None, "hello").unwrap();
//! let client = kinesis.client();
//! let shards = client.list_shards().stream_name("orders").send().await.unwrap();
//! assert_eq!(shards.shards().len(), 2);
//! assert!(put.shard_id.starts_with("shardId-"));
//! # }
//! ```

mod faults;
mod ops;
mod put;
mod read;
mod stream;
mod types;
mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_kinesis::config::{BehaviorVersion, Region};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

pub use faults::{
    Call, EntryCall, EntryFault, Failure, Fault, FaultHook, NoFaults, Refusal, ScriptedFaults,
};
pub use types::{PutResult, ShardInfo, ShardRecord, SimError, Stats};

use crate::http::{Reply, Service, SimHttp};
use stream::Stream;
use wire::ApiError;

/// Shards listed per ListShards page unless set otherwise: small, so that
/// callers' paging is exercised.
pub const DEFAULT_LIST_PAGE_SIZE: usize = 3;

/// The simulated Kinesis service. Clones share the same streams.
#[derive(Clone)]
pub struct KinesisService {
    shared: Arc<Shared>,
}

/// What every clone of a service shares.
struct Shared {
    streams: Mutex<BTreeMap<String, Stream>>,
    hook: Mutex<Box<dyn FaultHook>>,
    stats: Mutex<Stats>,
    /// Token times are counted from here (tokio's clock).
    epoch: Instant,
    list_page_size: AtomicUsize,
    /// The SDK clients' retry quota, shared by the clients of this service
    /// only (not by every client of the process, as the default one is).
    token_bucket: TokenBucket,
}

/// Locks `mutex`, whether or not a panic poisoned it.
fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn streams(&self) -> MutexGuard<'_, BTreeMap<String, Stream>> {
        lock(&self.streams)
    }

    /// Nanoseconds of tokio's clock since the service was made.
    fn ticks(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Applies `f` to stream `name`, or says it is not there.
    fn with_stream<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Stream) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        let mut streams = self.streams();
        let stream = streams
            .get_mut(name)
            .ok_or_else(|| SimError::StreamNotFound(name.to_owned()))?;
        f(stream)
    }
}

impl std::fmt::Debug for KinesisService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisService")
            .field("streams", &self.shared.streams().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for KinesisService {
    fn default() -> Self {
        Self::new()
    }
}

impl KinesisService {
    /// A service without streams or faults.
    pub fn new() -> Self {
        KinesisService {
            shared: Arc::new(Shared {
                streams: Mutex::default(),
                hook: Mutex::new(Box::new(NoFaults)),
                stats: Mutex::default(),
                epoch: Instant::now(),
                list_page_size: AtomicUsize::new(DEFAULT_LIST_PAGE_SIZE),
                token_bucket: TokenBucket::default(),
            }),
        }
    }

    /// The ARN of stream `name`.
    pub fn stream_arn(name: &str) -> String {
        stream::stream_arn(name)
    }

    /// An SDK client of this service with the SDK's standard retries.
    pub fn client(&self) -> Client {
        self.client_with_retry(RetryConfig::standard())
    }

    /// An SDK client of this service with `retry` (such as
    /// `RetryConfig::disabled()` to see every fault as it comes).
    pub fn client_with_retry(&self, retry: RetryConfig) -> Client {
        let partition = RetryPartition::custom("kinesis-sim")
            .token_bucket(self.shared.token_bucket.clone())
            .build();
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(stream::REGION))
            // Unsigned, as the DynamoDB simulation's clients.
            .allow_no_auth()
            .endpoint_url("http://kinesis.sim")
            .http_client(SimHttp::new(Arc::new(self.clone())))
            .retry_config(retry)
            .retry_partition(partition)
            .build();
        Client::from_conf(config)
    }

    /// Sets what goes wrong from now on.
    pub fn set_faults(&self, hook: impl FaultHook + 'static) {
        *lock(&self.shared.hook) = Box::new(hook);
    }

    /// Sets how many shards a ListShards page holds at most (at least 1;
    /// [`DEFAULT_LIST_PAGE_SIZE`] to start with; `MaxResults` may ask fewer).
    pub fn set_list_page_size(&self, shards: usize) {
        self.shared
            .list_page_size
            .store(shards.max(1), Ordering::Relaxed);
    }

    /// What the service was asked so far.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Creates stream `name` with `shard_count` shards (at least 1) splitting
    /// the hash key space evenly; returns its ARN.
    ///
    /// # Errors
    /// [`SimError::StreamExists`], or [`SimError::Invalid`] for a bad name.
    pub fn create_stream(&self, name: &str, shard_count: u32) -> Result<String, SimError> {
        wire::check_stream_name(name).map_err(|e| SimError::Invalid(e.message))?;
        let mut streams = self.shared.streams();
        if streams.contains_key(name) {
            return Err(SimError::StreamExists(name.to_owned()));
        }
        let stream = Stream::new(name, shard_count, shardline::time::now());
        streams.insert(name.to_owned(), stream);
        Ok(Self::stream_arn(name))
    }

    /// Puts one record, as PutRecord would (routed by `explicit_hash_key`, else
    /// by the MD5 of `partition_key`), arriving at [`shardline::time::now`].
    ///
    /// # Errors
    /// [`SimError::StreamNotFound`], or [`SimError::Invalid`] for keys or a
    /// size Kinesis refuses.
    pub fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: impl Into<Bytes>,
    ) -> Result<PutResult, SimError> {
        let name = self.resolve(stream)?;
        let entry = put::Entry::new(partition_key, explicit_hash_key, data.into())
            .map_err(|e| SimError::Invalid(e.message))?;
        let arrival = wire::to_millis(shardline::time::now());
        self.shared
            .with_stream(&name, |s| entry.put_into(s, arrival))
    }

    /// Splits open shard `shard_id` of `stream`: the children hold the hash
    /// keys below `new_starting_hash_key` and from it on. Returns the children,
    /// lower range first.
    ///
    /// # Errors
    /// Stream or shard not found, shard closed, or a split point outside it.
    pub fn split_shard(
        &self,
        stream: &str,
        shard_id: &str,
        new_starting_hash_key: u128,
    ) -> Result<[String; 2], SimError> {
        let name = self.resolve(stream)?;
        let now = shardline::time::now();
        self.shared
            .with_stream(&name, |s| s.split(shard_id, new_starting_hash_key, now))
    }

    /// Merges open shards `shard_id` and `adjacent_shard_id` (adjacent hash key
    /// ranges, in either order); returns the child, whose `ParentShardId` is
    /// `shard_id` and `AdjacentParentShardId` is `adjacent_shard_id`.
    ///
    /// # Errors
    /// Stream or shards not found, closed, or not adjacent.
    pub fn merge_shards(
        &self,
        stream: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Result<String, SimError> {
        let name = self.resolve(stream)?;
        let now = shardline::time::now();
        self.shared
            .with_stream(&name, |s| s.merge(shard_id, adjacent_shard_id, now))
    }

    /// Every shard of `stream`, open and closed, by shard id.
    ///
    /// # Errors
    /// [`SimError::StreamNotFound`].
    pub fn shards(&self, stream: &str) -> Result<Vec<ShardInfo>, SimError> {
        let name = self.resolve(stream)?;
        self.shared.with_stream(&name, |s| {
            Ok(s.shards.iter().map(|shard| shard.info()).collect())
        })
    }

    /// At most `max` records of shard `shard_id` of `stream`, from its
    /// `from`-th record (0: the first), in order.
    ///
    /// # Errors
    /// Stream or shard not found.
    pub fn shard_records(
        &self,
        stream: &str,
        shard_id: &str,
        from: usize,
        max: usize,
    ) -> Result<Vec<ShardRecord>, SimError> {
        let name = self.resolve(stream)?;
        self.shared.with_stream(&name, |s| {
            let shard = s.shard(shard_id).ok_or_else(|| SimError::ShardNotFound {
                stream: name.clone(),
                shard: shard_id.to_owned(),
            })?;
            let records = shard.records.iter().skip(from).take(max);
            Ok(records.map(|r| r.to_public()).collect())
        })
    }

    /// Every record of `stream`, by shard id, in order within each shard.
    ///
    /// # Errors
    /// [`SimError::StreamNotFound`].
    pub fn stream_records(
        &self,
        stream: &str,
    ) -> Result<BTreeMap<String, Vec<ShardRecord>>, SimError> {
        let name = self.resolve(stream)?;
        self.shared.with_stream(&name, |s| {
            Ok(s.shards
                .iter()
                .map(|shard| {
                    let records = shard.records.iter().map(|r| r.to_public()).collect();
                    (shard.id.clone(), records)
                })
                .collect())
        })
    }

    /// The stream name of `stream` (a name or an ARN of this account).
    fn resolve(&self, stream: &str) -> Result<String, SimError> {
        let (name, arn) = if stream.starts_with("arn:") {
            (None, Some(stream))
        } else {
            (Some(stream), None)
        };
        wire::stream_name(name, arn).map_err(|e| match e.code {
            "ResourceNotFoundException" => SimError::StreamNotFound(stream.to_owned()),
            _ => SimError::Invalid(e.message),
        })
    }
}

impl Service for KinesisService {
    fn call(&self, operation: String, body: Vec<u8>) -> BoxFuture<'static, Reply> {
        let shared = self.shared.clone();
        Box::pin(async move { handle(shared, operation, body).await })
    }
}

/// One request: counted, parsed, faulted, applied, answered.
async fn handle(shared: Arc<Shared>, operation: String, body: Vec<u8>) -> Reply {
    *lock(&shared.stats)
        .requests
        .entry(operation.clone())
        .or_default() += 1;
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(json) => json,
        Err(e) => return ApiError::serialization(format!("body is not JSON: {e}")).reply(),
    };
    let request = match ops::Request::parse(&operation, &json) {
        Ok(request) => request,
        Err(error) => return error.reply(),
    };
    let call = request.call(&operation, &json);
    let fault = lock(&shared.hook).on_request(&call);
    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Fail(failure)) => return failure.error(&call).reply(),
        Some(Fault::Refuse(refusal)) => return refusal.error(&call).reply(),
        Some(Fault::LoseRequest) => return Reply::Lost,
        Some(Fault::Late(_) | Fault::LoseAnswer) | None => {}
    }
    let reply = match ops::execute(&shared, &request, &call) {
        Ok(answer) => Reply::ok(&answer),
        Err(error) => error.reply(),
    };
    match fault {
        Some(Fault::Late(delay)) => {
            tokio::time::sleep(delay).await;
            reply
        }
        Some(Fault::LoseAnswer) => Reply::Lost,
        _ => reply,
    }
}

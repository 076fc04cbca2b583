//! The batch loop: skip rules, handler outcomes, the flush, the checkpoint, the response.
//!
//! For each shard in the event, in this order, one file a phase, each handing
//! its typed result to the next (`shard.rs` runs them):
//!
//! 1. **open** (`open.rs`, `Opened`): its state is read and the parent-shard
//!    guard ([`crate::guard`]), if on, holds a child shard back until its
//!    parents are finished; the dedup keys of the records that may run are
//!    claimed in one call (`claims.rs`);
//! 2. **run** (`run.rs`, `Ran`): records go, up to [`EngineConfig::concurrency`]
//!    at once across partition keys and in order within one (`lanes.rs`),
//!    through the skip rules ([`crate::skip`]: checkpointed, stale,
//!    duplicate); an undecodable record goes to the quarantine; a record is
//!    not started when the invocation is short of time; the handler then
//!    succeeds, fails for good (quarantined, and on), or fails for now (its
//!    lane stops there, unless it has now failed `max_attempts` times, when
//!    it is quarantined instead). A handler that panics, or runs into the
//!    time kept back for the commit, fails for now (`outcome.rs`);
//! 3. **flush** (`flush.rs`, `Flushed`): the handler's [`Handler::flush`]
//!    writes what it buffered; a record it could not write counts an attempt
//!    like a failed `handle`;
//! 4. **fold** (`fold.rs`, `Folded`): what the batch did folds into each
//!    unit's progress (`units.rs`; a checkpoint moves only over done
//!    records), with a bounded quarantine per commit (`budget.rs`);
//! 5. **commit** (`commit.rs`): written once per shard with the quarantined
//!    records and what each fan-out destination received; the first record
//!    left for Lambda's retry, if any, is the response.
//!
//! Two progress modes ([`ProgressMode`]): one unit per shard (the default, for
//! one batch per shard at a time), or one per partition key (for
//! `ParallelizationFactor` above 1, where batches of one shard run at once and
//! only records of one key are ordered).

mod budget;
mod claims;
mod commit;
mod flush;
mod fold;
mod lanes;
mod open;
mod outcome;
mod run;
mod shard;
mod units;

use std::sync::Arc;
use std::time::Duration;

use crate::decode::{DecodedEvent, Item};
use crate::guard::{GuardError, ParentGuard};
use crate::handler::Handler;
use crate::record::ShardRef;
use crate::report::BatchReport;
use crate::response::BatchResponse;
use crate::skip::SkipRules;
use crate::state::{ConsumerShard, StateError, StateStore};

pub use crate::progress::ProgressMode;
pub use crate::time::Deadline;

/// How the engine treats one consumer's records.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The consumer's name: the key of its state.
    pub consumer: String,
    /// Attempts (across invocations) before a retryable failure is quarantined. At least 1.
    pub max_attempts: u32,
    /// Skip rules.
    pub skip: SkipRules,
    /// Time kept back at the end of an invocation for the commit and the
    /// response. The engine also keeps back the longest handler call seen in the
    /// batch, so a record is only started when it can likely finish; the flush
    /// must be done this long before the deadline.
    pub time_reserve: Duration,
    /// Per shard or per partition key.
    pub progress: ProgressMode,
    /// The parent-shard guard; `None` turns it off (for order-insensitive consumers).
    pub guard: Option<Arc<ParentGuard>>,
    /// Records in flight at once within a shard's batch, across distinct
    /// ordering keys (a key's records still run one after another); 1 runs the
    /// shard's records one at a time, and a failure then stops the shard.
    pub concurrency: usize,
}

impl EngineConfig {
    /// A configuration with defaults: 3 attempts, no skip rules, 1 s reserve.
    pub fn new(consumer: impl Into<String>) -> Self {
        EngineConfig {
            consumer: consumer.into(),
            max_attempts: 3,
            skip: SkipRules::default(),
            time_reserve: Duration::from_secs(1),
            progress: ProgressMode::Shard,
            guard: None,
            concurrency: 1,
        }
    }
}

/// Why a batch could not be processed at all (the invocation fails and Lambda
/// retries the whole batch; nothing was committed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The state store failed.
    #[error("state of shard {shard_id} ({stream_arn}): {source}")]
    State {
        /// The shard's stream.
        stream_arn: String,
        /// The shard.
        shard_id: String,
        /// The store's error.
        #[source]
        source: StateError,
    },
    /// The parent-shard guard could not decide.
    #[error("parent-shard guard of {shard_id}: {source}")]
    Guard {
        /// The child shard.
        shard_id: String,
        /// The guard's error.
        #[source]
        source: GuardError,
    },
}

/// What processing an event produced.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// The response for Lambda.
    pub response: BatchResponse,
    /// What happened, counted.
    pub report: BatchReport,
}

/// Processes a decoded event: every shard in it, in order, with `handler`.
///
/// # Errors
/// [`EngineError`] when the state store or the guard fails; records already
/// handled in this invocation will be delivered again (at-least-once), so
/// handlers should be idempotent or use a dedup rule.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shardline::{Deadline, EngineConfig, HandlerError, Record, handler_fn, process_event};
/// use shardline::decode::decode_event;
/// use shardline::state::EmbeddedStore;
///
/// let event = br#"{"Records":[{"eventSource":"aws:kinesis",
///   "eventID":"shardId-000000000000:1",
///   "eventSourceARN":"arn:aws:kinesis:us-east-1:1:stream/orders",
///   "kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"aGk="}}]}"#;
/// let store = EmbeddedStore::open(&std::env::temp_dir().join("shardline-doc-engine")).unwrap();
/// let handler = handler_fn(|record: Record| async move {
///     assert_eq!(record.text(), Some("hi"));
///     Ok::<(), HandlerError>(())
/// });
/// let config = EngineConfig::new(format!("doc-{}", std::process::id()));
/// let outcome = process_event(decode_event(event).unwrap(), &handler, &store, &config, Deadline::none())
///     .await
///     .unwrap();
/// assert!(outcome.response.is_success());
/// # }
/// ```
pub async fn process_event<H: Handler>(
    event: DecodedEvent,
    handler: &H,
    store: &dyn StateStore,
    config: &EngineConfig,
    deadline: Deadline,
) -> Result<BatchOutcome, EngineError> {
    let now = crate::time::now();
    let mut outcome = BatchOutcome::default();
    outcome.report.kpl = event.kpl;
    outcome.report.records = event.items.len() as u64;
    outcome.report.iterator_age = event
        .items
        .iter()
        .filter_map(|item| item.record().age(now))
        .max();
    for (shard, items) in split_by_shard(event.items) {
        let key = ConsumerShard {
            consumer: config.consumer.clone(),
            shard,
        };
        let run = shard::ShardRun {
            key: &key,
            handler,
            store,
            config,
            deadline,
            now,
        };
        if let Some(retry_from) = Box::pin(run.process(&items, &mut outcome.report)).await? {
            outcome.response.retry_from(retry_from.sequence.to_string());
        }
    }
    Ok(outcome)
}

/// Groups items by shard, keeping each shard's order (Lambda sends one shard
/// per batch; hand-made events may mix them).
fn split_by_shard(items: Vec<Item>) -> Vec<(ShardRef, Vec<Item>)> {
    let Some(first) = items.first().map(|item| item.record().shard.clone()) else {
        return Vec::new();
    };
    if items.iter().all(|item| item.record().shard == first) {
        return vec![(first, items)];
    }
    let mut shards: Vec<(ShardRef, Vec<Item>)> = Vec::new();
    for item in items {
        let shard = &item.record().shard;
        match shards.iter_mut().find(|(s, _)| s == shard) {
            Some((_, list)) => list.push(item),
            None => shards.push((shard.clone(), vec![item])),
        }
    }
    shards
}

//! # Shardline
//!
//! Kinesis stream consumers on AWS Lambda, in Rust. You write the per-record
//! logic; Shardline decodes the batch (KPL aggregates included), keeps shard
//! order, reports partial batch failures so Lambda retries from the right
//! record, checkpoints each shard once per batch, skips what was already done,
//! and quarantines poison records with their payload.
//!
//! A record's path, one module per stage:
//!
//! | stage | module |
//! |---|---|
//! | event in, KPL deaggregation | [`decode`] (and [`sample`] to build events by hand) |
//! | records and their order | [`record`] |
//! | parent-shard guard | [`guard`] |
//! | skip rules (checkpointed, stale, duplicate) | [`skip`] |
//! | the user handler, its flush and its buffers | [`handler`], [`buffer`] |
//! | sinks: fan-out to streams | [`sink`] |
//! | the batch loop: open, run, flush, fold, commit | [`engine`] |
//! | tumbling windows: a state carried between invocations | [`window`] |
//! | poison records: the entry, its filters and store, replay, redrive | [`quarantine`] |
//! | a unit's progress: checkpoint, ranges done, attempts, what destinations hold | [`progress`] |
//! | the stores: progress, dedup claims, lineage, quarantine entries | [`state`] |
//! | response out, what happened | [`response`], [`report`], [`metrics`] |
//! | the function: settings, entry point, its own table | [`config`], [`app`], [`tables`] |
//! | leaves: time, errors, one retry policy, SQLite, the AWS kit | [`time`], [`error`], [`retry`], [`sqlite`], `aws` |
//!
//! Lower layers never import higher ones (`tests/tests/it/layout.rs` checks it):
//! the engine uses the guard, the handler and the state; none of them uses the engine.
//!
//! ## Glossary
//!
//! One meaning per word, in this crate's docs and in its own names:
//!
//! | word | means |
//! |---|---|
//! | record | one record as the handler sees it: a Kinesis record, or one user record of a KPL aggregate ([`Record`]) |
//! | aggregate | a KPL record that packs user records; Lambda knows only its outer sequence number |
//! | position | where a record sits in its shard: sequence number and subsequence ([`Position`]) |
//! | parent, child | the shards before and after a split or merge; a child waits for its parents ([`guard`]) |
//! | consumer | the name a function keeps its state under (`App::new("orders", …)`), one per event source mapping |
//! | mapping | Lambda's event source mapping: batch size, `ParallelizationFactor`, retries, bisect |
//! | progress | what is done of a unit: its checkpoint, the ranges done past it, attempts ([`progress`]) |
//! | unit | what progress is kept for: the whole shard (`SHARDLINE_PROGRESS=shard`) or one partition key ([`state::Unit`], [`ProgressMode`]) |
//! | store | where the state is kept, in three roles: the engine's progress, the guard's lineage, the operator's quarantine ([`state`]) |
//! | checkpoint | the position up to which a unit is done |
//! | commit | the one write of a unit's progress at the end of a batch, fenced by the version it read |
//! | settled | what a commit writes besides progress, under the same fence: quarantined records, released and done dedup claims ([`state::Settled`]) |
//! | lane | the engine's queue of a batch's records run one at a time: the whole shard, or one ordering key ([`engine`]) |
//! | slot | one of a shard's `ParallelizationFactor` batches in flight in Lambda's mapping (`shardline-esm`, `shardline-cli source`) |
//! | attempt | one try of a record that failed retryably, was cut off, or that a flush could not write; counted in progress |
//! | cut-off | a handler call stopped when only the time reserve is left before the deadline |
//! | quarantine | where a record that ran out of attempts or failed permanently goes, with its payload ([`quarantine`]) |
//! | replay, redrive | an operator runs quarantined records again in place, or puts them back on the stream |
//! | dedup claim | a record's hold on its dedup key: in flight until its commit marks it done ([`skip`]) |
//! | flush | the handler's end-of-batch step that writes what it buffered ([`Handler::flush`]) |
//! | sink | where a flush writes: the fan-out's destination streams ([`sink`]) |
//! | request queue | the Kinesis sink's line of PutRecords requests; `throughput` order sends several at once |
//! | window | a tumbling window's records and the state folded from them ([`window`]) |
//! | source | the stream a function reads, as against a destination it writes; a record's source is its position there ([`sink::OutRecord::source`]); `shardline-cli source` runs Lambda's mapping locally against it |
//!
//! ## Example
//!
//! ```no_run
//! use shardline::{App, Handler, HandlerError, Record};
//!
//! struct Orders;
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: String, cents: i64 }
//!
//! impl Handler for Orders {
//!     async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
//!         // Bad JSON will never parse: quarantine it and go on.
//!         let order: Order = record.json().map_err(HandlerError::permanent)?;
//!         // Any other error (`?`) is retryable: the shard stops here and
//!         // Lambda retries from this record.
//!         println!("order {} for {} cents", order.id, order.cents);
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), shardline::Error> {
//!     App::new("orders", Orders)
//!         .dedup_by(std::time::Duration::from_secs(3600), |r| {
//!             r.json::<serde_json::Value>().ok()?.get("id")?.as_str().map(String::from)
//!         })
//!         .run()
//!         .await
//! }
//! ```
//!
//! Locally, `cargo run -- invoke events/batch.json` processes an event file
//! against the embedded state in `.shardline/`. `shardline-cli new orders` writes
//! this function as a crate of its own, with sample events, a test and a SAM
//! template; in this repository, `cargo run -p ledger -- invoke
//! events/ledger/batch.json` runs the ledger the same way.

#![warn(missing_docs)]

pub mod app;
#[cfg(any(feature = "dynamodb", feature = "kinesis"))]
pub mod aws;
pub mod buffer;
pub mod config;
pub mod engine;
pub mod error;
pub mod guard;
pub mod handler;
pub(crate) mod logging;
pub mod metrics;
#[deprecated(note = "moved to shardline::quarantine (replay, redrive and their types)")]
pub mod ops;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod retry;
pub mod sink;
pub mod skip;
pub mod sqlite;
pub mod state;
pub mod tables;
pub mod window;

// The event: its own crate (`shardline-event`, no AWS SDK, SQLite or
// runtime), under the paths it always had here.
pub use shardline_event::{decode, record, response, sample, time};

/// This release of the framework (`shardline-lambda`'s version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use app::{App, Error};
pub use engine::{BatchOutcome, EngineConfig, process_event};
pub use error::BoxError;
pub use handler::{
    Batch, FailureKind, FlushError, Handler, HandlerError, RecordFailure, handler_fn,
};
pub use quarantine::{QuarantineReason, QuarantinedRecord};
pub use record::{Position, Record, RecordOrigin, SequenceNumber, SequenceNumberError, ShardRef};
pub use report::BatchReport;
pub use response::BatchResponse;
pub use skip::SkipRule;
pub use state::ProgressMode;
pub use time::Deadline;

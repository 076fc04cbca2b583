//! The rules of Lambda's Kinesis event source mapping, as a model with no I/O
//! and no clock of its own: what Lambda invokes next for one slot of a shard,
//! and what it does with the answer. `shardline-cli source` runs it over a real
//! stream and real function processes; the simulator (`shardline-sim`) runs it
//! over simulated ones. One model, so the two cannot drift apart.
//!
//! From the Lambda developer guide:
//! [with-kinesis](https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html),
//! [services-kinesis-batchfailurereporting](https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html),
//! [kinesis-on-failure-destination](https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html),
//! [services-kinesis-windows](https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html).
//!
//! - a batch is at most `BatchSize` records of one slot within the 6 MB
//!   payload ([`record`]); with `ParallelizationFactor` above 1, a shard's
//!   records go to slots by partition key hash ([`slot_of`]);
//! - a partial batch response makes Lambda retry from the lowest reported
//!   record; with `BisectBatchOnFunctionError` the batch is bisected at that
//!   record and only the rest is retried ([`answer`]);
//! - a function error (an error response, a crash, a timeout) fails the whole
//!   batch; with `BisectBatchOnFunctionError` it is split in two and each half
//!   retried, and splitting does not count as a retry;
//! - each other retry counts; past `MaximumRetryAttempts` the batch is
//!   discarded, and records older than `MaximumRecordAgeInSeconds` are
//!   discarded before an invocation; what is discarded goes to the on-failure
//!   destination as metadata ([`Discard`]);
//! - with tumbling windows, a batch holds one window's records, the state goes
//!   from answer to invocation, and a final invocation without records closes
//!   the window ([`window`]);
//! - an execution environment serves one invocation at a time, or up to
//!   `PerExecutionEnvironmentMaxConcurrency` at once on Lambda Managed
//!   Instances, and a process that dies fails every invocation it has in
//!   flight ([`Environments`]).

pub mod answer;
mod config;
mod discard;
mod environment;
pub mod record;
mod slot;
pub mod window;

pub use answer::{Verdict, verdict};
pub use config::MappingConfig;
pub use discard::Discard;
pub use environment::Environments;
pub use record::{MAX_PAYLOAD, StreamRecord};
pub use slot::{Answer, Answered, Invocation, SlotModel, Step, slot_of};

/// [`SlotModel`] under its old name (a lane is now only the engine's queue
/// of one ordering key within a batch).
#[deprecated(note = "renamed SlotModel")]
pub type LaneModel = SlotModel;

/// [`slot_of`] under its old name.
#[deprecated(note = "renamed slot_of")]
pub fn lane_of(partition_key: &str, slots: usize) -> usize {
    slot_of(partition_key, slots)
}

//! A deterministic simulation of Lambda's Kinesis event source mapping over
//! Shardline: the real engine, state stores, sink and guard, run over
//! simulated DynamoDB and Kinesis services on a paused tokio clock, with
//! faults, and every outcome checked against an oracle.
//!
//! - [`http`]: the seam: an SDK HTTP client that answers from an in-process
//!   service, so the real SDK clients (and the real store, sink and guard
//!   code above them) run unchanged;
//! - [`dynamodb`]: a simulated DynamoDB table service with fault injection;
//! - [`kinesis`]: simulated Kinesis streams (shards, splits and merges,
//!   PutRecords with entry failures, the reads of the parent-shard guard).

pub mod dynamodb;
pub mod explore;
pub mod faults;
pub mod function;
pub mod http;
pub mod kinesis;
pub mod mapping;
pub mod operator;
pub mod oracle;
pub mod reshard;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod world;

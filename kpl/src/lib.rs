//! # kpl
//!
//! The record aggregation format of the Kinesis Producer Library (KPL), for
//! Rust: pack many small user records into one Kinesis record, and expand
//! such records back into their user records, the way the KPL, the Kinesis
//! Client Library (KCL) and the `aws_kinesis_agg` reference implementation do.
//! No AWS dependency: the format is protobuf and an MD5 digest.
//!
//! An aggregated record is the four magic bytes [`KPL_MAGIC`], a protobuf
//! `AggregatedRecord` (a table of partition keys, a table of explicit hash
//! keys, and the user records pointing into them), then the 16-byte MD5 of
//! that protobuf. Its user records share the Kinesis record's sequence number
//! and are numbered by subsequence 0, 1, 2...
//!
//! - [`deaggregate`] never fails: data without the magic is
//!   [`Deaggregated::Plain`]; data with the magic that fails the MD5 or the
//!   protobuf check is [`Deaggregated::Fallback`], to be handled as one plain
//!   record, as the KCL does. [`user_records`] applies that rule for you.
//! - [`Aggregator`] packs user records into aggregates within the Kinesis
//!   limits (1 MiB per record by default, up to 10 MiB for raised streams,
//!   the aggregate's partition key counted), checking each record's partition
//!   key and explicit hash key; [`AggregateError`] says what is wrong.
//! - [`partition_key_hash`] and [`UserRecord::hash_key`] give the 128-bit hash
//!   key Kinesis routes a record by, to pick the shard an aggregate goes to.
//!
//! ## Example
//!
//! ```
//! use kpl::{Aggregator, Deaggregated, UserRecord, deaggregate};
//!
//! let mut aggregator = Aggregator::new();
//! let mut full = Vec::new();
//! for i in 0..1_000 {
//!     let record = UserRecord::new(format!("user-{}", i % 10), format!("event {i}"));
//!     // `add` hands back the previous aggregate when this record does not fit.
//!     full.extend(aggregator.add(record)?);
//! }
//! full.extend(aggregator.finish());
//! assert_eq!(full.len(), 1, "1,000 small records fit in one 1 MiB record");
//!
//! // Put `full[0].data` with `full[0].partition_key` (and its explicit hash key)...
//! // ...and on the consumer side:
//! let Deaggregated::Aggregate(records) = deaggregate(&full[0].data) else {
//!     panic!("not an aggregate");
//! };
//! assert_eq!(records.len(), 1_000);
//! assert_eq!(records[3].partition_key, "user-3");
//! assert_eq!(records[3].data, "event 3");
//! # Ok::<(), kpl::AggregateError>(())
//! ```

#![warn(missing_docs)]

mod aggregate;
mod deaggregate;
mod limits;
mod proto;
mod record;

pub use aggregate::{Aggregate, AggregateError, Aggregator, aggregate};
pub use deaggregate::{Deaggregated, InvalidAggregate, deaggregate, user_records};
pub use limits::{
    MAX_HASH_KEY, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT,
    parse_explicit_hash_key, partition_key_hash, validate_partition_key,
};
pub use record::UserRecord;

/// The four bytes every KPL aggregated record starts with.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The length of the MD5 digest that ends an aggregated record.
pub const DIGEST_LEN: usize = 16;

/// The README's examples, run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

//! # shardline-event
//!
//! The Kinesis event of an AWS Lambda function: its records, their
//! positions, decoding (KPL aggregates included), sample events for tests,
//! and the partial batch response. No AWS SDK, SQLite or Lambda runtime: the
//! framework, `shardline-lambda`, re-exports every module here under the same
//! path (`shardline_event::decode` is [`decode`]).
//!
//! | module | holds |
//! |---|---|
//! | [`record`] | [`Record`], [`Position`], [`SequenceNumber`], [`ShardRef`] |
//! | [`decode`] | the event's JSON to records: base64, KPL, undecodable records kept with their reason |
//! | [`sample`] | events built by hand |
//! | [`response`] | [`BatchResponse`]: `batchItemFailures` |
//! | [`time`] | [`Deadline`], the wall clock and epoch conversions |
//!
//! ```
//! use shardline_event::decode::{Item, decode_event};
//! use shardline_event::sample::{SampleRecord, event_json, sequence_number};
//!
//! let event = event_json(&[SampleRecord::new(sequence_number(1), b"hello")]);
//! let decoded = decode_event(event.to_string().as_bytes()).unwrap();
//! let Item::Ready(record) = &decoded.items[0] else { panic!("decodes") };
//! assert_eq!(&record.data[..], b"hello");
//! ```

pub mod decode;
pub mod record;
pub mod response;
pub mod sample;
pub mod time;

pub use record::{Position, Record, RecordOrigin, SequenceNumber, SequenceNumberError, ShardRef};
pub use response::BatchResponse;
pub use time::Deadline;

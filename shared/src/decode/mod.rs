//! Event in: from the Lambda event's JSON to Shardline [`Record`](crate::Record)s.
//!
//! [`event`] reads the Kinesis event envelope leniently (one bad record does not
//! fail the event); [`kpl`] expands KPL aggregated records into their user records.

pub mod event;
pub mod kpl;

pub use event::{
    DecodedEvent, EventError, Item, KinesisEventEnvelope, KplCounts, decode_envelope, decode_event,
};

//! Event in: from the Lambda event's JSON to Shardline [`Record`](crate::Record)s.
//!
//! [`event`] reads the Kinesis event envelope leniently (one bad record does not
//! fail the event); [`kpl`] expands KPL aggregated records into their user records.

mod envelope;
pub mod event;
pub mod kpl;
mod records;

pub use event::{
    DecodeOptions, DecodedEvent, EventError, Item, KinesisEventEnvelope, KplCounts,
    decode_envelope, decode_event, decode_event_with,
};

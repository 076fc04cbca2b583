//! Sinks: where records go after the handler, such as other Kinesis streams.
//!
//! A [`Sink`] delivers a slice of [`OutRecord`]s to one destination and says,
//! record by record, what it delivered. [`FanOut`] is a ready [`Handler`]
//! that copies every record to N sinks, concurrently, keeping per destination
//! what was delivered in Shardline's state (beside the checkpoint), so a Lambda
//! retry after one destination failed writes nothing twice to the others.
//!
//! - [`kinesis::KinesisSink`]: PutRecords within the service limits, retrying
//!   only failed entries, in one of two [`DeliveryOrder`]s; optionally packing
//!   the records bound for one destination shard into KPL aggregates.
//! - [`file::FileSink`]: JSON lines in a local file, so a local `invoke` shows
//!   what would have been sent.
//!
//! [`Handler`]: crate::Handler

pub mod fanout;
pub mod file;
#[cfg(feature = "kinesis")]
pub mod kinesis;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::record::{Position, Record};
use crate::time::Deadline;

pub use fanout::{Destinations, FanOut, StaticDestinations};
#[cfg(feature = "kinesis")]
pub use kinesis::DEFAULT_MAX_RECORD_BYTES;
#[cfg(not(feature = "kinesis"))]
/// The default largest record: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// A record on its way to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Where it came from in the source shard (its identity for progress).
    pub source: Position,
    /// Its partition key (a KPL user record's own key).
    pub partition_key: String,
    /// Its explicit hash key, if it was put with one.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
}

impl OutRecord {
    /// The record as it came, to be copied.
    pub fn copy_of(record: &Record) -> Self {
        OutRecord {
            source: record.position.clone(),
            partition_key: record.partition_key.clone(),
            explicit_hash_key: record.explicit_hash_key.clone(),
            data: record.data.clone(),
        }
    }

    /// Its size as Kinesis counts it: payload plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Order guarantees of a delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryOrder {
    /// Per partition key: a record is sent only after the previous record of its
    /// key has succeeded, so partial failures and retries cannot reorder a key.
    /// Requests carry at most one record per key; with few keys, more requests.
    #[default]
    Ordered,
    /// Full requests, several in flight, each key in one line of requests (so a
    /// key keeps its order while nothing fails); failed entries are retried in
    /// later requests, so a key may be reordered when an entry fails. Nothing is lost.
    Throughput,
}

impl std::str::FromStr for DeliveryOrder {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ordered" => Ok(DeliveryOrder::Ordered),
            "throughput" => Ok(DeliveryOrder::Throughput),
            other => Err(format!("unknown delivery order {other:?}")),
        }
    }
}

/// Why a delivery stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The destination refuses for a reason retrying cannot mend (not found,
    /// access denied, KMS, invalid request): fail fast.
    #[error("destination {destination} refuses writes ({code}): {message}")]
    Refused {
        /// The destination stream (or file).
        destination: String,
        /// The error code, such as `ResourceNotFoundException`.
        code: String,
        /// The service's message.
        message: String,
    },
    /// Retries ran out of time with records still undelivered.
    #[error(
        "destination {destination}: {undelivered} records still undelivered when time ran out (last error: {last_error})"
    )]
    Incomplete {
        /// The destination.
        destination: String,
        /// Records not delivered.
        undelivered: usize,
        /// The last failure seen.
        last_error: String,
    },
    /// A local file could not be written.
    #[error("destination file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// One flag per record given to [`Sink::send`]: delivered or not.
    pub delivered: Vec<bool>,
    /// Records the destination refuses for what they are (an invalid partition
    /// key, too large): sending them again cannot help. Index and reason.
    pub rejected: Vec<(usize, String)>,
    /// Records never sent: the time ran out before their turn. Nothing went
    /// wrong with them (a fan-out counts no attempt against them).
    pub not_tried: Vec<usize>,
    /// Requests made (PutRecords calls, or file writes).
    pub requests: u64,
    /// Entries sent again after failing.
    pub retried_entries: u64,
    /// Why the other undelivered records were not delivered, if any are left.
    pub error: Option<SinkError>,
    /// Counts of its own the sink reports with the batch's metrics (the
    /// Kinesis sink's `FanoutAggregates`, `FanoutAggregatedRecords`,
    /// `FanoutWrongShard`, `FanoutGivenUp`), by metric name.
    pub counts: std::collections::BTreeMap<&'static str, u64>,
}

impl SendOutcome {
    /// Whether every record was delivered.
    pub fn is_complete(&self) -> bool {
        self.delivered.iter().all(|d| *d)
    }

    /// Counts `records` sent in requests given up on at the deadline
    /// (`FanoutGivenUp`): they may have been written, and a retry may write
    /// them again.
    pub fn note_given_up(&mut self, records: usize) {
        if records > 0 {
            *self.counts.entry("FanoutGivenUp").or_default() += records as u64;
        }
    }
}

/// The longest partition key Kinesis takes, in characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Why Kinesis would refuse `record` whatever the stream, checked before it is
/// sent (one such record makes PutRecords refuse its whole request): the size
/// (payload and partition key) over `max_record_bytes`, a partition key empty
/// or over 256 characters, an explicit hash key that is not a decimal number
/// below 2^128.
///
/// # Errors
/// What is wrong, naming the record's source position.
///
/// ```
/// use shardline::sink::{OutRecord, validate};
/// let mut record = OutRecord {
///     source: shardline::Position::new("1".parse().unwrap(), 0),
///     partition_key: "user-1".into(),
///     explicit_hash_key: None,
///     data: bytes::Bytes::from_static(b"{}"),
/// };
/// assert!(validate(&record, 1024 * 1024).is_ok());
/// record.partition_key = "k".repeat(257);
/// assert!(validate(&record, 1024 * 1024).unwrap_err().contains("partition key"));
/// ```
pub fn validate(record: &OutRecord, max_record_bytes: usize) -> Result<(), String> {
    let chars = record.partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(format!(
            "record {} has a partition key of {chars} characters; Kinesis takes 1 to {MAX_PARTITION_KEY_CHARS}",
            record.source
        ));
    }
    if let Some(key) = &record.explicit_hash_key
        && !is_hash_key(key)
    {
        return Err(format!(
            "record {} has explicit hash key {key:?}, not a decimal number from 0 to 2^128 - 1",
            record.source
        ));
    }
    if record.size() > max_record_bytes {
        return Err(format!(
            "record {} is {} bytes with its partition key, over the {max_record_bytes} bytes a destination takes",
            record.source,
            record.size()
        ));
    }
    Ok(())
}

/// A decimal number from 0 to 2^128 - 1, without leading zeros (the pattern
/// `0|([1-9]\d{0,38})` of the Kinesis API, and in range).
fn is_hash_key(text: &str) -> bool {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits_only && (text == "0" || !text.starts_with('0')) && text.parse::<u128>().is_ok()
}

/// One destination.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shardline::sink::{OutRecord, Sink, file::FileSink};
/// use shardline::{Deadline, Position};
///
/// let path = std::env::temp_dir().join(format!("doc-sink-{}.jsonl", std::process::id()));
/// let sink = FileSink::new("orders-copy", &path);
/// let record = OutRecord {
///     source: Position::new("1".parse().unwrap(), 0),
///     partition_key: "user-1".into(),
///     explicit_hash_key: None,
///     data: bytes::Bytes::from_static(b"{}"),
/// };
/// let outcome = sink.send(&[record], Deadline::none()).await;
/// assert!(outcome.is_complete());
/// assert_eq!(outcome.delivered, [true]);
/// # let _ = std::fs::remove_file(path); }
/// ```
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// The destination's name (stream name or ARN, or file): the key of its progress.
    fn destination(&self) -> &str;

    /// The largest record (payload plus partition key) it takes.
    fn max_record_bytes(&self) -> usize;

    /// Delivers `records`, in order as its [`DeliveryOrder`] promises, retrying
    /// what fails while `deadline` allows (a request is not started when it
    /// could not answer in time). Never fails as a whole: the outcome says record
    /// by record what was delivered, what was rejected, and why not all, if so.
    async fn send(&self, records: &[OutRecord], deadline: Deadline) -> SendOutcome;
}

//! The Lambda Kinesis event, read leniently.
//!
//! `aws_lambda_events` decodes `data` while deserializing, so one record with bad
//! base64 fails the whole event. Shardline reads the envelope itself: every field
//! is optional at the serde level, and each record's problems are judged one by
//! one. A bad payload becomes a per-record [`Item::Undecodable`]; only an event
//! that is not a Kinesis event at all is an [`EventError`].

use super::envelope::{BorrowedEnvelope, RecordView};
pub use super::envelope::{EnvelopeKinesis, EnvelopeRecord, KinesisEventEnvelope};
use super::records::decode_views;
use crate::record::Record;

/// Why an event cannot be handled at all (the whole invocation fails).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The input is not JSON of the event's shape.
    #[error("the event is not JSON of a Kinesis event: {0}")]
    NotJson(#[from] serde_json::Error),
    /// The event has no `Records` array: not a Kinesis event.
    #[error("the event has no \"Records\" array: not a Kinesis event")]
    NoRecords,
    /// A record comes from another event source.
    #[error(
        "record {index} has eventSource {event_source:?}, not \"aws:kinesis\": not a Kinesis event"
    )]
    NotKinesis {
        /// Index of the record in `Records`.
        index: usize,
        /// The event source it names.
        event_source: String,
    },
    /// A record lacks what ordering needs (shard, sequence number).
    #[error("record {index} (eventID {event_id:?}) cannot be placed in its shard: {reason}")]
    Unplaceable {
        /// Index of the record in `Records`.
        index: usize,
        /// Its `eventID`, if it has one.
        event_id: Option<String>,
        /// What is missing or wrong.
        reason: String,
    },
}

/// One Kinesis record of the event, decoded or not.
#[derive(Debug, Clone)]
pub enum Item {
    /// A user record ready for the handler (a plain record or one KPL user record).
    Ready(Record),
    /// A Kinesis record whose payload could not be decoded. `record.data` holds
    /// the `data` field exactly as it came, so the quarantine keeps it.
    Undecodable {
        /// The record, with its raw `data` text as payload.
        record: Record,
        /// What is wrong with it.
        reason: String,
    },
}

impl Item {
    /// The record, whether decoded or not.
    pub fn record(&self) -> &Record {
        match self {
            Item::Ready(record) | Item::Undecodable { record, .. } => record,
        }
    }
}

/// Counts of what KPL deaggregation did in one event.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KplCounts {
    /// Aggregated Kinesis records expanded.
    pub aggregates: u64,
    /// User records they held.
    pub user_records: u64,
    /// Records with the KPL magic that failed its checks and went on as plain records.
    pub fallbacks: u64,
}

/// A decoded event: its items in delivery order, and KPL counts.
#[derive(Debug, Default, Clone)]
pub struct DecodedEvent {
    /// User records (or undecodable records), in the order they were delivered.
    pub items: Vec<Item>,
    /// What deaggregation found.
    pub kpl: KplCounts,
}

/// Decodes a Lambda Kinesis event from JSON bytes.
///
/// # Errors
/// [`EventError`] when the input is not a Kinesis event, or a record lacks its
/// shard or a valid sequence number. A bad payload is not an error here: it
/// becomes [`Item::Undecodable`].
///
/// ```
/// let event = br#"{"Records":[{"eventID":"shardId-000000000006:49545115243490985018280067714973144582180062593244200961",
///   "eventSource":"aws:kinesis","eventSourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s",
///   "kinesis":{"partitionKey":"k","sequenceNumber":"49545115243490985018280067714973144582180062593244200961",
///   "data":"aGVsbG8=","approximateArrivalTimestamp":1545084650.987}}]}"#;
/// let decoded = shardline_event::decode::decode_event(event)?;
/// assert_eq!(decoded.items[0].record().text(), Some("hello"));
/// # Ok::<(), shardline_event::decode::EventError>(())
/// ```
pub fn decode_event(json: &[u8]) -> Result<DecodedEvent, EventError> {
    decode_event_with(json, &DecodeOptions::default())
}

/// How [`decode_event_with`] decodes: on how many threads.
///
/// The JSON is parsed on the calling thread; base64 decoding and KPL
/// deaggregation can be split across threads by payload size
/// ([`DecodeOptions::threads`]). The default is one thread: on 2 cores,
/// events within Lambda's 6 MB payload limit decoded no faster on two
/// (BENCHMARKS.md, table 1), and an 18 MB event only about 3% faster. Events
/// with less than [`DecodeOptions::PARALLEL_MIN_TEXT`] of payload text always
/// use the calling thread alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    threads: usize,
}

impl Default for DecodeOptions {
    /// One thread.
    fn default() -> Self {
        DecodeOptions { threads: 1 }
    }
}

impl DecodeOptions {
    /// Payload text (base64 bytes) below which an event is decoded on one thread.
    pub const PARALLEL_MIN_TEXT: usize = 512 * 1024;

    /// Decode payloads on up to `threads` threads (at least 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The threads to use for `records` records of `text` payload bytes.
    pub(super) fn threads_for(&self, records: usize, text: usize) -> usize {
        if text < Self::PARALLEL_MIN_TEXT {
            1
        } else {
            self.threads.min(records).max(1)
        }
    }
}

/// [`decode_event`] with options.
///
/// # Errors
/// As [`decode_event`].
pub fn decode_event_with(json: &[u8], options: &DecodeOptions) -> Result<DecodedEvent, EventError> {
    let envelope: BorrowedEnvelope<'_> = serde_json::from_slice(json)?;
    let records = envelope.records.ok_or(EventError::NoRecords)?;
    let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
    decode_views(&views, options)
}

/// Decodes an already deserialized envelope.
///
/// # Errors
/// As [`decode_event`].
pub fn decode_envelope(envelope: KinesisEventEnvelope) -> Result<DecodedEvent, EventError> {
    let records = envelope.records.ok_or(EventError::NoRecords)?;
    let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
    decode_views(&views, &DecodeOptions::default())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use bytes::Bytes;

    use super::*;
    use crate::RecordOrigin;
    use crate::decode::kpl::{UserRecord, aggregate};
    use crate::sample::{SampleRecord, event_bytes};

    fn event(records: &[SampleRecord]) -> Vec<u8> {
        event_bytes(records)
    }

    fn record(seq: &str, data: &str) -> SampleRecord {
        SampleRecord::raw(seq, data)
            .shard(
                "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                "shardId-000000000001",
            )
            .arrived(Some(1_700_000_000.5))
    }

    #[test]
    fn bad_base64_is_one_undecodable_item_not_an_event_error() {
        let decoded = decode_event(&event(&[
            record("1", "aGVsbG8="),
            record("2", "%%% not base64"),
            record("3", "d29ybGQ="),
        ]))
        .unwrap();
        assert_eq!(decoded.items.len(), 3);
        assert!(matches!(&decoded.items[0], Item::Ready(r) if r.text() == Some("hello")));
        match &decoded.items[1] {
            Item::Undecodable { record, reason } => {
                assert_eq!(record.position.sequence.as_str(), "2");
                assert_eq!(&*record.shard.shard_id, "shardId-000000000001");
                assert_eq!(&record.data[..], b"%%% not base64");
                assert!(reason.contains("base64"), "{reason}");
            }
            other => panic!("expected undecodable, got {other:?}"),
        }
        assert!(matches!(&decoded.items[2], Item::Ready(r) if r.text() == Some("world")));
    }

    #[test]
    fn other_event_sources_are_rejected_by_name() {
        let sqs = serde_json::json!({"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": "x"}]});
        let err = decode_event(&serde_json::to_vec(&sqs).unwrap()).unwrap_err();
        assert!(err.to_string().contains("aws:sqs"), "{err}");
        let err = decode_event(br#"{"hello":"world"}"#).unwrap_err();
        assert!(matches!(err, EventError::NoRecords), "{err}");
        let err = decode_event(b"[1,2]").unwrap_err();
        assert!(matches!(err, EventError::NotJson(_)), "{err}");
    }

    #[test]
    fn unplaceable_records_name_the_record() {
        let bad = record("12x", "aGVsbG8=");
        let err = decode_event(&event(&[record("1", ""), bad])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("record 1") && text.contains("12x"), "{text}");
    }

    #[test]
    fn aggregates_expand_with_subsequence_numbers() {
        let users: Vec<UserRecord> = (0..3)
            .map(|i| UserRecord {
                partition_key: format!("user-{i}"),
                explicit_hash_key: None,
                data: Bytes::from(format!("payload-{i}")),
            })
            .collect();
        let data = base64::engine::general_purpose::STANDARD.encode(aggregate(&users));
        let decoded = decode_event(&event(&[record("7", &data), record("8", "eA==")])).unwrap();
        assert_eq!(decoded.kpl.aggregates, 1);
        assert_eq!(decoded.kpl.user_records, 3);
        let positions: Vec<String> = decoded
            .items
            .iter()
            .map(|item| item.record().position.to_string())
            .collect();
        assert_eq!(positions, ["7/0", "7/1", "7/2", "8/0"]);
        let second = decoded.items[1].record();
        assert_eq!(second.partition_key, "user-1");
        assert_eq!(second.text(), Some("payload-1"));
        assert_eq!(second.origin, RecordOrigin::Aggregated { count: 3 });
    }

    /// A record of every kind: plain, KPL, fallback, bad base64, no data.
    fn mixed(i: usize) -> SampleRecord {
        let seq = format!("{}", 1_000 + i);
        match i % 5 {
            0 => record(&seq, "%%%"),
            1 => {
                let users: Vec<UserRecord> = (0..3)
                    .map(|u| UserRecord {
                        partition_key: format!("k{u}"),
                        explicit_hash_key: None,
                        data: Bytes::from(format!("user {i}/{u}")),
                    })
                    .collect();
                let data = base64::engine::general_purpose::STANDARD.encode(aggregate(&users));
                record(&seq, &data)
            }
            2 => {
                let mut fake = crate::decode::kpl::KPL_MAGIC.to_vec();
                fake.extend_from_slice(&[0u8; 40]);
                record(
                    &seq,
                    &base64::engine::general_purpose::STANDARD.encode(fake),
                )
            }
            _ => record(
                &seq,
                &base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 700 + i]),
            ),
        }
    }

    #[test]
    fn threads_decode_exactly_what_one_thread_does() {
        let mut records: Vec<SampleRecord> = (0..1_500).map(mixed).collect();
        records.push(SampleRecord {
            data_field: String::new(),
            ..record("9999", "")
        });
        let mut json: serde_json::Value = crate::sample::event_json(&records);
        json["Records"][703]["kinesis"]
            .as_object_mut()
            .unwrap()
            .remove("data");
        let bytes = serde_json::to_vec(&json).unwrap();
        assert!(bytes.len() > DecodeOptions::PARALLEL_MIN_TEXT);
        let one = decode_event_with(&bytes, &DecodeOptions::default().threads(1)).unwrap();
        for threads in [2, 3, 8] {
            let many =
                decode_event_with(&bytes, &DecodeOptions::default().threads(threads)).unwrap();
            assert_eq!(many.kpl, one.kpl, "{threads} threads");
            assert_eq!(many.items.len(), one.items.len());
            for (a, b) in one.items.iter().zip(&many.items) {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{threads} threads");
            }
        }
        assert_eq!(one.kpl.aggregates, 300);
        assert_eq!(one.kpl.fallbacks, 300);
        let undecodable = one
            .items
            .iter()
            .filter(|i| matches!(i, Item::Undecodable { .. }))
            .count();
        assert_eq!(
            undecodable,
            300 + 1,
            "bad base64, and the record without data"
        );
        let empty = one.items.last().unwrap();
        assert!(
            matches!(empty, Item::Ready(r) if r.data.is_empty()),
            "empty data is an empty payload"
        );
        // Each plain payload is its own slice, whatever buffer it shares.
        let plain = one
            .items
            .iter()
            .find(|i| i.record().position.sequence.as_str() == "1003")
            .unwrap();
        assert_eq!(&plain.record().data[..], &vec![b'x'; 703][..]);
    }

    #[test]
    fn the_first_unplaceable_record_is_named_whichever_thread_finds_it() {
        let mut records: Vec<SampleRecord> = (0..1_200).map(|i| mixed(3 + 5 * i)).collect();
        records[1_100].sequence_number = "12x".into();
        records[900].sequence_number = "34y".into();
        let bytes = event(&records);
        for threads in [1, 2, 4] {
            let err =
                decode_event_with(&bytes, &DecodeOptions::default().threads(threads)).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("record 900") && text.contains("34y"),
                "{threads}: {text}"
            );
        }
    }
}

//! The Lambda Kinesis event, read leniently.
//!
//! `aws_lambda_events` decodes `data` while deserializing, so one record with bad
//! base64 fails the whole event. Shardline reads the envelope itself: every field
//! is optional at the serde level, and each record's problems are judged one by
//! one. A bad payload becomes a per-record [`Item::Undecodable`]; only an event
//! that is not a Kinesis event at all is an [`EventError`].

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::kpl::{Deaggregated, deaggregate};
use crate::record::{Position, Record, RecordOrigin, SequenceNumber, ShardRef};

/// A Lambda event from a Kinesis event source mapping, as JSON gives it.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct KinesisEventEnvelope {
    /// The records (`Records`).
    #[serde(rename = "Records", default)]
    pub records: Option<Vec<EnvelopeRecord>>,
}

/// One entry of `Records`.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeRecord {
    #[serde(rename = "eventID")]
    pub event_id: Option<String>,
    pub event_source: Option<String>,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    pub kinesis: Option<EnvelopeKinesis>,
}

/// The `kinesis` object of a record.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeKinesis {
    pub partition_key: Option<String>,
    pub sequence_number: Option<String>,
    pub data: Option<String>,
    pub approximate_arrival_timestamp: Option<f64>,
}

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
/// let decoded = shardline::decode::decode_event(event)?;
/// assert_eq!(decoded.items[0].record().text(), Some("hello"));
/// # Ok::<(), shardline::decode::EventError>(())
/// ```
pub fn decode_event(json: &[u8]) -> Result<DecodedEvent, EventError> {
    let envelope: KinesisEventEnvelope = serde_json::from_slice(json)?;
    decode_envelope(envelope)
}

/// Decodes an already deserialized envelope (what the Lambda runtime hands over).
///
/// # Errors
/// As [`decode_event`].
pub fn decode_envelope(envelope: KinesisEventEnvelope) -> Result<DecodedEvent, EventError> {
    let records = envelope.records.ok_or(EventError::NoRecords)?;
    let mut decoded = DecodedEvent {
        items: Vec::with_capacity(records.len()),
        kpl: KplCounts::default(),
    };
    // Records of one batch share their stream and shard: intern them once.
    let mut last_shard: Option<ShardRef> = None;
    for (index, record) in records.into_iter().enumerate() {
        if let Some(source) = &record.event_source
            && source != "aws:kinesis"
        {
            return Err(EventError::NotKinesis {
                index,
                event_source: source.clone(),
            });
        }
        let unplaceable = |event_id: &Option<String>, reason: String| EventError::Unplaceable {
            index,
            event_id: event_id.clone(),
            reason,
        };
        let Some(kinesis) = record.kinesis else {
            return Err(unplaceable(
                &record.event_id,
                "it has no \"kinesis\" object".into(),
            ));
        };
        let shard_id = record
            .event_id
            .as_deref()
            .and_then(|id| id.split_once(':'))
            .map(|(shard, _)| shard)
            .filter(|shard| !shard.is_empty())
            .ok_or_else(|| {
                unplaceable(
                    &record.event_id,
                    "its eventID is not \"<shardId>:<sequenceNumber>\"".into(),
                )
            })?;
        let sequence_text = kinesis.sequence_number.as_deref().ok_or_else(|| {
            unplaceable(&record.event_id, "it has no kinesis.sequenceNumber".into())
        })?;
        let sequence: SequenceNumber = sequence_text
            .parse()
            .map_err(|e| unplaceable(&record.event_id, format!("{e}")))?;
        let stream_arn = record.event_source_arn.as_deref().unwrap_or("");
        let shard = match &last_shard {
            Some(shard) if &*shard.shard_id == shard_id && &*shard.stream_arn == stream_arn => {
                shard.clone()
            }
            _ => {
                let shard = ShardRef {
                    stream_arn: Arc::from(stream_arn),
                    shard_id: Arc::from(shard_id),
                };
                last_shard = Some(shard.clone());
                shard
            }
        };
        let base = Record {
            shard,
            position: Position::new(sequence, 0),
            partition_key: kinesis.partition_key.unwrap_or_default(),
            kinesis_partition_key: None,
            explicit_hash_key: None,
            data: Bytes::new(),
            approximate_arrival: kinesis
                .approximate_arrival_timestamp
                .and_then(crate::record::arrival_from_epoch_seconds),
            origin: RecordOrigin::Plain,
        };
        push_payload(&mut decoded, base, kinesis.data);
    }
    Ok(decoded)
}

fn push_payload(decoded: &mut DecodedEvent, mut base: Record, data: Option<String>) {
    let Some(text) = data else {
        decoded.items.push(Item::Undecodable {
            record: base,
            reason: "kinesis.data is missing".into(),
        });
        return;
    };
    let bytes = match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            base.data = Bytes::from(text);
            decoded.items.push(Item::Undecodable {
                record: base,
                reason: format!("kinesis.data is not valid base64: {e}"),
            });
            return;
        }
    };
    match deaggregate(&bytes) {
        Deaggregated::Plain => {
            base.data = bytes;
            decoded.items.push(Item::Ready(base));
        }
        Deaggregated::Fallback(reason) => {
            tracing::warn!(
                shard = %base.shard.shard_id,
                sequence_number = %base.position.sequence,
                reason,
                "record has the KPL magic but is not a valid aggregate; handled as a plain record"
            );
            decoded.kpl.fallbacks += 1;
            base.data = bytes;
            base.origin = RecordOrigin::AggregateFallback;
            decoded.items.push(Item::Ready(base));
        }
        Deaggregated::Aggregate(users) => {
            decoded.kpl.aggregates += 1;
            let count = users.len() as u64;
            decoded.kpl.user_records += count;
            let outer_key: Arc<str> = Arc::from(base.partition_key.as_str());
            for (subsequence, user) in (0u64..).zip(users) {
                decoded.items.push(Item::Ready(Record {
                    shard: base.shard.clone(),
                    position: Position::new(base.position.sequence.clone(), subsequence),
                    partition_key: user.partition_key,
                    kinesis_partition_key: Some(outer_key.clone()),
                    explicit_hash_key: user.explicit_hash_key,
                    data: user.data,
                    approximate_arrival: base.approximate_arrival,
                    origin: RecordOrigin::Aggregated { count },
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}

//! From the event's records to [`Item`]s: each record placed in its shard,
//! its `data` decoded from base64 and expanded if it is a KPL aggregate.
//!
//! The payloads of one run of records are decoded into one buffer, and each
//! record's [`Bytes`] is a slice of it: one allocation instead of one per
//! record. Runs can go to threads of their own ([`DecodeOptions`]), split by
//! payload size; their items are joined back in delivery order, and the first
//! error by record index wins, as on one thread.

use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;

use super::envelope::RecordView;
use super::event::{DecodeOptions, DecodedEvent, EventError, Item};
use super::kpl::{Deaggregated, deaggregate};
use crate::record::{Position, Record, RecordOrigin, SequenceNumber, ShardRef};

/// Decodes `views` (records `0..`) into items, on the threads `options` allows.
pub(super) fn decode_views(
    views: &[RecordView<'_>],
    options: &DecodeOptions,
) -> Result<DecodedEvent, EventError> {
    let text = |view: &RecordView<'_>| view.kinesis.and_then(|k| k.data).map_or(0, str::len);
    let total: usize = views.iter().map(text).sum();
    let threads = options.threads_for(views.len(), total);
    if threads <= 1 {
        return decode_run(views, 0);
    }
    // Cut into runs of about equal payload text.
    let mut runs = Vec::with_capacity(threads);
    let (mut start, mut sum) = (0, 0);
    for (index, view) in views.iter().enumerate() {
        sum += text(view);
        if sum * threads >= total * (runs.len() + 1) && runs.len() + 1 < threads {
            runs.push(start..index + 1);
            start = index + 1;
        }
    }
    runs.push(start..views.len());
    std::thread::scope(|scope| {
        let mut runs = runs.into_iter();
        let first = runs.next().unwrap_or(0..0);
        let others: Vec<_> = runs
            .map(|run| scope.spawn(move || decode_run(&views[run.clone()], run.start)))
            .collect();
        let mut decoded = decode_run(&views[first.clone()], first.start)?;
        for other in others {
            let part = other
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            decoded.kpl.aggregates += part.kpl.aggregates;
            decoded.kpl.user_records += part.kpl.user_records;
            decoded.kpl.fallbacks += part.kpl.fallbacks;
            decoded.items.extend(part.items);
        }
        Ok(decoded)
    })
}

/// What a record's `data` came to, before the buffer is frozen.
enum Payload {
    /// Decoded into the buffer at this range.
    Decoded(Range<usize>),
    /// No `data` field.
    Missing,
    /// Not base64: the text as it came, and why.
    Bad(Bytes, String),
}

/// Decodes one run of records; `first_index` is the index of `views[0]` in the event.
fn decode_run(views: &[RecordView<'_>], first_index: usize) -> Result<DecodedEvent, EventError> {
    let capacity = views
        .iter()
        .filter_map(|view| view.kinesis.and_then(|k| k.data))
        .map(|text| text.len() / 4 * 3)
        .sum();
    let mut buffer: Vec<u8> = Vec::with_capacity(capacity);
    let mut placed = Vec::with_capacity(views.len());
    let mut last_shard: Option<ShardRef> = None;
    for (offset, view) in views.iter().enumerate() {
        let base = place(view, first_index + offset, &mut last_shard)?;
        let data = view.kinesis.and_then(|k| k.data);
        placed.push((base, decode_into(&mut buffer, data)));
    }
    let buffer = Bytes::from(buffer);
    let mut decoded = DecodedEvent {
        items: Vec::with_capacity(views.len()),
        ..DecodedEvent::default()
    };
    for (mut base, payload) in placed {
        match payload {
            Payload::Decoded(range) => push_payload(&mut decoded, base, buffer.slice(range)),
            Payload::Missing => decoded.items.push(Item::Undecodable {
                record: base,
                reason: "kinesis.data is missing".into(),
            }),
            Payload::Bad(text, reason) => {
                base.data = text;
                decoded.items.push(Item::Undecodable {
                    record: base,
                    reason,
                });
            }
        }
    }
    Ok(decoded)
}

/// Appends the base64 `text` decoded to `buffer`.
fn decode_into(buffer: &mut Vec<u8>, text: Option<&str>) -> Payload {
    let Some(text) = text else {
        return Payload::Missing;
    };
    let start = buffer.len();
    match base64_simd::STANDARD.decode_append(text.as_bytes(), &mut *buffer) {
        Ok(_) => Payload::Decoded(start..buffer.len()),
        Err(_) => {
            buffer.truncate(start);
            // The SIMD decoder says only that it failed; this one says where.
            let detail = match base64::engine::general_purpose::STANDARD.decode(text) {
                Err(e) => e.to_string(),
                Ok(_) => "not canonical base64".to_owned(),
            };
            Payload::Bad(
                Bytes::copy_from_slice(text.as_bytes()),
                format!("kinesis.data is not valid base64: {detail}"),
            )
        }
    }
}

/// The record without its payload: shard, position, keys, arrival.
fn place(
    view: &RecordView<'_>,
    index: usize,
    last_shard: &mut Option<ShardRef>,
) -> Result<Record, EventError> {
    if let Some(source) = view.event_source
        && source != "aws:kinesis"
    {
        return Err(EventError::NotKinesis {
            index,
            event_source: source.to_owned(),
        });
    }
    let unplaceable = |reason: String| EventError::Unplaceable {
        index,
        event_id: view.event_id.map(str::to_owned),
        reason,
    };
    let Some(kinesis) = view.kinesis else {
        return Err(unplaceable("it has no \"kinesis\" object".into()));
    };
    let shard_id = view
        .event_id
        .and_then(|id| id.split_once(':'))
        .map(|(shard, _)| shard)
        .filter(|shard| !shard.is_empty())
        .ok_or_else(|| unplaceable("its eventID is not \"<shardId>:<sequenceNumber>\"".into()))?;
    let sequence: SequenceNumber = kinesis
        .sequence_number
        .ok_or_else(|| unplaceable("it has no kinesis.sequenceNumber".into()))?
        .parse()
        .map_err(|e| unplaceable(format!("{e}")))?;
    let stream_arn = view.event_source_arn.unwrap_or("");
    // Records of one batch share their stream and shard: intern them once.
    let shard = match last_shard {
        Some(shard) if &*shard.shard_id == shard_id && &*shard.stream_arn == stream_arn => {
            shard.clone()
        }
        _ => {
            let shard = ShardRef {
                stream_arn: Arc::from(stream_arn),
                shard_id: Arc::from(shard_id),
            };
            *last_shard = Some(shard.clone());
            shard
        }
    };
    Ok(Record {
        shard,
        position: Position::new(sequence, 0),
        partition_key: kinesis.partition_key.unwrap_or_default().to_owned(),
        kinesis_partition_key: None,
        explicit_hash_key: None,
        data: Bytes::new(),
        approximate_arrival: kinesis
            .approximate_arrival_timestamp
            .and_then(crate::record::arrival_from_epoch_seconds),
        origin: RecordOrigin::Plain,
    })
}

/// Pushes the record with its decoded `bytes`: itself, or its KPL user records.
fn push_payload(decoded: &mut DecodedEvent, mut base: Record, bytes: Bytes) {
    match deaggregate(&bytes) {
        Deaggregated::Plain => {
            base.data = bytes;
            decoded.items.push(Item::Ready(base));
        }
        Deaggregated::Fallback(reason) => {
            tracing::warn!(
                shard = %base.shard.shard_id,
                sequence_number = %base.position.sequence,
                reason = %reason,
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

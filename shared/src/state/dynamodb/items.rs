//! The state table's items: a [`Progress`] in and out of attributes, and a
//! quarantined record as an entry plus parts for a large payload.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Update};
use bytes::Bytes;

use super::keys::{PK, SK, decode_position, encode_position, quarantine_pk, quarantine_sk};
use crate::aws::dynamodb::DynamoError;
use crate::aws::dynamodb::attr::{Attributes, b, get_b, get_n, get_s, get_string_map, item, n, s};
use crate::progress::MAX_DONE_BYTES;
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::state::{Delivered, HeadAttempts, PositionRanges, Progress, StateError};

/// Payload bytes per quarantine item, well under DynamoDB's 400 KB item limit.
pub(super) const PART_BYTES: usize = 300 * 1024;

pub(super) fn corrupt(what: &str, detail: impl Into<String>) -> StateError {
    StateError::Corrupt {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

/// Reads a [`Progress`]: `checkpoint`, `done_after`, `failing_heads` (or, as written before
/// in-batch concurrency, `head` and `head_attempts`), `delivered`, `version`.
pub(super) fn read_progress(item: &Attributes, what: &str) -> Result<Progress, StateError> {
    let position = |name: &str| -> Result<_, StateError> {
        get_s(item, name)
            .map(|text| {
                decode_position(text).ok_or_else(|| corrupt(what, format!("{name} {text:?}")))
            })
            .transpose()
    };
    let delivered = Delivered::from_texts(get_string_map(item, "delivered"))
        .map_err(|name| corrupt(what, format!("delivered ranges of {name}")))?;
    let done = match get_s(item, "done_after") {
        Some(text) => PositionRanges::from_text(text)
            .ok_or_else(|| corrupt(what, format!("done ranges {text:?}")))?,
        None => PositionRanges::new(),
    };
    let heads = match get_s(item, "failing_heads") {
        Some(text) => HeadAttempts::list_from_text(text)
            .ok_or_else(|| corrupt(what, format!("heads {text:?}")))?,
        None => position("head")?
            .map(|position| HeadAttempts {
                position,
                attempts: get_n(item, "head_attempts").unwrap_or(0),
            })
            .into_iter()
            .collect(),
    };
    Ok(Progress {
        checkpoint: position("checkpoint")?,
        done,
        heads,
        delivered,
        version: get_n(item, "version").unwrap_or(0),
    }
    .tidied())
}

/// An update that writes a [`Progress`], fenced on the version it was read at.
pub(super) struct ProgressUpdate {
    pub expression: String,
    pub condition: String,
    pub values: Attributes,
}

impl ProgressUpdate {
    /// Writes `progress` as version `read_version + 1` if the item is still at
    /// `read_version` (and its checkpoint not beyond), with `also` set beside it.
    pub(super) fn new(
        progress: &Progress,
        read_version: u64,
        also: &[(&'static str, AttributeValue)],
    ) -> Self {
        let mut values: Attributes = HashMap::from([(":new".into(), n(read_version + 1))]);
        let mut set = vec!["version = :new".to_owned()];
        let mut remove = Vec::new();
        let mut condition = if read_version == 0 {
            "attribute_not_exists(version)".to_owned()
        } else {
            values.insert(":read".into(), n(read_version));
            "version = :read".to_owned()
        };
        if let Some(cp) = &progress.checkpoint {
            set.push("checkpoint = :cp".into());
            values.insert(":cp".into(), s(encode_position(cp)));
            condition.push_str(" AND (attribute_not_exists(checkpoint) OR checkpoint <= :cp)");
        }
        remove.push("head, head_attempts");
        let heads = HeadAttempts::list_to_text(&progress.heads);
        let (done, dropped) = progress.done.to_text_within(MAX_DONE_BYTES);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "too many done ranges to keep; the records in them run again on the retry"
            );
        }
        for (name, text) in [("failing_heads", heads), ("done_after", done)] {
            if text.is_empty() {
                remove.push(name);
            } else {
                set.push(format!("{name} = :{name}"));
                values.insert(format!(":{name}"), s(text));
            }
        }
        let delivered = progress.delivered.to_texts();
        if delivered.is_empty() {
            remove.push("delivered");
        } else {
            set.push("delivered = :delivered".into());
            let map = delivered
                .into_iter()
                .map(|(name, text)| (name, s(text)))
                .collect();
            values.insert(":delivered".into(), AttributeValue::M(map));
        }
        for (name, value) in also {
            set.push(format!("{name} = :{name}"));
            values.insert(format!(":{name}"), value.clone());
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&remove.join(", "));
        }
        ProgressUpdate {
            expression,
            condition,
            values,
        }
    }

    /// As one item of a transaction on `key` of `table`.
    pub(super) fn build(self, table: &str, key: Attributes) -> Result<Update, DynamoError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.expression)
            .condition_expression(self.condition)
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(|e| DynamoError::build("build a progress write", e))
    }
}

/// The items of a quarantined record: its entry (with the first
/// [`PART_BYTES`] of its payload and the number of parts), and the parts
/// that hold the rest of a large payload.
pub(super) fn record_items(
    consumer: &str,
    record: &QuarantinedRecord,
) -> (Attributes, Vec<Attributes>) {
    let pk = quarantine_pk(consumer);
    let sk = quarantine_sk(record);
    let mut chunks = record.data.chunks(PART_BYTES);
    let first = chunks.next().unwrap_or(&[]);
    let rest: Vec<&[u8]> = chunks.collect();
    let mut entry = item([
        (PK, s(pk.clone())),
        (SK, s(sk.clone())),
        ("stream_arn", s(record.stream_arn.clone())),
        ("shard_id", s(record.shard_id.clone())),
        ("sequence_number", s(record.sequence_number.clone())),
        ("subsequence_number", n(record.subsequence_number)),
        ("partition_key", s(record.partition_key.clone())),
        ("reason", s(record.reason.name())),
        ("detail", s(record.detail.clone())),
        ("attempts", n(record.attempts)),
        ("quarantined_at", n(record.quarantined_at)),
        ("data", b(first)),
        ("parts", n(rest.len() + 1)),
    ]);
    if record.partition_key.is_empty() {
        entry.remove("partition_key");
    }
    if let Some(key) = &record.explicit_hash_key {
        entry.insert("explicit_hash_key".into(), s(key.clone()));
    }
    let parts = rest
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            item([
                (PK, s(pk.clone())),
                (SK, s(part_sk(&sk, index + 1))),
                ("data", b(part)),
            ])
        })
        .collect();
    (entry, parts)
}

/// The sort key of part `index` (1, 2, ...) of the entry `sk`.
pub(super) fn part_sk(sk: &str, index: usize) -> String {
    format!("{sk}#part#{index:04}")
}

/// Quarantined records from their items in sort-key order (parts follow their entry).
pub(super) fn quarantined_records(
    items: Vec<Attributes>,
) -> Result<Vec<QuarantinedRecord>, StateError> {
    let mut records: Vec<QuarantinedRecord> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    // The entry read last: its sort key and the parts it names.
    let mut entry: Option<(String, u64)> = None;
    for item in items {
        let sk = get_s(&item, SK).unwrap_or_default().to_owned();
        let bytes = get_b(&item, "data").unwrap_or_default();
        if let Some((base, _)) = sk.split_once("#part#") {
            // A part counts only under its own entry, and only those the entry
            // names: parts of a commit that lost its fence have none.
            let index: u64 = sk
                .rsplit("#part#")
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            if entry
                .as_ref()
                .is_some_and(|(e, parts)| e == base && index < *parts)
            {
                data.extend_from_slice(bytes);
            }
            continue;
        }
        entry = Some((sk.clone(), get_n(&item, "parts").unwrap_or(1)));
        if let Some(last) = records.last_mut() {
            last.data = Bytes::from(std::mem::take(&mut data));
        }
        data = bytes.to_vec();
        let reason_text = get_s(&item, "reason").unwrap_or_default();
        let reason = QuarantineReason::from_name(reason_text)
            .ok_or_else(|| corrupt(&sk, format!("unknown reason {reason_text:?}")))?;
        let text = |name: &str| get_s(&item, name).unwrap_or_default().to_owned();
        records.push(QuarantinedRecord {
            stream_arn: text("stream_arn"),
            shard_id: text("shard_id"),
            sequence_number: text("sequence_number"),
            subsequence_number: get_n(&item, "subsequence_number").unwrap_or(0),
            partition_key: text("partition_key"),
            reason,
            detail: text("detail"),
            attempts: get_n(&item, "attempts").unwrap_or(0),
            quarantined_at: get_n(&item, "quarantined_at").unwrap_or(0),
            data: Bytes::new(),
            explicit_hash_key: get_s(&item, "explicit_hash_key").map(str::to_owned),
            replay_started_at: get_n(&item, "replay_started_at"),
        });
    }
    if let Some(last) = records.last_mut() {
        last.data = Bytes::from(data);
    }
    records.sort_by_key(|r| r.quarantined_at);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_split_into_parts_and_come_back_whole() {
        let record = QuarantinedRecord {
            stream_arn: "arn".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: "5".into(),
            subsequence_number: 0,
            partition_key: "k".into(),
            reason: QuarantineReason::Permanent,
            detail: "bad".into(),
            attempts: 1,
            quarantined_at: 1,
            explicit_hash_key: Some("42".into()),
            replay_started_at: None,
            data: Bytes::from(
                (0..PART_BYTES * 2 + 10)
                    .map(|i| (i % 251) as u8)
                    .collect::<Vec<u8>>(),
            ),
        };
        let (entry, parts) = record_items("c", &record);
        let mut items = vec![entry];
        items.extend(parts);
        assert_eq!(items.len(), 3);
        assert_eq!(get_n::<u64>(&items[0], "parts"), Some(3));
        assert!(get_s(&items[2], SK).unwrap().ends_with("#part#0002"));
        assert_eq!(quarantined_records(items).unwrap(), [record]);
    }
}

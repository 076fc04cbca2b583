//! Item keys of the state table, and positions as sortable strings.

use super::super::ConsumerShard;
use crate::quarantine::{QuarantineKey, QuarantinedRecord};
use crate::record::{Position, SequenceNumber};

/// The hash key attribute.
pub(super) const PK: &str = "pk";
/// The range key attribute.
pub(super) const SK: &str = "sk";

/// A position as `{sequence, 129 digits}.{subsequence, 20 digits}`: string
/// order is number order, so condition expressions compare positions right.
pub(super) fn encode_position(position: &Position) -> String {
    format!(
        "{}.{:020}",
        position.sequence.to_fixed_width(),
        position.subsequence
    )
}

pub(super) fn decode_position(text: &str) -> Option<Position> {
    let (sequence, subsequence) = text.split_once('.')?;
    let sequence: SequenceNumber = sequence.parse().ok()?;
    Some(Position::new(sequence, subsequence.parse().ok()?))
}

pub(super) fn shard_pk(key: &ConsumerShard) -> String {
    format!(
        "{}#shard#{}#{}",
        key.consumer, key.shard.stream_arn, key.shard.shard_id
    )
}

pub(super) fn progress_pk(key: &ConsumerShard, partition_key: &str) -> String {
    format!(
        "{}#key#{}#{}#{partition_key}",
        key.consumer, key.shard.stream_arn, key.shard.shard_id
    )
}

pub(super) fn dedup_pk(consumer: &str, key: &str) -> String {
    format!("{consumer}#dedup#{key}")
}

pub(super) fn quarantine_pk(consumer: &str) -> String {
    format!("{consumer}#quarantine")
}

pub(super) fn quarantine_sk(record: &QuarantinedRecord) -> String {
    quarantine_key_sk(&record.key())
}

pub(super) fn quarantine_key_sk(record: &QuarantineKey) -> String {
    let sequence = record
        .sequence_number
        .parse::<SequenceNumber>()
        .map(|s| s.to_fixed_width())
        .unwrap_or_else(|_| record.sequence_number.clone());
    format!(
        "{}#{}#{sequence}#{:020}",
        record.stream_arn, record.shard_id, record.subsequence_number
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_encode_in_number_order() {
        let p = |seq: &str, sub| Position::new(seq.parse().unwrap(), sub);
        let mut positions = vec![
            p("10", 0),
            p("9", 5),
            p("9", 10),
            p(
                "49590338271490256608559692538361571095921575989136588898",
                0,
            ),
        ];
        let mut encoded: Vec<String> = positions.iter().map(encode_position).collect();
        positions.sort();
        encoded.sort();
        let decoded: Vec<Position> = encoded.iter().filter_map(|e| decode_position(e)).collect();
        assert_eq!(decoded, positions);
    }
}

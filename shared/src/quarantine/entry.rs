//! The quarantine's entry: a record set aside with its payload, why, and how
//! often it was tried; its key in the store.

use std::fmt;
use std::time::SystemTime;

use crate::time::epoch_millis;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::record::{Position, Record, RecordOrigin, ShardRef};

/// Why a record went to the quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QuarantineReason {
    /// The handler said the failure is permanent.
    Permanent,
    /// The handler failed it with retryable errors `SHARDLINE_MAX_ATTEMPTS` times.
    Exhausted,
    /// The Kinesis record's payload could not be decoded (not base64, missing).
    Undecodable,
}

impl QuarantineReason {
    /// The reason's stored name.
    pub fn name(self) -> &'static str {
        match self {
            QuarantineReason::Permanent => "permanent",
            QuarantineReason::Exhausted => "exhausted",
            QuarantineReason::Undecodable => "undecodable",
        }
    }

    /// The reason from its stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Permanent, Self::Exhausted, Self::Undecodable]
            .into_iter()
            .find(|reason| reason.name() == name)
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quarantined record with its payload.
///
/// Its JSON form (one line per record from the `quarantine` command) carries
/// `shard_id`, `sequence_number`, `subsequence_number`, `reason`, `detail`,
/// `attempts`, `partition_key`, `stream_arn`, `quarantined_at` (epoch ms) and
/// `data` (base64), and when set `explicit_hash_key` and `replay_started_at`
/// (epoch ms: a replay claimed the record and has not recorded its outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedRecord {
    /// The source stream's ARN.
    pub stream_arn: String,
    /// The shard the record came from.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its subsequence number (0 for a plain record).
    pub subsequence_number: u64,
    /// Its partition key.
    pub partition_key: String,
    /// Why it was quarantined.
    pub reason: QuarantineReason,
    /// The error text.
    pub detail: String,
    /// Handler attempts made (0 for an undecodable record).
    pub attempts: u32,
    /// When it was quarantined, in milliseconds since the epoch.
    pub quarantined_at: u64,
    /// The payload, as the handler would have seen it (for an undecodable
    /// record, the `data` field exactly as it came).
    #[serde(with = "base64_bytes")]
    pub data: Bytes,
    /// The explicit hash key the record was put with (a KPL user record's), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_hash_key: Option<String>,
    /// When a replay claimed the record, in milliseconds since the epoch, if
    /// that replay has not recorded its outcome (it was interrupted, or is
    /// still running): the handler may have applied the record already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_started_at: Option<u64>,
}

/// What identifies a quarantined record within its consumer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuarantineKey {
    /// The source stream's ARN.
    pub stream_arn: String,
    /// The shard.
    pub shard_id: String,
    /// The sequence number.
    pub sequence_number: String,
    /// The subsequence number.
    pub subsequence_number: u64,
}

impl fmt::Display for QuarantineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.shard_id, self.sequence_number, self.subsequence_number
        )
    }
}

impl QuarantinedRecord {
    /// The entry for `record`, quarantined for `reason` at `now`. A `detail`
    /// longer than [`DETAIL_MAX_BYTES`] is cut (an error text may quote the payload,
    /// which the entry keeps whole anyway).
    pub fn new(
        record: &Record,
        reason: QuarantineReason,
        detail: String,
        attempts: u32,
        now: SystemTime,
    ) -> Self {
        QuarantinedRecord {
            stream_arn: record.shard.stream_arn.to_string(),
            shard_id: record.shard.shard_id.to_string(),
            sequence_number: record.position.sequence.to_string(),
            subsequence_number: record.position.subsequence,
            partition_key: record.partition_key.clone(),
            reason,
            detail: cut(detail, DETAIL_MAX_BYTES),
            attempts,
            quarantined_at: epoch_millis(now),
            data: record.data.clone(),
            explicit_hash_key: record.explicit_hash_key.clone(),
            replay_started_at: None,
        }
    }

    /// Its identity within its consumer.
    pub fn key(&self) -> QuarantineKey {
        QuarantineKey {
            stream_arn: self.stream_arn.clone(),
            shard_id: self.shard_id.clone(),
            sequence_number: self.sequence_number.clone(),
            subsequence_number: self.subsequence_number,
        }
    }

    /// Its position in the shard, or `None` when the stored sequence number is
    /// not a number.
    pub fn position(&self) -> Option<Position> {
        let sequence = self.sequence_number.parse().ok()?;
        Some(Position::new(sequence, self.subsequence_number))
    }

    /// The record as the handler saw it, to hand it over again. `None` when
    /// the stored sequence number is not a number.
    ///
    /// The arrival time is not kept, so the record has none; an undecodable
    /// record's `data` is the field as it came, not a payload.
    pub fn to_record(&self) -> Option<Record> {
        Some(Record {
            shard: ShardRef {
                stream_arn: Arc::from(self.stream_arn.as_str()),
                shard_id: Arc::from(self.shard_id.as_str()),
            },
            position: self.position()?,
            partition_key: self.partition_key.clone(),
            kinesis_partition_key: None,
            explicit_hash_key: self.explicit_hash_key.clone(),
            data: self.data.clone(),
            approximate_arrival: None,
            origin: RecordOrigin::Plain,
        })
    }
}

/// The longest error text a quarantine entry keeps.
pub const DETAIL_MAX_BYTES: usize = 2048;

pub(crate) fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

mod base64_bytes {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Base64 of `data`, as the quarantine shows payloads.
pub fn encode_payload(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips_with_base64_payload() {
        let entry = QuarantinedRecord {
            stream_arn: "arn:aws:kinesis:us-east-1:1:stream/s".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            subsequence_number: 2,
            partition_key: "k".into(),
            reason: QuarantineReason::Exhausted,
            detail: "gap".into(),
            attempts: 3,
            quarantined_at: 1,
            data: Bytes::from_static(b"\x00\xffraw"),
            explicit_hash_key: None,
            replay_started_at: None,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["data"], "AP9yYXc=");
        assert_eq!(json["reason"], "exhausted");
        let back: QuarantinedRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
        for reason in [
            QuarantineReason::Permanent,
            QuarantineReason::Exhausted,
            QuarantineReason::Undecodable,
        ] {
            assert_eq!(QuarantineReason::from_name(reason.name()), Some(reason));
        }
    }
}

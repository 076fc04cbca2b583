//! From a Kinesis record's data to its user records.

use bytes::Bytes;
use prost::Message;

use crate::proto;
use crate::record::UserRecord;
use crate::{DIGEST_LEN, KPL_MAGIC};

/// What [`deaggregate`] found in a Kinesis record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deaggregated {
    /// No KPL magic: a plain record.
    Plain,
    /// A valid aggregate and its user records, in subsequence order.
    Aggregate(Vec<UserRecord>),
    /// The magic is there but the rest is not a valid aggregate. As the KCL
    /// does, the data should be handled as one plain record.
    Fallback(InvalidAggregate),
}

/// Why data that starts with the KPL magic is not a valid aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAggregate {
    /// Too short to hold the magic and the MD5 digest.
    #[error("{len} bytes: shorter than the KPL magic and MD5 digest")]
    TooShort {
        /// The data's length.
        len: usize,
    },
    /// The MD5 digest at the end does not match the protobuf before it.
    #[error("MD5 digest does not match the protobuf")]
    Digest,
    /// The bytes between the magic and the digest are not an `AggregatedRecord`.
    #[error("not a protobuf AggregatedRecord")]
    Protobuf,
    /// A user record points past the end of the partition key table.
    #[error("user record {record}: partition key index {index} outside the key table of {table}")]
    PartitionKeyIndex {
        /// The user record (its subsequence number).
        record: usize,
        /// The index it holds.
        index: u64,
        /// The table's length.
        table: usize,
    },
    /// A user record points past the end of the explicit hash key table.
    #[error(
        "user record {record}: explicit hash key index {index} outside the key table of {table}"
    )]
    ExplicitHashKeyIndex {
        /// The user record (its subsequence number).
        record: usize,
        /// The index it holds.
        index: u64,
        /// The table's length.
        table: usize,
    },
    /// A valid protobuf, but without a single user record.
    #[error("aggregate holds no user records")]
    Empty,
}

/// Splits a Kinesis record's data into its KPL user records.
///
/// Never fails and never panics: data without the magic is
/// [`Deaggregated::Plain`]; data with the magic but a bad MD5, protobuf or
/// key index, or no user record, is [`Deaggregated::Fallback`] with the
/// reason. The user records' payloads are slices of `data` (no copy).
///
/// ```
/// use kpl::{Deaggregated, InvalidAggregate, UserRecord, aggregate, deaggregate};
/// let records = vec![
///     UserRecord::new("a", "one"),
///     UserRecord::new("b", "two").with_explicit_hash_key("42"),
/// ];
/// let bytes = bytes::Bytes::from(aggregate(&records));
/// assert_eq!(deaggregate(&bytes), Deaggregated::Aggregate(records));
///
/// assert_eq!(deaggregate(&"plain".into()), Deaggregated::Plain);
/// let mut corrupt = bytes.to_vec();
/// corrupt[6] ^= 1;
/// assert_eq!(deaggregate(&corrupt.into()), Deaggregated::Fallback(InvalidAggregate::Digest));
/// ```
pub fn deaggregate(data: &Bytes) -> Deaggregated {
    if data.len() < KPL_MAGIC.len() || data[..KPL_MAGIC.len()] != KPL_MAGIC {
        return Deaggregated::Plain;
    }
    match parse(data) {
        Ok(records) => Deaggregated::Aggregate(records),
        Err(reason) => Deaggregated::Fallback(reason),
    }
}

/// The user records of a Kinesis record, by the KCL's rules: an aggregate's
/// user records, or the record itself when it is not an aggregate or is an
/// invalid one (the fallback).
///
/// ```
/// use kpl::{UserRecord, aggregate, user_records};
/// let inner = vec![UserRecord::new("a", "one"), UserRecord::new("b", "two")];
/// let outer = UserRecord::new("a", aggregate(&inner));
/// assert_eq!(user_records(outer), inner);
///
/// let plain = UserRecord::new("k", "just bytes");
/// assert_eq!(user_records(plain.clone()), [plain]);
/// ```
pub fn user_records(record: UserRecord) -> Vec<UserRecord> {
    match deaggregate(&record.data) {
        Deaggregated::Aggregate(records) => records,
        Deaggregated::Plain | Deaggregated::Fallback(_) => vec![record],
    }
}

/// Checks the digest and the protobuf of `data`, which starts with the magic.
fn parse(data: &Bytes) -> Result<Vec<UserRecord>, InvalidAggregate> {
    if data.len() < KPL_MAGIC.len() + DIGEST_LEN {
        return Err(InvalidAggregate::TooShort { len: data.len() });
    }
    let body = data.slice(KPL_MAGIC.len()..data.len() - DIGEST_LEN);
    let digest = &data[data.len() - DIGEST_LEN..];
    if md5::compute(&body).0 != digest {
        return Err(InvalidAggregate::Digest);
    }
    let message = proto::AggregatedRecord::decode(body).map_err(|_| InvalidAggregate::Protobuf)?;
    if message.records.is_empty() {
        return Err(InvalidAggregate::Empty);
    }
    let pk_table = &message.partition_key_table;
    let ehk_table = &message.explicit_hash_key_table;
    let mut records = Vec::with_capacity(message.records.len());
    for (at, record) in message.records.into_iter().enumerate() {
        let index = record.partition_key_index;
        let partition_key = entry(pk_table, index)
            .ok_or(InvalidAggregate::PartitionKeyIndex {
                record: at,
                index,
                table: pk_table.len(),
            })?
            .to_owned();
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => Some(
                entry(ehk_table, index)
                    .ok_or(InvalidAggregate::ExplicitHashKeyIndex {
                        record: at,
                        index,
                        table: ehk_table.len(),
                    })?
                    .to_owned(),
            ),
        };
        records.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: record.data,
        });
    }
    Ok(records)
}

fn entry(table: &[String], index: u64) -> Option<&str> {
    let index = usize::try_from(index).ok()?;
    table.get(index).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate;

    fn wrap(body: &[u8]) -> Bytes {
        let mut bytes = KPL_MAGIC.to_vec();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&md5::compute(body).0);
        bytes.into()
    }

    #[test]
    fn round_trip_keeps_keys_and_order() {
        let records = vec![
            UserRecord::new("k1", "a"),
            UserRecord::new("k2", "b")
                .with_explicit_hash_key("170141183460469231731687303715884105728"),
            UserRecord::new("k1", "c"),
        ];
        let bytes = Bytes::from(aggregate(&records));
        assert_eq!(deaggregate(&bytes), Deaggregated::Aggregate(records));
    }

    #[test]
    fn plain_data_is_plain() {
        let plain: [&[u8]; 4] = [b"{\"a\":1}", b"", &[0xF3, 0x89], &[0xF3, 0x89, 0x9A, 0xC3]];
        for plain in plain {
            assert_eq!(
                deaggregate(&Bytes::copy_from_slice(plain)),
                Deaggregated::Plain
            );
        }
    }

    #[test]
    fn bad_digest_falls_back() {
        let mut bytes = aggregate(&[UserRecord::new("k", "x")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(
            deaggregate(&bytes.into()),
            Deaggregated::Fallback(InvalidAggregate::Digest)
        );
    }

    #[test]
    fn bad_protobuf_with_good_digest_falls_back() {
        assert_eq!(
            deaggregate(&wrap(b"\xff\xff\xff not protobuf")),
            Deaggregated::Fallback(InvalidAggregate::Protobuf)
        );
    }

    #[test]
    fn empty_aggregate_and_short_data_fall_back() {
        assert_eq!(
            deaggregate(&wrap(b"")),
            Deaggregated::Fallback(InvalidAggregate::Empty)
        );
        let short = Bytes::from_static(&[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3]);
        assert_eq!(
            deaggregate(&short),
            Deaggregated::Fallback(InvalidAggregate::TooShort { len: 7 })
        );
    }

    #[test]
    fn key_indexes_out_of_range_fall_back() {
        let record = |pk: u64, ehk: Option<u64>| proto::Record {
            partition_key_index: pk,
            explicit_hash_key_index: ehk,
            data: Bytes::from_static(b"x"),
            tags: vec![],
        };
        let message = proto::AggregatedRecord {
            partition_key_table: vec!["only".into()],
            explicit_hash_key_table: vec![],
            records: vec![record(0, None), record(3, None)],
        };
        assert_eq!(
            deaggregate(&wrap(&message.encode_to_vec())),
            Deaggregated::Fallback(InvalidAggregate::PartitionKeyIndex {
                record: 1,
                index: 3,
                table: 1
            })
        );
        let message = proto::AggregatedRecord {
            records: vec![record(0, Some(0))],
            ..message
        };
        let fallback = deaggregate(&wrap(&message.encode_to_vec()));
        assert!(
            matches!(
                fallback,
                Deaggregated::Fallback(InvalidAggregate::ExplicitHashKeyIndex { .. })
            ),
            "{fallback:?}"
        );
    }

    #[test]
    fn the_fallback_rule_hands_on_the_record_whole() {
        let mut corrupt = aggregate(&[UserRecord::new("k", "x")]);
        corrupt[5] ^= 1;
        let outer = UserRecord::new("outer", corrupt);
        assert_eq!(user_records(outer.clone()), [outer]);
    }
}

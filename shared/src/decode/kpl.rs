//! KPL aggregation: the format the Kinesis Producer Library packs many user
//! records into one Kinesis record with.
//!
//! An aggregated record is the magic bytes [`KPL_MAGIC`], a protobuf
//! `AggregatedRecord`, then the 16-byte MD5 of that protobuf. Its user records
//! share the outer sequence number and are numbered by subsequence 0, 1, 2...
//! Bytes that start with the magic but fail the MD5 or protobuf check are handed
//! on as one plain record, as the KCL does ([`Deaggregated::Fallback`]).

use bytes::Bytes;
use prost::Message;

/// The four bytes every KPL aggregated record starts with.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The protobuf messages of the KPL format (`messages.proto` of the KPL).
mod proto {
    /// `AggregatedRecord`: the key tables and the user records.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AggregatedRecord {
        #[prost(string, repeated, tag = "1")]
        pub partition_key_table: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub explicit_hash_key_table: Vec<String>,
        #[prost(message, repeated, tag = "3")]
        pub records: Vec<Record>,
    }

    /// `Record`: one user record, pointing into the key tables.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(uint64, required, tag = "1")]
        pub partition_key_index: u64,
        #[prost(uint64, optional, tag = "2")]
        pub explicit_hash_key_index: Option<u64>,
        #[prost(bytes = "bytes", required, tag = "3")]
        pub data: bytes::Bytes,
        #[prost(message, repeated, tag = "4")]
        pub tags: Vec<Tag>,
    }

    /// `Tag`: a key/value the KPL may attach to a user record (unused by Lambda).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tag {
        #[prost(string, required, tag = "1")]
        pub key: String,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }
}

/// One user record inside (or for) a KPL aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// The user record's partition key.
    pub partition_key: String,
    /// The explicit hash key it was put with, if any.
    pub explicit_hash_key: Option<String>,
    /// Its payload.
    pub data: Bytes,
}

/// What [`deaggregate`] found in a Kinesis record's data.
#[derive(Debug, PartialEq, Eq)]
pub enum Deaggregated {
    /// No KPL magic: a plain record.
    Plain,
    /// A valid aggregate and its user records, in subsequence order.
    Aggregate(Vec<UserRecord>),
    /// The magic is there but the rest is not a valid aggregate; the reason says
    /// which check failed. The data should be handled as one plain record.
    Fallback(&'static str),
}

/// Splits a Kinesis record's data into its KPL user records.
///
/// Never fails: data without the magic is [`Deaggregated::Plain`], data with the
/// magic but a bad MD5, protobuf or key index is [`Deaggregated::Fallback`].
///
/// ```
/// use shardline::decode::kpl::{aggregate, deaggregate, Deaggregated, UserRecord};
/// let records = vec![
///     UserRecord { partition_key: "a".into(), explicit_hash_key: None, data: "one".into() },
///     UserRecord { partition_key: "b".into(), explicit_hash_key: Some("42".into()), data: "two".into() },
/// ];
/// let bytes = aggregate(&records);
/// assert_eq!(deaggregate(&bytes.into()), Deaggregated::Aggregate(records));
/// ```
pub fn deaggregate(data: &Bytes) -> Deaggregated {
    if data.len() < KPL_MAGIC.len() || data[..KPL_MAGIC.len()] != KPL_MAGIC {
        return Deaggregated::Plain;
    }
    if data.len() < KPL_MAGIC.len() + DIGEST_LEN {
        return Deaggregated::Fallback("shorter than the KPL magic and MD5 digest");
    }
    let body = data.slice(KPL_MAGIC.len()..data.len() - DIGEST_LEN);
    let digest = &data[data.len() - DIGEST_LEN..];
    if md5::compute(&body).0 != digest {
        return Deaggregated::Fallback("MD5 digest does not match the protobuf");
    }
    let Ok(message) = proto::AggregatedRecord::decode(body) else {
        return Deaggregated::Fallback("not a protobuf AggregatedRecord");
    };
    let mut records = Vec::with_capacity(message.records.len());
    for record in message.records {
        let Some(partition_key) = table_entry(
            &message.partition_key_table,
            Some(record.partition_key_index),
        ) else {
            return Deaggregated::Fallback("partition key index outside the key table");
        };
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            index @ Some(_) => match table_entry(&message.explicit_hash_key_table, index) {
                Some(key) => Some(key),
                None => {
                    return Deaggregated::Fallback("explicit hash key index outside the key table");
                }
            },
        };
        records.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: record.data,
        });
    }
    if records.is_empty() {
        return Deaggregated::Fallback("aggregate holds no user records");
    }
    Deaggregated::Aggregate(records)
}

fn table_entry(table: &[String], index: Option<u64>) -> Option<String> {
    let index = usize::try_from(index?).ok()?;
    table.get(index).cloned()
}

/// Packs user records into one KPL aggregated record (magic, protobuf, MD5), the
/// way the KPL does: each distinct key is stored once in its table.
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut message = proto::AggregatedRecord::default();
    for record in records {
        let partition_key_index = intern(&mut message.partition_key_table, &record.partition_key);
        let explicit_hash_key_index = record
            .explicit_hash_key
            .as_deref()
            .map(|key| intern(&mut message.explicit_hash_key_table, key));
        message.records.push(proto::Record {
            partition_key_index,
            explicit_hash_key_index,
            data: record.data.clone(),
            tags: Vec::new(),
        });
    }
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&KPL_MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&md5::compute(&body).0);
    out
}

fn intern(table: &mut Vec<String>, key: &str) -> u64 {
    let index = match table.iter().position(|k| k == key) {
        Some(index) => index,
        None => {
            table.push(key.to_owned());
            table.len() - 1
        }
    };
    index as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str, ehk: Option<&str>, data: &str) -> UserRecord {
        UserRecord {
            partition_key: key.into(),
            explicit_hash_key: ehk.map(Into::into),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    #[test]
    fn round_trip_keeps_keys_and_order() {
        let records = vec![
            user("k1", None, "a"),
            user("k2", Some("170141183460469231731687303715884105728"), "b"),
            user("k1", None, "c"),
        ];
        let bytes = Bytes::from(aggregate(&records));
        assert_eq!(deaggregate(&bytes), Deaggregated::Aggregate(records));
    }

    #[test]
    fn plain_data_is_plain() {
        assert_eq!(
            deaggregate(&Bytes::from_static(b"{\"a\":1}")),
            Deaggregated::Plain
        );
        assert_eq!(deaggregate(&Bytes::new()), Deaggregated::Plain);
        assert_eq!(
            deaggregate(&Bytes::from_static(&[0xF3, 0x89])),
            Deaggregated::Plain
        );
    }

    #[test]
    fn bad_digest_falls_back() {
        let mut bytes = aggregate(&[user("k", None, "x")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(
            deaggregate(&bytes.into()),
            Deaggregated::Fallback(reason) if reason.contains("MD5")
        ));
    }

    #[test]
    fn bad_protobuf_with_good_digest_falls_back() {
        let body = b"\xff\xff\xff not protobuf";
        let mut bytes = KPL_MAGIC.to_vec();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&md5::compute(body).0);
        assert!(matches!(
            deaggregate(&bytes.into()),
            Deaggregated::Fallback(reason) if reason.contains("protobuf")
        ));
    }

    #[test]
    fn key_index_out_of_range_falls_back() {
        let message = proto::AggregatedRecord {
            partition_key_table: vec!["only".into()],
            explicit_hash_key_table: vec![],
            records: vec![proto::Record {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![],
            }],
        };
        let body = message.encode_to_vec();
        let mut bytes = KPL_MAGIC.to_vec();
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&md5::compute(&body).0);
        assert!(matches!(
            deaggregate(&bytes.into()),
            Deaggregated::Fallback(reason) if reason.contains("partition key index")
        ));
    }

    #[test]
    fn truncated_aggregate_falls_back() {
        let bytes = Bytes::from_static(&[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3]);
        assert!(matches!(deaggregate(&bytes), Deaggregated::Fallback(_)));
    }
}

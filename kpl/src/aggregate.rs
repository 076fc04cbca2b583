//! From user records to aggregated Kinesis records.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;
use prost::encoding::encoded_len_varint;

use crate::limits::{
    MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT, parse_explicit_hash_key, partition_key_hash,
};
use crate::proto;
use crate::record::UserRecord;
use crate::{DIGEST_LEN, KPL_MAGIC};

/// Why a user record cannot be aggregated, or an [`Aggregator`] not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// A partition key empty or over 256 characters.
    #[error("partition key of {chars} characters: Kinesis takes 1 to 256")]
    PartitionKey {
        /// The key's length in Unicode characters.
        chars: usize,
    },
    /// An explicit hash key that is not a decimal number from 0 to 2^128 - 1.
    #[error("explicit hash key {key:?} is not a decimal number from 0 to 2^128 - 1")]
    ExplicitHashKey {
        /// The key (its first 50 characters).
        key: String,
    },
    /// A user record too large for an aggregate even on its own.
    #[error(
        "user record with partition key {partition_key:?} makes an aggregate of {size} bytes, over the {max} bytes allowed"
    )]
    TooLarge {
        /// The record's partition key.
        partition_key: String,
        /// The size of an aggregate holding it alone (its partition key counted).
        size: usize,
        /// The aggregator's limit.
        max: usize,
    },
    /// An aggregate size limit above what any stream takes.
    #[error("aggregate limit of {max} bytes: a stream takes 1 to 10485760 bytes per record")]
    MaxBytes {
        /// The limit asked for.
        max: usize,
    },
}

/// One aggregated Kinesis record, ready to put.
///
/// Its partition key and explicit hash key are those of its first user record,
/// as the KPL does: put as it is, it lands on the shard of its first record.
/// Setting [`explicit_hash_key`](Aggregate::explicit_hash_key) sends it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The partition key to put it with.
    pub partition_key: String,
    /// The explicit hash key to put it with, if any.
    pub explicit_hash_key: Option<String>,
    /// The record's data: magic, protobuf, MD5.
    pub data: Bytes,
    /// How many user records it holds.
    pub user_records: usize,
}

impl Aggregate {
    /// Its size as Kinesis counts it against the record limit: data plus
    /// partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    /// The hash key it is routed by: its explicit hash key, or the MD5 of its
    /// partition key.
    ///
    /// # Errors
    /// [`AggregateError::ExplicitHashKey`] if the explicit hash key was set to
    /// something that is not a decimal number below 2^128.
    pub fn hash_key(&self) -> Result<u128, AggregateError> {
        match &self.explicit_hash_key {
            Some(key) => parse_explicit_hash_key(key),
            None => Ok(partition_key_hash(&self.partition_key)),
        }
    }
}

/// The protobuf being built, its key tables interned.
#[derive(Debug, Default)]
struct Builder {
    message: proto::AggregatedRecord,
    partition_keys: HashMap<String, u64>,
    hash_keys: HashMap<String, u64>,
    /// The protobuf's encoded length so far.
    body_len: usize,
}

/// The encoded length of a length-delimited field of `len` bytes (one-byte tag).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

impl Builder {
    fn index_of(table: &HashMap<String, u64>, key: &str, len: usize) -> (u64, bool) {
        match table.get(key) {
            Some(&index) => (index, false),
            None => (len as u64, true),
        }
    }

    /// How much `record` would add to the protobuf.
    fn growth(&self, record: &UserRecord) -> usize {
        let table = self.message.partition_key_table.len();
        let (pk_index, new_pk) = Self::index_of(&self.partition_keys, &record.partition_key, table);
        let mut grows = if new_pk {
            field_len(record.partition_key.len())
        } else {
            0
        };
        let mut inner = 1 + encoded_len_varint(pk_index);
        if let Some(key) = &record.explicit_hash_key {
            let table = self.message.explicit_hash_key_table.len();
            let (ehk_index, new_ehk) = Self::index_of(&self.hash_keys, key, table);
            if new_ehk {
                grows += field_len(key.len());
            }
            inner += 1 + encoded_len_varint(ehk_index);
        }
        inner += field_len(record.data.len());
        grows + field_len(inner)
    }

    fn push(&mut self, record: UserRecord) {
        self.body_len += self.growth(&record);
        let table = &mut self.message.partition_key_table;
        let partition_key_index = *self
            .partition_keys
            .entry(record.partition_key)
            .or_insert_with_key(|key| {
                table.push(key.clone());
                table.len() as u64 - 1
            });
        let table = &mut self.message.explicit_hash_key_table;
        let explicit_hash_key_index = record.explicit_hash_key.map(|key| {
            *self.hash_keys.entry(key).or_insert_with_key(|key| {
                table.push(key.clone());
                table.len() as u64 - 1
            })
        });
        self.message.records.push(proto::Record {
            partition_key_index,
            explicit_hash_key_index,
            data: record.data,
            tags: Vec::new(),
        });
    }

    /// Magic, protobuf, MD5.
    fn encode(&self) -> Vec<u8> {
        let body = self.message.encode_to_vec();
        let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + DIGEST_LEN);
        out.extend_from_slice(&KPL_MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&md5::compute(&body).0);
        out
    }
}

/// Packs `records` into one aggregated record's data (magic, protobuf, MD5),
/// the way the KPL does: each distinct key is stored once in its table.
///
/// Checks nothing: not the keys, not the size. To cut aggregates within the
/// Kinesis limits from checked records, use an [`Aggregator`].
///
/// ```
/// use kpl::{UserRecord, aggregate, user_records};
/// let records = vec![UserRecord::new("a", "1"), UserRecord::new("a", "2")];
/// let data = aggregate(&records);
/// assert!(data.starts_with(&kpl::KPL_MAGIC));
/// assert_eq!(user_records(UserRecord::new("a", data)), records);
/// ```
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut builder = Builder::default();
    for record in records {
        builder.push(record.clone());
    }
    builder.encode()
}

/// Packs user records into aggregates of at most a given size (1 MiB by
/// default), in the order they are added.
///
/// The size counts what Kinesis counts against its record limit: the
/// aggregate's data (magic, protobuf, digest) and its partition key (the first
/// user record's). Each record's partition key and explicit hash key are
/// checked as Kinesis would check them.
///
/// ```
/// use kpl::{Aggregator, UserRecord};
///
/// // Aggregates of at most 4 KiB: 100 records of 100 bytes need a few.
/// let mut aggregator = Aggregator::with_max_bytes(4096)?;
/// let mut aggregates = Vec::new();
/// for i in 0..100 {
///     let record = UserRecord::new(format!("key-{i}"), vec![b'x'; 100]);
///     if let Some(full) = aggregator.add(record)? {
///         aggregates.push(full);
///     }
/// }
/// aggregates.extend(aggregator.finish());
/// assert_eq!(aggregates.iter().map(|a| a.user_records).sum::<usize>(), 100);
/// assert!(aggregates.len() >= 3);
/// assert!(aggregates.iter().all(|a| a.size() <= 4096));
///
/// // A record that cannot fit even alone is refused, the aggregator unchanged.
/// let huge = UserRecord::new("k", vec![0u8; 5000]);
/// assert!(matches!(aggregator.add(huge), Err(kpl::AggregateError::TooLarge { .. })));
/// # Ok::<(), kpl::AggregateError>(())
/// ```
#[derive(Debug)]
pub struct Aggregator {
    max_bytes: usize,
    builder: Builder,
    first: Option<(String, Option<String>)>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

/// The size of the magic, the digest and nothing else.
const FRAME: usize = KPL_MAGIC.len() + DIGEST_LEN;

impl Aggregator {
    /// An aggregator of records up to 1 MiB ([`MAX_RECORD_BYTES`]).
    pub fn new() -> Self {
        Aggregator {
            max_bytes: MAX_RECORD_BYTES,
            builder: Builder::default(),
            first: None,
        }
    }

    /// An aggregator of records up to `max_bytes` (partition key counted).
    ///
    /// # Errors
    /// [`AggregateError::MaxBytes`] above 10 MiB ([`MAX_RECORD_BYTES_LIMIT`],
    /// what a raised stream takes) or at 0.
    pub fn with_max_bytes(max_bytes: usize) -> Result<Self, AggregateError> {
        if max_bytes == 0 || max_bytes > MAX_RECORD_BYTES_LIMIT {
            return Err(AggregateError::MaxBytes { max: max_bytes });
        }
        Ok(Aggregator {
            max_bytes,
            ..Self::new()
        })
    }

    /// The largest aggregate it makes, partition key counted.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// User records in the aggregate being built.
    pub fn len(&self) -> usize {
        self.builder.message.records.len()
    }

    /// Whether the aggregate being built holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the aggregate being built, as Kinesis counts it (data plus
    /// partition key); 0 when empty.
    pub fn size(&self) -> usize {
        match &self.first {
            None => 0,
            Some((key, _)) => FRAME + self.builder.body_len + key.len(),
        }
    }

    /// The size the aggregate being built would have with `record` added.
    pub fn size_with(&self, record: &UserRecord) -> usize {
        let key_len = self
            .first
            .as_ref()
            .map_or(record.partition_key.len(), |(key, _)| key.len());
        FRAME + self.builder.body_len + self.builder.growth(record) + key_len
    }

    /// Whether `record` fits in the aggregate being built.
    pub fn fits(&self, record: &UserRecord) -> bool {
        self.size_with(record) <= self.max_bytes
    }

    /// Adds `record`. When it does not fit in the aggregate being built, that
    /// aggregate is finished and returned, and `record` starts the next one.
    ///
    /// # Errors
    /// The record's keys are invalid ([`UserRecord::validate`]), or it is too
    /// large for an aggregate even alone ([`AggregateError::TooLarge`]); the
    /// aggregator is unchanged.
    pub fn add(&mut self, record: UserRecord) -> Result<Option<Aggregate>, AggregateError> {
        record.validate()?;
        let alone = FRAME + Builder::default().growth(&record) + record.partition_key.len();
        if alone > self.max_bytes {
            return Err(AggregateError::TooLarge {
                partition_key: record.partition_key,
                size: alone,
                max: self.max_bytes,
            });
        }
        let full = if self.fits(&record) {
            None
        } else {
            self.finish()
        };
        if self.first.is_none() {
            self.first = Some((
                record.partition_key.clone(),
                record.explicit_hash_key.clone(),
            ));
        }
        self.builder.push(record);
        Ok(full)
    }

    /// Finishes the aggregate being built and returns it (`None` when empty);
    /// the aggregator starts over, empty.
    pub fn finish(&mut self) -> Option<Aggregate> {
        let (partition_key, explicit_hash_key) = self.first.take()?;
        let builder = std::mem::take(&mut self.builder);
        Some(Aggregate {
            partition_key,
            explicit_hash_key,
            data: builder.encode().into(),
            user_records: builder.message.records.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Deaggregated, deaggregate};

    #[test]
    fn the_size_counted_is_the_size_made() {
        let mut aggregator = Aggregator::new();
        let mut added = Vec::new();
        for i in 0..700usize {
            let mut record = UserRecord::new(format!("k{}", i % 150), vec![7u8; i % 300]);
            if i % 7 == 0 {
                record = record.with_explicit_hash_key((i as u128 * 1_000_003).to_string());
            }
            let expected = aggregator.size_with(&record);
            added.push(record.clone());
            assert!(aggregator.add(record).unwrap().is_none());
            assert_eq!(aggregator.size(), expected, "after record {i}");
        }
        let before = aggregator.size();
        let made = aggregator.finish().unwrap();
        assert_eq!(made.size(), before);
        assert_eq!(made.user_records, 700);
        assert_eq!(deaggregate(&made.data), Deaggregated::Aggregate(added));
        assert!(aggregator.is_empty() && aggregator.size() == 0);
    }

    #[test]
    fn aggregates_are_cut_at_the_limit_and_keep_the_first_keys() {
        let mut aggregator = Aggregator::with_max_bytes(1_000).unwrap();
        let mut made = Vec::new();
        for i in 0..50 {
            let record = UserRecord::new(format!("key-{i}"), vec![1u8; 90]);
            made.extend(aggregator.add(record).unwrap());
        }
        made.extend(aggregator.finish());
        assert!(made.len() > 5, "{}", made.len());
        let mut next = 0;
        for aggregate in &made {
            assert!(aggregate.size() <= 1_000, "{}", aggregate.size());
            assert_eq!(aggregate.partition_key, format!("key-{next}"));
            assert_eq!(aggregate.explicit_hash_key, None);
            let Deaggregated::Aggregate(records) = deaggregate(&aggregate.data) else {
                panic!("not an aggregate");
            };
            assert_eq!(records.len(), aggregate.user_records);
            next += records.len();
        }
        assert_eq!(next, 50);
    }

    #[test]
    fn bad_records_and_limits_are_refused() {
        let mut aggregator = Aggregator::new();
        let bad_key = UserRecord::new("k".repeat(257), "x");
        assert_eq!(
            aggregator.add(bad_key),
            Err(AggregateError::PartitionKey { chars: 257 })
        );
        let bad_hash = UserRecord::new("k", "x").with_explicit_hash_key("-5");
        assert!(matches!(
            aggregator.add(bad_hash),
            Err(AggregateError::ExplicitHashKey { .. })
        ));
        let big = UserRecord::new("k", vec![0u8; MAX_RECORD_BYTES]);
        let error = aggregator.add(big).unwrap_err();
        assert!(
            error.to_string().contains("over the 1048576 bytes"),
            "{error}"
        );
        assert!(aggregator.is_empty());
        assert!(Aggregator::with_max_bytes(MAX_RECORD_BYTES_LIMIT + 1).is_err());
        assert!(Aggregator::with_max_bytes(0).is_err());
        let raised = Aggregator::with_max_bytes(MAX_RECORD_BYTES_LIMIT).unwrap();
        assert!(raised.fits(&UserRecord::new("k", vec![0u8; 5 * 1024 * 1024])));
    }

    #[test]
    fn an_aggregate_routes_by_its_first_record() {
        let mut aggregator = Aggregator::new();
        aggregator
            .add(UserRecord::new("a", "1").with_explicit_hash_key("99"))
            .unwrap();
        aggregator.add(UserRecord::new("b", "2")).unwrap();
        let made = aggregator.finish().unwrap();
        assert_eq!(made.hash_key().unwrap(), 99);
        let plain = Aggregate {
            explicit_hash_key: None,
            ..made
        };
        assert_eq!(plain.hash_key().unwrap(), partition_key_hash("a"));
    }
}

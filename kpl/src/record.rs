//! [`UserRecord`]: one record inside (or for) an aggregate.

use bytes::Bytes;

use crate::aggregate::AggregateError;
use crate::limits::{parse_explicit_hash_key, partition_key_hash, validate_partition_key};

/// One user record inside (or for) a KPL aggregate.
///
/// ```
/// use kpl::UserRecord;
/// let plain = UserRecord::new("user-1", "payload");
/// assert_eq!(plain.hash_key().unwrap(), kpl::partition_key_hash("user-1"));
/// let pinned = UserRecord::new("user-1", "payload").with_explicit_hash_key("42");
/// assert_eq!(pinned.hash_key().unwrap(), 42);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserRecord {
    /// The user record's partition key.
    pub partition_key: String,
    /// The explicit hash key it was put with, if any.
    pub explicit_hash_key: Option<String>,
    /// Its payload.
    pub data: Bytes,
}

impl UserRecord {
    /// A record with `partition_key` and `data`, no explicit hash key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// The record with an explicit hash key (a decimal number below 2^128,
    /// checked when the record is aggregated).
    pub fn with_explicit_hash_key(mut self, key: impl Into<String>) -> Self {
        self.explicit_hash_key = Some(key.into());
        self
    }

    /// The hash key Kinesis routes this record by: its explicit hash key if it
    /// has one, else the MD5 of its partition key ([`partition_key_hash`]).
    ///
    /// # Errors
    /// [`AggregateError::ExplicitHashKey`] when the explicit hash key is not a
    /// decimal number from 0 to 2^128 - 1.
    pub fn hash_key(&self) -> Result<u128, AggregateError> {
        match &self.explicit_hash_key {
            Some(key) => parse_explicit_hash_key(key),
            None => Ok(partition_key_hash(&self.partition_key)),
        }
    }

    /// Checks what Kinesis checks of a record's keys: a partition key of 1 to
    /// 256 characters, an explicit hash key (if any) from 0 to 2^128 - 1.
    ///
    /// # Errors
    /// [`AggregateError::PartitionKey`] or [`AggregateError::ExplicitHashKey`].
    ///
    /// ```
    /// use kpl::{AggregateError, UserRecord};
    /// assert!(UserRecord::new("k", "x").validate().is_ok());
    /// assert!(matches!(
    ///     UserRecord::new("", "x").validate(),
    ///     Err(AggregateError::PartitionKey { chars: 0 })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), AggregateError> {
        validate_partition_key(&self.partition_key)?;
        if let Some(key) = &self.explicit_hash_key {
            parse_explicit_hash_key(key)?;
        }
        Ok(())
    }
}

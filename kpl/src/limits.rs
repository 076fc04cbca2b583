//! The Kinesis limits a record must keep, and the hash key it is routed by.

use crate::aggregate::AggregateError;

/// The largest record a stream takes by default: 1 MiB, payload plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The largest record a stream raised with UpdateMaxRecordSize takes: 10 MiB.
pub const MAX_RECORD_BYTES_LIMIT: usize = 10 * 1024 * 1024;

/// The longest partition key Kinesis takes, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// The highest hash key: 2^128 - 1.
pub const MAX_HASH_KEY: u128 = u128::MAX;

/// Checks a partition key: 1 to 256 Unicode characters.
///
/// # Errors
/// [`AggregateError::PartitionKey`] with the key's length in characters.
///
/// ```
/// assert!(kpl::validate_partition_key("user-1").is_ok());
/// assert!(kpl::validate_partition_key("").is_err());
/// assert!(kpl::validate_partition_key(&"é".repeat(256)).is_ok(), "characters, not bytes");
/// assert!(kpl::validate_partition_key(&"k".repeat(257)).is_err());
/// ```
pub fn validate_partition_key(key: &str) -> Result<(), AggregateError> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(AggregateError::PartitionKey { chars });
    }
    Ok(())
}

/// Parses an explicit hash key: a decimal number from 0 to 2^128 - 1,
/// without sign or leading zeros (the pattern `0|([1-9]\d{0,38})` of the
/// Kinesis API, and in range).
///
/// # Errors
/// [`AggregateError::ExplicitHashKey`] with the key.
///
/// ```
/// assert_eq!(kpl::parse_explicit_hash_key("42").unwrap(), 42);
/// assert_eq!(kpl::parse_explicit_hash_key(&u128::MAX.to_string()).unwrap(), u128::MAX);
/// for bad in ["", "-1", "+1", "007", "1e3", "340282366920938463463374607431768211456"] {
///     assert!(kpl::parse_explicit_hash_key(bad).is_err(), "{bad}");
/// }
/// ```
pub fn parse_explicit_hash_key(key: &str) -> Result<u128, AggregateError> {
    let invalid = || AggregateError::ExplicitHashKey {
        key: key.chars().take(50).collect(),
    };
    let digits_only = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (key != "0" && key.starts_with('0')) {
        return Err(invalid());
    }
    key.parse::<u128>().map_err(|_| invalid())
}

/// The hash key Kinesis routes a partition key to: the MD5 of its UTF-8 bytes
/// as a big-endian 128-bit number. A record goes to the open shard whose hash
/// key range holds this number (or its explicit hash key, when it has one).
///
/// ```
/// // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
/// assert_eq!(kpl::partition_key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
/// ```
pub fn partition_key_hash(key: &str) -> u128 {
    u128::from_be_bytes(md5::compute(key.as_bytes()).0)
}

//! The record a handler sees, and the numbers that order a shard.
//!
//! Kinesis sequence numbers are decimal strings of up to 128 bits and more
//! (56 digits are common). They fit neither `u64` nor a DynamoDB Number, so
//! [`SequenceNumber`] keeps the digits and orders them as big numbers: first by
//! length, then by text. A KPL aggregate shares one sequence number among its
//! user records, told apart by a subsequence number; [`Position`] is the pair,
//! and it is the unit of checkpoints and skip rules.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Digits a [`SequenceNumber`] may have at most (the Kinesis API's pattern
/// `0|([1-9]\d{0,128})`); also the width of [`SequenceNumber::to_fixed_width`].
pub const SEQUENCE_NUMBER_MAX_DIGITS: usize = 129;

/// Why a text is not a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceNumberError {
    /// The text is empty.
    #[error("sequence number is empty")]
    Empty,
    /// The text holds something other than the digits 0-9.
    #[error("sequence number {0:?} holds a character that is not a decimal digit")]
    NotDecimal(String),
    /// The text has more digits than [`SEQUENCE_NUMBER_MAX_DIGITS`].
    #[error("sequence number has {0} digits, more than the {SEQUENCE_NUMBER_MAX_DIGITS} allowed")]
    TooLong(usize),
}

/// A Kinesis sequence number: a non-negative decimal integer of any practical size.
///
/// Ordering compares the numbers, not the texts: `"9" < "10"`. Leading zeros are
/// dropped when parsing, so equal numbers compare equal.
///
/// ```
/// use shardline_event::SequenceNumber;
/// let a: SequenceNumber = "49590338271490256608559692538361571095921575989136588898".parse()?;
/// let b: SequenceNumber = "49590338271490256608559692540925702759324208523137515618".parse()?;
/// assert!(a < b);
/// assert!("9".parse::<SequenceNumber>()? < "10".parse::<SequenceNumber>()?);
/// # Ok::<(), shardline_event::SequenceNumberError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(Arc<str>);

impl SequenceNumber {
    /// The digits, without leading zeros (`"0"` for zero).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits left-padded with zeros to [`SEQUENCE_NUMBER_MAX_DIGITS`], so that
    /// text order equals number order (what a store's string comparison needs).
    pub fn to_fixed_width(&self) -> String {
        format!("{:0>width$}", self.0, width = SEQUENCE_NUMBER_MAX_DIGITS)
    }
}

impl std::str::FromStr for SequenceNumber {
    type Err = SequenceNumberError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(SequenceNumberError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceNumberError::NotDecimal(text.to_owned()));
        }
        let digits = text.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        if digits.len() > SEQUENCE_NUMBER_MAX_DIGITS {
            return Err(SequenceNumberError::TooLong(digits.len()));
        }
        Ok(SequenceNumber(Arc::from(digits)))
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.0)
    }
}

/// Where a user record sits in its shard: the sequence number of the Kinesis
/// record that carried it, and its index inside a KPL aggregate (0 for a plain
/// record). Positions order by sequence number, then subsequence number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The Kinesis sequence number.
    pub sequence: SequenceNumber,
    /// The index of the user record inside its KPL aggregate; 0 for a plain record.
    pub subsequence: u64,
}

impl Position {
    /// A position from its two parts.
    pub fn new(sequence: SequenceNumber, subsequence: u64) -> Self {
        Position {
            sequence,
            subsequence,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.sequence, self.subsequence)
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({self})")
    }
}

/// One shard of one stream: the unit of ordering and of checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardRef {
    /// The stream's ARN, from `eventSourceARN`.
    pub stream_arn: Arc<str>,
    /// The shard id, such as `shardId-000000000006`.
    pub shard_id: Arc<str>,
}

impl fmt::Display for ShardRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.shard_id)
    }
}

/// A user record, as the handler receives it: one plain Kinesis record, or one
/// user record out of a KPL aggregate.
#[derive(Clone, Debug)]
pub struct Record {
    /// The stream and shard the record came from.
    pub shard: ShardRef,
    /// Sequence and subsequence number.
    pub position: Position,
    /// The partition key (for a KPL user record, its own key from the aggregate).
    pub partition_key: String,
    /// For a KPL user record, the partition key of the Kinesis record that
    /// carried it: Lambda routes and orders by this one. `None` for a plain record.
    pub kinesis_partition_key: Option<Arc<str>>,
    /// The explicit hash key a KPL user record was put with, if any.
    pub explicit_hash_key: Option<String>,
    /// The payload, decoded from base64 (and out of its aggregate).
    pub data: Bytes,
    /// When Kinesis accepted the record (`approximateArrivalTimestamp`).
    pub approximate_arrival: Option<SystemTime>,
    /// How the record reached the handler.
    pub origin: RecordOrigin,
}

/// How a [`Record`] was carried in the Kinesis record Lambda delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordOrigin {
    /// A plain Kinesis record.
    Plain,
    /// User record `position.subsequence` of a KPL aggregate of `count` records.
    Aggregated {
        /// How many user records the aggregate holds.
        count: u64,
    },
    /// Bytes that begin with the KPL magic but fail its MD5 or protobuf check,
    /// handed over whole as a plain record (what the KCL does).
    AggregateFallback,
}

impl Record {
    /// The payload as UTF-8 text, or `None` if it is not valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// The payload parsed as JSON into `T`.
    ///
    /// # Errors
    /// The `serde_json` error when the payload is not `T` in JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }

    /// The key Lambda orders this record by: the Kinesis record's partition key
    /// (for a KPL user record, the aggregate's, not its own).
    pub fn ordering_key(&self) -> &str {
        self.kinesis_partition_key
            .as_deref()
            .unwrap_or(&self.partition_key)
    }

    /// How long ago Kinesis accepted the record, as of `now`; `None` without an
    /// arrival time or when the arrival is in the future.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        self.approximate_arrival
            .and_then(|arrival| now.duration_since(arrival).ok())
    }
}

/// An `approximateArrivalTimestamp` (epoch seconds, fractional) as a time, or
/// `None` when it is negative, not finite or beyond what a time can hold.
///
/// Kinesis stamps arrivals to the millisecond, and a JSON float such as
/// `1545084650.987` may parse to a hair below its decimal value, so the seconds
/// are rounded to the nearest millisecond rather than truncated.
pub(crate) fn arrival_from_epoch_seconds(seconds: f64) -> Option<SystemTime> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let millis = (seconds * 1000.0).round();
    // 2^64 is exactly representable; anything at or above it does not fit a u64.
    if millis >= 18_446_744_073_709_551_616.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_millis(millis as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        s.parse().unwrap()
    }

    #[test]
    fn long_sequence_numbers_order_as_numbers() {
        let a = seq("49590338271490256608559692538361571095921575989136588898");
        let b = seq("49590338271490256608559692540925702759324208523137515618");
        let shorter = seq("9999999999999999999999999999999999999999999999999999999");
        assert_eq!(a.as_str().len(), 56);
        assert!(a < b);
        assert!(shorter < a, "55 digits are less than any 56 digits");
        assert!(seq("9") < seq("10"));
        assert_eq!(seq("0007"), seq("7"));
        assert_eq!(seq("000"), seq("0"));
    }

    #[test]
    fn fixed_width_text_orders_like_the_numbers() {
        let mut numbers = [
            "10",
            "9",
            "49590338271490256608559692540925702759324208523137515618",
            "49590338271490256608559692538361571095921575989136588898",
            "0",
        ]
        .map(seq);
        let mut texts: Vec<String> = numbers.iter().map(|s| s.to_fixed_width()).collect();
        numbers.sort();
        texts.sort();
        let sorted: Vec<String> = numbers.iter().map(|s| s.to_fixed_width()).collect();
        assert_eq!(texts, sorted);
        assert!(texts.iter().all(|t| t.len() == SEQUENCE_NUMBER_MAX_DIGITS));
    }

    #[test]
    fn bad_sequence_numbers_are_named() {
        assert_eq!(
            "".parse::<SequenceNumber>(),
            Err(SequenceNumberError::Empty)
        );
        assert!(matches!(
            "12a".parse::<SequenceNumber>(),
            Err(SequenceNumberError::NotDecimal(t)) if t == "12a"
        ));
        assert!(matches!(
            "-1".parse::<SequenceNumber>(),
            Err(SequenceNumberError::NotDecimal(_))
        ));
        let long = "1".repeat(SEQUENCE_NUMBER_MAX_DIGITS + 1);
        assert_eq!(
            long.parse::<SequenceNumber>(),
            Err(SequenceNumberError::TooLong(130))
        );
    }

    #[test]
    fn positions_order_by_sequence_then_subsequence() {
        let p = |s: &str, sub| Position::new(seq(s), sub);
        assert!(p("5", 9) < p("6", 0));
        assert!(p("6", 0) < p("6", 1));
        assert!(p("10", 0) > p("9", 100));
    }

    #[test]
    fn arrival_times_convert() {
        let t = arrival_from_epoch_seconds(1_545_084_650.987).unwrap();
        let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert_eq!(ms, 1_545_084_650_987);
        assert!(arrival_from_epoch_seconds(-1.0).is_none());
        assert!(arrival_from_epoch_seconds(f64::NAN).is_none());
    }

    #[test]
    fn arrival_times_round_to_the_millisecond() {
        let ms = |seconds: f64| {
            arrival_from_epoch_seconds(seconds)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        // The f64 just below 1545084650.987 (what a fast JSON float parser may
        // produce) is still that millisecond, not ...986.
        let below = f64::from_bits(1_545_084_650.987f64.to_bits() - 1);
        assert_eq!(ms(below), 1_545_084_650_987);
        let parsed: f64 = serde_json::from_str("1545084650.987").unwrap();
        assert_eq!(ms(parsed), 1_545_084_650_987);
        assert_eq!(ms(1_607_497_475.0), 1_607_497_475_000);
        assert_eq!(ms(0.0), 0);
    }

    #[test]
    fn absurd_arrival_times_are_none_not_a_panic() {
        assert!(arrival_from_epoch_seconds(1e300).is_none());
        assert!(arrival_from_epoch_seconds(f64::MAX).is_none());
        assert!(arrival_from_epoch_seconds(f64::INFINITY).is_none());
    }
}

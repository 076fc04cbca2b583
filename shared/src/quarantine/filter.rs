//! Which quarantined records an operation takes: the filters every `quarantine`
//! command shares (`--shard`, `--reason`, `--since`, `--until`, `--limit`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{QuarantineReason, QuarantinedRecord};
use crate::time::epoch_millis;

/// A selection of quarantined records. Empty, it takes every record.
///
/// ```
/// use shardline::quarantine::{QuarantineFilter, QuarantineReason};
/// let filter = QuarantineFilter {
///     shard: Some("shardId-000000000001".into()),
///     reason: Some(QuarantineReason::Exhausted),
///     ..QuarantineFilter::default()
/// };
/// assert!(!filter.is_empty());
/// assert!(QuarantineFilter::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineFilter {
    /// Only this shard id.
    pub shard: Option<String>,
    /// Only this reason.
    pub reason: Option<QuarantineReason>,
    /// Only records quarantined at or after this time (epoch ms).
    pub since: Option<u64>,
    /// Only records quarantined before this time (epoch ms).
    pub until: Option<u64>,
    /// At most this many records (the oldest first).
    pub limit: Option<usize>,
}

impl QuarantineFilter {
    /// Whether the filter takes everything.
    pub fn is_empty(&self) -> bool {
        *self == QuarantineFilter::default()
    }

    /// Whether `record` passes the shard, reason and time filters (not the limit).
    pub fn matches(&self, record: &QuarantinedRecord) -> bool {
        self.shard.as_ref().is_none_or(|s| *s == record.shard_id)
            && self.reason.is_none_or(|r| r == record.reason)
            && self.since.is_none_or(|t| record.quarantined_at >= t)
            && self.until.is_none_or(|t| record.quarantined_at < t)
    }

    /// The records that pass, oldest first, at most `limit` of them.
    pub fn select(&self, mut records: Vec<QuarantinedRecord>) -> Vec<QuarantinedRecord> {
        records.retain(|r| self.matches(r));
        records.sort_by_key(|r| r.quarantined_at);
        if let Some(limit) = self.limit {
            records.truncate(limit);
        }
        records
    }
}

/// How many records per shard and reason: `(shard_id, reason) -> count`.
pub fn count_by_shard_and_reason(
    records: &[QuarantinedRecord],
) -> BTreeMap<(String, QuarantineReason), u64> {
    let mut counts = BTreeMap::new();
    for record in records {
        *counts
            .entry((record.shard_id.clone(), record.reason))
            .or_insert(0) += 1;
    }
    counts
}

/// Why a time in a filter could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "cannot read the time {0:?}: give epoch milliseconds, a UTC time such as \
     2026-11-23T18:00:00Z, or an age such as 90s, 30m, 2h or 7d"
)]
pub struct TimeError(pub String);

/// Reads a filter time, in epoch milliseconds: epoch milliseconds as digits,
/// an RFC 3339 UTC time (`2026-11-23T18:00:00Z`, fractions of a second
/// allowed), or an age before `now` (`90s`, `30m`, `2h`, `7d`).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use shardline::quarantine::parse_time;
/// let now = UNIX_EPOCH + Duration::from_secs(7200);
/// assert_eq!(parse_time("1700000000000", now).unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_time("1970-01-01T00:01:00Z", now).unwrap(), 60_000);
/// assert_eq!(parse_time("1h", now).unwrap(), 3_600_000);
/// assert!(parse_time("yesterday", now).is_err());
/// ```
///
/// # Errors
/// [`TimeError`] when the text is none of these.
pub fn parse_time(text: &str, now: SystemTime) -> Result<u64, TimeError> {
    let fail = || TimeError(text.to_owned());
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| fail());
    }
    if let Some(age) = parse_age(text) {
        let at = now.checked_sub(age).ok_or_else(fail)?;
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| fail())?;
        return Ok(epoch_millis(at));
    }
    parse_utc(text).ok_or_else(fail)
}

fn parse_age(text: &str) -> Option<Duration> {
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let count: u64 = text[..text.len() - 1].parse().ok()?;
    Some(Duration::from_secs(count.checked_mul(unit)?))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as epoch milliseconds.
fn parse_utc(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))?;
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<u64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (time, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut time = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 61
        && fraction.len() <= 9
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    let millis = format!("{fraction:0<3}")[..3].parse::<u64>().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(shard: &str, reason: QuarantineReason, at: u64) -> QuarantinedRecord {
        QuarantinedRecord {
            stream_arn: "arn".into(),
            shard_id: shard.into(),
            sequence_number: at.to_string(),
            subsequence_number: 0,
            partition_key: "k".into(),
            reason,
            detail: String::new(),
            attempts: 1,
            quarantined_at: at,
            data: Bytes::new(),
            explicit_hash_key: None,
            replay_started_at: None,
        }
    }

    #[test]
    fn filters_take_shard_reason_and_a_half_open_time_range_then_the_limit() {
        use QuarantineReason::{Exhausted, Permanent};
        let records = vec![
            entry("a", Permanent, 30),
            entry("b", Permanent, 10),
            entry("a", Exhausted, 20),
            entry("a", Permanent, 40),
        ];
        let pick = |filter: QuarantineFilter| -> Vec<u64> {
            filter
                .select(records.clone())
                .iter()
                .map(|r| r.quarantined_at)
                .collect()
        };
        assert_eq!(pick(QuarantineFilter::default()), [10, 20, 30, 40]);
        let shard_a = QuarantineFilter {
            shard: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(pick(shard_a.clone()), [20, 30, 40]);
        let permanent_a = QuarantineFilter {
            reason: Some(Permanent),
            ..shard_a.clone()
        };
        assert_eq!(pick(permanent_a), [30, 40]);
        let window = QuarantineFilter {
            since: Some(20),
            until: Some(40),
            ..Default::default()
        };
        assert_eq!(pick(window), [20, 30]);
        let limited = QuarantineFilter {
            limit: Some(2),
            ..shard_a
        };
        assert_eq!(pick(limited), [20, 30]);
        let counts = count_by_shard_and_reason(&records);
        assert_eq!(counts[&("a".to_owned(), Permanent)], 2);
        assert_eq!(counts[&("a".to_owned(), Exhausted)], 1);
        assert_eq!(counts[&("b".to_owned(), Permanent)], 1);
    }

    #[test]
    fn utc_times_read_as_epoch_milliseconds() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            parse_time("2026-11-23T18:00:00Z", now),
            Ok(1_795_456_800_000)
        );
        assert_eq!(
            parse_time("2000-02-29T00:00:00.5Z", now),
            Ok(951_782_400_500)
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-23T18:00:00",
            "5x",
            "-5",
        ] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert!(parse_time("2h", now).is_err(), "before the epoch");
    }
}

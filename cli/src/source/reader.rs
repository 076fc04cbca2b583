//! Reading one shard: an iterator at the starting position, GetRecords until
//! the shard ends (a null next iterator, with its children), records routed to
//! the shard's slots by partition key hash (ParallelizationFactor).
//!
//! Kinesis expires a shard iterator 5 minutes after returning it ("A shard
//! iterator expires 5 minutes after it is returned to the requester",
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html>),
//! and an expired one is refused for good with `ExpiredIteratorException`. A
//! reader holds its iterator that long after a run of failed reads or a long
//! back-pressure pause. As the KCL does, the reader remembers the last record
//! it handed to the slots and, when its iterator expired (or is close to it),
//! takes a new one just after that record (`AFTER_SEQUENCE_NUMBER`), or at the
//! shard's starting position when it has read nothing yet: no record is read
//! twice, none is skipped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::Mapping;
use shardline_esm::{StreamRecord, slot_of};

use super::slot::SlotQueue;

/// Where a shard's reading starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Start {
    TrimHorizon,
    Latest,
    AtTimestamp(SystemTime),
}

/// Pause between reads of a shard with nothing new (Lambda polls about once a second).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Records a shard's slots may hold before the reader waits.
const MAX_WAITING: usize = 20_000;
/// Pause before a failed GetShardIterator or GetRecords is tried again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Age past which an iterator is renewed before it is used rather than sent
/// to be refused: a minute short of the 5 minutes Kinesis honours it, so a
/// slow request cannot carry it past its expiry.
const ITERATOR_RENEW_AGE: Duration = Duration::from_secs(4 * 60);

/// What the reader of one shard shares with the rest of the mapping.
#[derive(Debug, Default)]
pub(crate) struct ReadState {
    /// The shard ended and every record of it was handed to a slot.
    pub ended: AtomicBool,
    /// The last read found nothing new (MillisBehindLatest 0).
    pub caught_up: AtomicBool,
    /// MillisBehindLatest of the last read.
    pub behind_ms: AtomicU64,
}

/// Why a read of the shard gave no records.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// Kinesis refused the iterator as expired: it never works again, a new
    /// one is needed at the reader's position.
    #[error("GetRecords: the shard iterator expired: {0}")]
    ExpiredIterator(String),
    /// Anything else (throttling, a network error, the service): worth trying
    /// again after a pause, with the same iterator.
    #[error("{operation}: {detail}")]
    Call {
        operation: &'static str,
        detail: String,
    },
}

/// Reads `shard_id` from `start` into `slots` until it ends.
pub(crate) async fn read_shard(
    mapping: Arc<Mapping>,
    client: Client,
    shard_id: Arc<str>,
    start: Start,
    slots: Vec<Arc<SlotQueue>>,
    state: Arc<ReadState>,
) {
    let mut cursor = Cursor::new(start);
    loop {
        if waiting(&slots) > MAX_WAITING {
            // Back-pressure: the iterator ages meanwhile, and the cursor
            // renews it before use when the pause was long.
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        let iterator = match cursor.iterator(&mapping, &client, &shard_id).await {
            Ok(Some(iterator)) => iterator,
            Ok(None) => break,
            Err(error) => {
                eprintln!("source: {shard_id}: {error}; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let asked = Instant::now();
        let page = match get_records(&client, &iterator.token).await {
            Ok(page) => page,
            Err(error @ ReadError::ExpiredIterator(_)) => {
                // Dropped for good; the next turn takes a new one. A short
                // pause keeps a service refusing every iterator from being
                // asked in a tight loop.
                eprintln!(
                    "source: {shard_id}: {error}; a new iterator {}",
                    cursor.position
                );
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            Err(error) => {
                eprintln!("source: {shard_id}: {error}; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                cursor.keep(iterator);
                continue;
            }
        };
        hand_over(&mapping, &page, &slots, &state);
        let last = page.records().last().map(|r| r.sequence_number());
        let Some(next) = page.next_shard_iterator() else {
            break;
        };
        cursor.advance(last, next, asked);
        if page.records().is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
    state.ended.store(true, Ordering::SeqCst);
}

/// How many records the shard's slots hold.
fn waiting(slots: &[Arc<SlotQueue>]) -> usize {
    slots.iter().map(|l| l.len()).sum()
}

/// Records a page's progress in `state` and hands its records to the slots.
fn hand_over(
    mapping: &Mapping,
    page: &GetRecordsOutput,
    slots: &[Arc<SlotQueue>],
    state: &ReadState,
) {
    let records: Vec<StreamRecord> = page.records().iter().filter_map(stream_record).collect();
    let behind = page.millis_behind_latest().unwrap_or(0);
    state
        .behind_ms
        .store(u64::try_from(behind).unwrap_or(0), Ordering::Relaxed);
    state
        .caught_up
        .store(records.is_empty() && behind == 0, Ordering::SeqCst);
    if !records.is_empty() {
        mapping.counters.read(records.len());
        mapping.touch();
        route(records, slots);
    }
}

/// Where the shard's reading resumes when its iterator has to be renewed.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// Nothing read yet: the shard's starting position.
    Start(Start),
    /// Just after this sequence number: the last record handed to the slots.
    After(String),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start(Start::TrimHorizon) => f.write_str("at TRIM_HORIZON"),
            Position::Start(Start::Latest) => f.write_str("at LATEST"),
            Position::Start(Start::AtTimestamp(at)) => {
                let secs = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                write!(f, "at the timestamp {secs:.3}")
            }
            Position::After(sequence) => write!(f, "after the sequence number {sequence}"),
        }
    }
}

/// A shard iterator and when it was asked for (at or before Kinesis returned
/// it, so its age is never underestimated).
#[derive(Debug)]
struct HeldIterator {
    token: String,
    asked: Instant,
}

/// A shard's place: where reading resumes, and the iterator to read on with.
#[derive(Debug)]
struct Cursor {
    position: Position,
    iterator: Option<HeldIterator>,
}

impl Cursor {
    /// Before the first read: at the shard's starting position, no iterator.
    fn new(start: Start) -> Self {
        Cursor {
            position: Position::Start(start),
            iterator: None,
        }
    }

    /// The iterator to read with: the one held while it is young enough, else
    /// a new one at the position (`None`: Kinesis gave none).
    async fn iterator(
        &mut self,
        mapping: &Mapping,
        client: &Client,
        shard_id: &str,
    ) -> Result<Option<HeldIterator>, ReadError> {
        if let Some(held) = self.take_young(Instant::now()) {
            return Ok(Some(held));
        }
        let asked = Instant::now();
        let requested_at = SystemTime::now();
        let token = get_shard_iterator(mapping, client, shard_id, &self.position).await?;
        if matches!(self.position, Position::Start(Start::Latest)) {
            // A renewed LATEST would skip what arrived since this first one:
            // nothing read yet means resuming from the moment it was asked.
            self.position = Position::Start(Start::AtTimestamp(requested_at));
        }
        Ok(token.map(|token| HeldIterator { token, asked }))
    }

    /// The held iterator, unless it is older than [`ITERATOR_RENEW_AGE`] at
    /// `now` (then it is dropped).
    fn take_young(&mut self, now: Instant) -> Option<HeldIterator> {
        self.iterator
            .take()
            .filter(|held| now.saturating_duration_since(held.asked) < ITERATOR_RENEW_AGE)
    }

    /// Holds on to an iterator a failed GetRecords did not use up.
    fn keep(&mut self, iterator: HeldIterator) {
        self.iterator = Some(iterator);
    }

    /// After a page: reading resumes after its `last` record (unchanged when
    /// the page was empty), with `next`, asked for at `asked`.
    fn advance(&mut self, last: Option<&str>, next: &str, asked: Instant) {
        if let Some(last) = last {
            self.position = Position::After(last.to_owned());
        }
        self.iterator = Some(HeldIterator {
            token: next.to_owned(),
            asked,
        });
    }
}

/// One GetRecords of up to 1,000 records, its expired iterator told apart.
async fn get_records(client: &Client, iterator: &str) -> Result<GetRecordsOutput, ReadError> {
    client
        .get_records()
        .shard_iterator(iterator)
        .limit(1_000)
        .send()
        .await
        .map_err(|error| {
            let expired = error
                .as_service_error()
                .is_some_and(GetRecordsError::is_expired_iterator_exception);
            let detail = DisplayErrorContext(&error).to_string();
            if expired {
                ReadError::ExpiredIterator(detail)
            } else {
                ReadError::Call {
                    operation: "GetRecords",
                    detail,
                }
            }
        })
}

/// A new iterator of `shard_id` at `position`.
async fn get_shard_iterator(
    mapping: &Mapping,
    client: &Client,
    shard_id: &str,
    position: &Position,
) -> Result<Option<String>, ReadError> {
    let request = client
        .get_shard_iterator()
        .stream_name(&mapping.stream_name)
        .shard_id(shard_id);
    let request = match position {
        Position::Start(Start::TrimHorizon) => {
            request.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        Position::Start(Start::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
        Position::Start(Start::AtTimestamp(at)) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*at)),
        Position::After(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
    };
    let out = request.send().await.map_err(|e| ReadError::Call {
        operation: "GetShardIterator",
        detail: DisplayErrorContext(&e).to_string(),
    })?;
    Ok(out.shard_iterator().map(str::to_owned))
}

/// Hands records to the slots, each key always to the same slot, in order.
fn route(records: Vec<StreamRecord>, slots: &[Arc<SlotQueue>]) {
    let mut split: Vec<Vec<StreamRecord>> = vec![Vec::new(); slots.len()];
    for record in records {
        let slot = slot_of(&record.partition_key, slots.len());
        split[slot].push(record);
    }
    for (slot, records) in slots.iter().zip(split) {
        if !records.is_empty() {
            slot.push(records);
        }
    }
}

fn stream_record(record: &aws_sdk_kinesis::types::Record) -> Option<StreamRecord> {
    let arrival = record
        .approximate_arrival_timestamp()
        .map_or(0.0, |t| t.as_secs_f64());
    Some(StreamRecord {
        sequence: record.sequence_number().parse().ok()?,
        // `&str` in the aws-sdk-kinesis releases the lock file has, `Option<&str>` in
        // newer ones (1.130): both read.
        partition_key: Option::<&str>::from(record.partition_key())
            .unwrap_or_default()
            .to_owned(),
        data: bytes::Bytes::copy_from_slice(record.data().as_ref()),
        arrival,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor_holding(asked: Instant) -> Cursor {
        let mut cursor = Cursor::new(Start::TrimHorizon);
        cursor.advance(Some("49"), "iterator-1", asked);
        cursor
    }

    #[test]
    fn a_page_moves_the_position_after_its_last_record_and_an_empty_one_keeps_it() {
        let now = Instant::now();
        let mut cursor = Cursor::new(Start::TrimHorizon);
        cursor.advance(None, "iterator-1", now);
        assert_eq!(cursor.position, Position::Start(Start::TrimHorizon));
        cursor.advance(Some("49"), "iterator-2", now);
        assert_eq!(cursor.position, Position::After("49".into()));
        cursor.advance(None, "iterator-3", now);
        assert_eq!(cursor.position, Position::After("49".into()));
        assert_eq!(
            cursor.take_young(now).map(|h| h.token),
            Some("iterator-3".into())
        );
    }

    #[test]
    fn an_iterator_near_its_five_minutes_is_dropped_for_a_new_one() {
        let asked = Instant::now();
        let mut cursor = cursor_holding(asked);
        let young = asked + ITERATOR_RENEW_AGE - Duration::from_secs(1);
        let held = cursor.take_young(young).map(|h| h.token);
        assert_eq!(held, Some("iterator-1".into()));

        let mut cursor = cursor_holding(asked);
        assert!(cursor.take_young(asked + ITERATOR_RENEW_AGE).is_none());
        assert!(cursor.iterator.is_none(), "the old iterator is not kept");
        assert_eq!(cursor.position, Position::After("49".into()));
    }

    #[test]
    fn a_failed_read_keeps_its_iterator() {
        let asked = Instant::now();
        let mut cursor = cursor_holding(asked);
        let held = cursor.take_young(asked);
        assert!(cursor.iterator.is_none());
        cursor.keep(held.expect("a young iterator"));
        assert_eq!(
            cursor.take_young(asked).map(|h| h.token),
            Some("iterator-1".into())
        );
    }

    #[test]
    fn positions_read_as_iterator_types() {
        assert_eq!(
            Position::After("7".into()).to_string(),
            "after the sequence number 7"
        );
        assert_eq!(Position::Start(Start::Latest).to_string(), "at LATEST");
    }
}

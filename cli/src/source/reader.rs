//! Reading one shard: an iterator at the starting position, GetRecords until
//! the shard ends (a null next iterator, with its children), records routed to
//! the shard's lanes by partition key hash (ParallelizationFactor).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::Mapping;
use shardline_esm::{StreamRecord, lane_of};

use super::lane::LaneQueue;

/// Where a shard's reading starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    TrimHorizon,
    Latest,
    AtTimestamp(SystemTime),
}

/// Pause between reads of a shard with nothing new (Lambda polls about once a second).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Records a shard's lanes may hold before the reader waits.
const MAX_WAITING: usize = 20_000;

/// What the reader of one shard shares with the rest of the mapping.
#[derive(Debug, Default)]
pub struct ReadState {
    /// The shard ended and every record of it was handed to a lane.
    pub ended: AtomicBool,
    /// The last read found nothing new (MillisBehindLatest 0).
    pub caught_up: AtomicBool,
    /// MillisBehindLatest of the last read.
    pub behind_ms: AtomicU64,
}

/// Reads `shard_id` from `start` into `lanes` until it ends.
pub async fn read_shard(
    mapping: Arc<Mapping>,
    client: Client,
    shard_id: Arc<str>,
    start: Start,
    lanes: Vec<Arc<LaneQueue>>,
    state: Arc<ReadState>,
) {
    let mut iterator = None;
    loop {
        let current = match iterator.take() {
            Some(current) => current,
            None => match first_iterator(&mapping, &client, &shard_id, start).await {
                Ok(Some(first)) => first,
                Ok(None) => break,
                Err(error) => {
                    eprintln!("source: {shard_id}: {error}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let waiting: usize = lanes.iter().map(|l| l.len()).sum();
        if waiting > MAX_WAITING {
            tokio::time::sleep(IDLE_POLL).await;
            iterator = Some(current);
            continue;
        }
        let page = match client
            .get_records()
            .shard_iterator(&current)
            .limit(1_000)
            .send()
            .await
        {
            Ok(page) => page,
            Err(error) => {
                eprintln!(
                    "source: GetRecords on {shard_id}: {}",
                    DisplayErrorContext(&error)
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
                iterator = Some(current);
                continue;
            }
        };
        let records: Vec<StreamRecord> = page.records().iter().filter_map(stream_record).collect();
        state.behind_ms.store(
            u64::try_from(page.millis_behind_latest().unwrap_or(0)).unwrap_or(0),
            Ordering::Relaxed,
        );
        state.caught_up.store(
            records.is_empty() && page.millis_behind_latest().unwrap_or(0) == 0,
            Ordering::SeqCst,
        );
        if !records.is_empty() {
            mapping.counters.read(records.len());
            mapping.touch();
            route(records, &lanes);
        }
        match page.next_shard_iterator() {
            None => break,
            Some(next) => iterator = Some(next.to_owned()),
        }
        if page.records().is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
    state.ended.store(true, Ordering::SeqCst);
}

/// Hands records to the lanes, each key always to the same lane, in order.
fn route(records: Vec<StreamRecord>, lanes: &[Arc<LaneQueue>]) {
    let mut split: Vec<Vec<StreamRecord>> = vec![Vec::new(); lanes.len()];
    for record in records {
        let lane = lane_of(&record.partition_key, lanes.len());
        split[lane].push(record);
    }
    for (lane, records) in lanes.iter().zip(split) {
        if !records.is_empty() {
            lane.push(records);
        }
    }
}

fn stream_record(record: &aws_sdk_kinesis::types::Record) -> Option<StreamRecord> {
    let arrival = record
        .approximate_arrival_timestamp()
        .map_or(0.0, |t| t.as_secs_f64());
    Some(StreamRecord {
        sequence: record.sequence_number().parse().ok()?,
        partition_key: record.partition_key().to_owned(),
        data: bytes::Bytes::copy_from_slice(record.data().as_ref()),
        arrival,
    })
}

async fn first_iterator(
    mapping: &Mapping,
    client: &Client,
    shard_id: &str,
    start: Start,
) -> Result<Option<String>, String> {
    let request = client
        .get_shard_iterator()
        .stream_name(&mapping.stream_name)
        .shard_id(shard_id);
    let request = match start {
        Start::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Start::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
        Start::AtTimestamp(at) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(at)),
    };
    let out = request
        .send()
        .await
        .map_err(|e| format!("GetShardIterator: {}", DisplayErrorContext(&e)))?;
    Ok(out.shard_iterator().map(str::to_owned))
}

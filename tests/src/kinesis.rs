//! Kinesis helpers for tests: streams, records, resharding and reading a shard to its end.
//!
//! The helpers panic with the operation, the stream and the SDK error's full context:
//! test setup has nothing to recover from. Every wait is bounded by [`WAIT_TIMEOUT`].
//!
//! kinesis-mock (the emulator) quirks to design tests around:
//! - A closed shard's `EndingSequenceNumber` is `9223372036854775807` (Long.MAX), not its
//!   last sequence number. Its end shows in GetRecords: a null `NextShardIterator` with
//!   the `ChildShards`, in the same response as the last records.
//! - MergeShards wants the lower hash range as `ShardToMerge` (see [`merge_shards`]).
//! - It validates no request limits (PutRecords takes 501 entries), and GetRecords on an
//!   open shard always reports `MillisBehindLatest` 0.

use std::fmt::Debug;
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, Shard, ShardIteratorType, StreamDescriptionSummary, StreamStatus,
};

use crate::WAIT_TIMEOUT;

/// How often the waits poll the emulator.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);
/// PutRecords takes at most 500 entries.
const PUT_RECORDS_MAX_ENTRIES: usize = 500;
/// [`read_shard`] gives up after this many GetRecords calls.
pub const READ_SHARD_MAX_CALLS: usize = 1_000;

/// One shard as `ListShards` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
    pub starting_sequence_number: String,
    /// Set once the shard is closed (by a split or merge). kinesis-mock reports a
    /// placeholder value here, not the last sequence number: detect the end of a shard
    /// by the null `NextShardIterator` of GetRecords instead.
    pub ending_sequence_number: Option<String>,
}

impl ShardInfo {
    /// True once a split or merge has closed the shard.
    pub fn is_closed(&self) -> bool {
        self.ending_sequence_number.is_some()
    }

    /// The hash key in the middle of the shard's range: where [`split_shard`] splits.
    pub fn middle_hash_key(&self) -> u128 {
        self.starting_hash_key + (self.ending_hash_key - self.starting_hash_key) / 2 + 1
    }
}

/// Where a put record landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub shard_id: String,
    pub sequence_number: String,
}

/// One record read back from a shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Epoch seconds, as the Lambda event's `approximateArrivalTimestamp`.
    pub approximate_arrival_timestamp: Option<f64>,
}

/// A child shard named by GetRecords at the end of a closed shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShardInfo {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
}

/// The result of reading a shard from TRIM_HORIZON with [`read_shard`].
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRead {
    /// All records, in shard order.
    pub records: Vec<ReadRecord>,
    /// True when GetRecords returned a null `NextShardIterator`: the shard is closed and
    /// fully read. False when the read stopped at the current end of an open shard.
    pub shard_ended: bool,
    /// The `ChildShards` of the last GetRecords call (set at a closed shard's end).
    pub child_shards: Vec<ChildShardInfo>,
    /// GetRecords calls made.
    pub get_records_calls: usize,
}

fn fail(operation: &str, stream: &str, error: impl std::error::Error) -> ! {
    panic!(
        "Kinesis {operation} on stream {stream} failed: {}",
        DisplayErrorContext(error)
    )
}

fn parse_hash_key(value: &str, shard_id: &str) -> u128 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("shard {shard_id} has a hash key that is not a u128: {value}"))
}

impl From<&Shard> for ShardInfo {
    fn from(shard: &Shard) -> Self {
        let shard_id = shard.shard_id().to_owned();
        let range = shard
            .hash_key_range()
            .unwrap_or_else(|| panic!("shard {shard_id} has no HashKeyRange"));
        let sequence_range = shard
            .sequence_number_range()
            .unwrap_or_else(|| panic!("shard {shard_id} has no SequenceNumberRange"));
        Self {
            parent_shard_id: shard.parent_shard_id().map(str::to_owned),
            adjacent_parent_shard_id: shard.adjacent_parent_shard_id().map(str::to_owned),
            starting_hash_key: parse_hash_key(range.starting_hash_key(), &shard_id),
            ending_hash_key: parse_hash_key(range.ending_hash_key(), &shard_id),
            starting_sequence_number: sequence_range.starting_sequence_number().to_owned(),
            ending_sequence_number: sequence_range.ending_sequence_number().map(str::to_owned),
            shard_id,
        }
    }
}

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Some`, or panics after
/// [`WAIT_TIMEOUT`] with `what` and the last value seen.
async fn wait_until<T, S: Debug>(what: &str, mut check: impl AsyncFnMut() -> Result<T, S>) -> T {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {WAIT_TIMEOUT:?} waiting for {what}; last state: {state:?}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Creates a provisioned stream with `shard_count` shards and waits until it is ACTIVE.
pub async fn create_stream(client: &Client, stream: &str, shard_count: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shard_count)
        .send()
        .await
        .unwrap_or_else(|e| fail("CreateStream", stream, e));
    wait_for_stream_active(client, stream).await;
}

/// The stream's DescribeStreamSummary.
async fn summary(client: &Client, stream: &str) -> StreamDescriptionSummary {
    client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| fail("DescribeStreamSummary", stream, e))
        .stream_description_summary
        .unwrap_or_else(|| panic!("DescribeStreamSummary of {stream} has no summary"))
}

/// The stream's status (ACTIVE, CREATING, UPDATING, DELETING).
pub async fn stream_status(client: &Client, stream: &str) -> StreamStatus {
    summary(client, stream).await.stream_status
}

/// Waits until the stream is ACTIVE.
pub async fn wait_for_stream_active(client: &Client, stream: &str) {
    wait_until(
        &format!("stream {stream} to be ACTIVE"),
        async || match stream_status(client, stream).await {
            StreamStatus::Active => Ok(()),
            other => Err(other),
        },
    )
    .await
}

/// The stream's ARN (for Lambda events' `eventSourceARN`).
pub async fn stream_arn(client: &Client, stream: &str) -> String {
    summary(client, stream).await.stream_arn
}

/// Deletes the stream (consumers included); does not wait for it to disappear.
pub async fn delete_stream(client: &Client, stream: &str) {
    client
        .delete_stream()
        .stream_name(stream)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap_or_else(|e| fail("DeleteStream", stream, e));
}

/// Puts one record with PutRecord.
pub async fn put_record(
    client: &Client,
    stream: &str,
    partition_key: &str,
    data: impl AsRef<[u8]>,
) -> PutResult {
    put_record_request(client, stream, partition_key, None, data.as_ref()).await
}

/// Puts one record with PutRecord and an explicit hash key, to aim at one shard.
pub async fn put_record_at_hash_key(
    client: &Client,
    stream: &str,
    partition_key: &str,
    explicit_hash_key: u128,
    data: impl AsRef<[u8]>,
) -> PutResult {
    put_record_request(
        client,
        stream,
        partition_key,
        Some(explicit_hash_key),
        data.as_ref(),
    )
    .await
}

async fn put_record_request(
    client: &Client,
    stream: &str,
    partition_key: &str,
    explicit_hash_key: Option<u128>,
    data: &[u8],
) -> PutResult {
    let output = client
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key)
        .set_explicit_hash_key(explicit_hash_key.map(|key| key.to_string()))
        .data(Blob::new(data))
        .send()
        .await
        .unwrap_or_else(|e| fail("PutRecord", stream, e));
    PutResult {
        shard_id: output.shard_id().to_owned(),
        sequence_number: output.sequence_number().to_owned(),
    }
}

/// Puts `(partition key, data)` records with PutRecords, 500 a call, and returns where
/// each landed, in input order.
///
/// # Panics
/// When any entry fails: the emulators do not throttle, so a failure is a test bug.
pub async fn put_records<K, D>(
    client: &Client,
    stream: &str,
    records: impl IntoIterator<Item = (K, D)>,
) -> Vec<PutResult>
where
    K: AsRef<str>,
    D: AsRef<[u8]>,
{
    let entries: Vec<PutRecordsRequestEntry> = records
        .into_iter()
        .map(|(key, data)| {
            PutRecordsRequestEntry::builder()
                .partition_key(key.as_ref())
                .data(Blob::new(data.as_ref()))
                .build()
                .expect("PutRecordsRequestEntry has its required fields")
        })
        .collect();
    let mut results = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(PUT_RECORDS_MAX_ENTRIES) {
        let output = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| fail("PutRecords", stream, e));
        assert_eq!(
            output.records().len(),
            chunk.len(),
            "PutRecords on {stream} answered a different number of entries"
        );
        for (index, entry) in output.records().iter().enumerate() {
            match (entry.shard_id(), entry.sequence_number()) {
                (Some(shard_id), Some(sequence_number)) if entry.error_code().is_none() => results
                    .push(PutResult {
                        shard_id: shard_id.to_owned(),
                        sequence_number: sequence_number.to_owned(),
                    }),
                _ => panic!(
                    "PutRecords on {stream}: entry {index} failed: {:?} {:?}",
                    entry.error_code(),
                    entry.error_message()
                ),
            }
        }
    }
    results
}

/// All shards of the stream (open and closed), following `NextToken`.
pub async fn list_shards(client: &Client, stream: &str) -> Vec<ShardInfo> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // ListShards takes either the stream name or a NextToken, never both.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let output = request
            .send()
            .await
            .unwrap_or_else(|e| fail("ListShards", stream, e));
        shards.extend(output.shards().iter().map(ShardInfo::from));
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return shards,
        }
    }
}

/// The shards whose parent is `parent` (children of a split, or of a merge of `parent`).
fn children_of<'a>(shards: &'a [ShardInfo], parent: &str) -> Vec<&'a ShardInfo> {
    shards
        .iter()
        .filter(|shard| {
            shard.parent_shard_id.as_deref() == Some(parent)
                || shard.adjacent_parent_shard_id.as_deref() == Some(parent)
        })
        .collect()
}

/// Splits `shard_id` at the middle of its hash range, waits until the stream is ACTIVE
/// and both children are listed, and returns the two children, lower range first.
pub async fn split_shard(client: &Client, stream: &str, shard_id: &str) -> [ShardInfo; 2] {
    let parent = list_shards(client, stream)
        .await
        .into_iter()
        .find(|shard| shard.shard_id == shard_id)
        .unwrap_or_else(|| panic!("stream {stream} has no shard {shard_id}"));
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard_id)
        .new_starting_hash_key(parent.middle_hash_key().to_string())
        .send()
        .await
        .unwrap_or_else(|e| fail("SplitShard", stream, e));
    wait_for_stream_active(client, stream).await;
    wait_until(
        &format!("the two children of {shard_id} in {stream}"),
        async || {
            let shards = list_shards(client, stream).await;
            let mut children: Vec<ShardInfo> = children_of(&shards, shard_id)
                .into_iter()
                .cloned()
                .collect();
            children.sort_by_key(|shard| shard.starting_hash_key);
            <[ShardInfo; 2]>::try_from(children).map_err(|_| shards)
        },
    )
    .await
}

/// Merges `shard_id` with `adjacent_shard_id` (adjacent hash ranges), waits until the
/// stream is ACTIVE and the child is listed, and returns the child (its ParentShardId is
/// `shard_id`, its AdjacentParentShardId `adjacent_shard_id`).
///
/// kinesis-mock only accepts the lower hash range as `shard_id`: the reverse order fails
/// with "Provided shards are not adjacent".
pub async fn merge_shards(
    client: &Client,
    stream: &str,
    shard_id: &str,
    adjacent_shard_id: &str,
) -> ShardInfo {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(shard_id)
        .adjacent_shard_to_merge(adjacent_shard_id)
        .send()
        .await
        .unwrap_or_else(|e| fail("MergeShards", stream, e));
    wait_for_stream_active(client, stream).await;
    wait_until(
        &format!("the merge child of {shard_id} and {adjacent_shard_id} in {stream}"),
        async || {
            let shards = list_shards(client, stream).await;
            let child = shards.iter().find(|shard| {
                shard.parent_shard_id.as_deref() == Some(shard_id)
                    && shard.adjacent_parent_shard_id.as_deref() == Some(adjacent_shard_id)
            });
            child.cloned().ok_or(shards)
        },
    )
    .await
}

/// Reads every record of a shard from TRIM_HORIZON.
///
/// Stops at a null `NextShardIterator` (closed shard, fully read: `shard_ended`), or at
/// the first empty read once `MillisBehindLatest` is 0 (open shard, caught up). Panics
/// after [`READ_SHARD_MAX_CALLS`] GetRecords calls.
pub async fn read_shard(client: &Client, stream: &str, shard_id: &str) -> ShardRead {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_or_else(|e| fail("GetShardIterator", stream, e))
        .shard_iterator()
        .map(str::to_owned);
    assert!(
        iterator.is_some(),
        "GetShardIterator on {stream}/{shard_id} returned no iterator"
    );
    let mut read = ShardRead {
        records: Vec::new(),
        shard_ended: false,
        child_shards: Vec::new(),
        get_records_calls: 0,
    };
    while let Some(current) = iterator {
        assert!(
            read.get_records_calls < READ_SHARD_MAX_CALLS,
            "read_shard of {stream}/{shard_id}: no end after {READ_SHARD_MAX_CALLS} GetRecords calls"
        );
        let output = client
            .get_records()
            .shard_iterator(current)
            .limit(10_000)
            .send()
            .await
            .unwrap_or_else(|e| fail("GetRecords", stream, e));
        read.get_records_calls += 1;
        read.records.extend(output.records().iter().map(|record| {
            ReadRecord {
                sequence_number: record.sequence_number().to_owned(),
                // `&str` in the aws-sdk-kinesis releases the lock file has, `Option<&str>` in
                // newer ones (1.130): both read.
                partition_key: Option::<&str>::from(record.partition_key())
                    .unwrap_or_default()
                    .to_owned(),
                data: record.data().as_ref().to_vec(),
                approximate_arrival_timestamp: record
                    .approximate_arrival_timestamp()
                    .map(|time| time.as_secs_f64()),
            }
        }));
        read.child_shards = output
            .child_shards()
            .iter()
            .map(|child| ChildShardInfo {
                shard_id: child.shard_id().to_owned(),
                parent_shards: child.parent_shards().to_vec(),
            })
            .collect();
        let caught_up =
            output.records().is_empty() && output.millis_behind_latest().unwrap_or(0) == 0;
        iterator = output.next_shard_iterator().map(str::to_owned);
        if iterator.is_none() {
            read.shard_ended = true;
        } else if caught_up {
            break;
        }
    }
    read
}

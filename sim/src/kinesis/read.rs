//! GetShardIterator and GetRecords. A shard iterator is an opaque token
//! holding the stream, the shard, where the next read starts (the first
//! record whose counter is at least `from`) and when it was issued: it
//! expires 5 minutes (tokio's clock) after that.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ops::{hash_range_json, input};
use super::stream::{ACCOUNT, Seq, Shard, Stream};
use super::wire::{self, ApiError, constraint};
use super::{Shared, SimError};

/// How long a shard iterator may be used.
pub(super) const ITERATOR_LIFETIME: Duration = Duration::from_secs(300);
/// Records a GetRecords call returns at most.
pub(super) const MAX_LIMIT: usize = 10_000;
/// Bytes of data (and partition keys) a GetRecords call returns at most
/// (beyond its first record).
pub(super) const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// What a shard iterator holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IteratorToken {
    pub stream: String,
    pub shard: String,
    /// The read starts at the first record whose counter is at least this.
    pub from: u64,
    /// When it was issued (nanoseconds of the service's clock).
    pub issued: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
}

/// Where an iterator starts.
#[derive(Debug)]
enum Start {
    TrimHorizon,
    Latest,
    At(String),
    After(String),
    AtTimestamp(SystemTime),
}

/// A parsed GetShardIterator.
#[derive(Debug)]
pub(super) struct GetShardIterator {
    pub stream: String,
    pub shard: String,
    start: Start,
}

pub(super) fn parse_get_shard_iterator(body: &Value) -> Result<GetShardIterator, ApiError> {
    let input: GetShardIteratorInput = input(body)?;
    let stream = wire::stream_name(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let shard = input
        .shard_id
        .ok_or_else(|| constraint("null", "shardId", "must not be null"))?;
    let kind = input
        .shard_iterator_type
        .ok_or_else(|| constraint("null", "shardIteratorType", "must not be null"))?;
    if let Some(seq) = &input.starting_sequence_number
        && !is_decimal(seq, 129)
    {
        let rule = "must satisfy regular expression pattern: 0|([1-9]\\d{0,128})";
        return Err(constraint(seq, "startingSequenceNumber", rule));
    }
    let sequence = || {
        input.starting_sequence_number.clone().ok_or_else(|| {
            ApiError::invalid(format!("StartingSequenceNumber is required for {kind}."))
        })
    };
    let start = match kind.as_str() {
        "TRIM_HORIZON" => Start::TrimHorizon,
        "LATEST" => Start::Latest,
        "AT_SEQUENCE_NUMBER" => Start::At(sequence()?),
        "AFTER_SEQUENCE_NUMBER" => Start::After(sequence()?),
        "AT_TIMESTAMP" => {
            let seconds = input
                .timestamp
                .ok_or_else(|| ApiError::invalid("Timestamp is required for AT_TIMESTAMP."))?;
            let time = wire::from_epoch_seconds(seconds)
                .ok_or_else(|| ApiError::invalid(format!("Invalid Timestamp {seconds}.")))?;
            Start::AtTimestamp(time)
        }
        other => {
            let rule = "must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]";
            return Err(constraint(other, "shardIteratorType", rule));
        }
    };
    Ok(GetShardIterator {
        stream,
        shard,
        start,
    })
}

/// Whether `text` is a decimal of at most `digits` digits without leading zeros.
fn is_decimal(text: &str, digits: usize) -> bool {
    let decimal =
        !text.is_empty() && text.len() <= digits && text.bytes().all(|b| b.is_ascii_digit());
    decimal && (text == "0" || !text.starts_with('0'))
}

/// Stream `name` and its shard `id`, or the error answer.
fn find<'a>(
    streams: &'a std::collections::BTreeMap<String, Stream>,
    name: &str,
    id: &str,
) -> Result<(&'a Stream, &'a Shard), ApiError> {
    let stream = streams
        .get(name)
        .ok_or_else(|| ApiError::stream_not_found(name))?;
    let shard = stream.shard(id).ok_or_else(|| {
        ApiError::from(SimError::ShardNotFound {
            stream: name.to_owned(),
            shard: id.to_owned(),
        })
    })?;
    Ok((stream, shard))
}

/// The counter where records put from now on into `shard` start.
fn latest(stream: &Stream, shard: &Shard) -> u64 {
    match shard.end_seq {
        None => stream.next_counter(),
        Some(end) => end.counter + 1,
    }
}

pub(super) fn get_shard_iterator(
    shared: &Shared,
    get: &GetShardIterator,
) -> Result<Value, ApiError> {
    let streams = shared.streams();
    let (stream, shard) = find(&streams, &get.stream, &get.shard)?;
    let from = match &get.start {
        Start::TrimHorizon => 0,
        Start::Latest => latest(stream, shard),
        Start::At(text) => position(stream, shard, text)?.counter,
        Start::After(text) => position(stream, shard, text)?.counter + 1,
        Start::AtTimestamp(time) => shard
            .records
            .iter()
            .find(|r| r.arrival >= *time)
            .map_or_else(|| latest(stream, shard), |r| r.seq.counter),
    };
    let token = IteratorToken {
        stream: stream.name.clone(),
        shard: shard.id.clone(),
        from,
        issued: shared.ticks(),
    };
    Ok(json!({"ShardIterator": wire::encode_token(&token)}))
}

/// Sequence number `text`, if it belongs to `shard`: handed out by it, from
/// its start up to its end (or the stream's latest number while it is open).
fn position(stream: &Stream, shard: &Shard, text: &str) -> Result<Seq, ApiError> {
    let seq = Seq::parse(text).filter(|seq| {
        let below_end = match shard.end_seq {
            Some(end) => *seq <= end,
            None => seq.counter < stream.next_counter(),
        };
        seq.shard == shard.index && *seq >= shard.start_seq && below_end
    });
    seq.ok_or_else(|| {
        ApiError::invalid(format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} under account {ACCOUNT} is invalid because it did not come from this stream.",
            shard.id, stream.name
        ))
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
}

/// A parsed GetRecords.
#[derive(Debug)]
pub(super) struct GetRecords {
    pub token: IteratorToken,
    limit: usize,
}

pub(super) fn parse_get_records(body: &Value) -> Result<GetRecords, ApiError> {
    let input: GetRecordsInput = input(body)?;
    let iterator = input
        .shard_iterator
        .ok_or_else(|| constraint("null", "shardIterator", "must not be null"))?;
    let limit = match input.limit {
        None => MAX_LIMIT,
        Some(n) if n < 1 => {
            return Err(constraint(
                &n.to_string(),
                "limit",
                "must have value greater than or equal to 1",
            ));
        }
        Some(n) if n > MAX_LIMIT as i64 => {
            let rule = format!("must have value less than or equal to {MAX_LIMIT}");
            return Err(constraint(&n.to_string(), "limit", &rule));
        }
        Some(n) => n as usize,
    };
    let token = wire::decode_token(&iterator)
        .ok_or_else(|| ApiError::invalid(format!("Invalid ShardIterator: {iterator}")))?;
    Ok(GetRecords { token, limit })
}

pub(super) fn get_records(shared: &Shared, get: &GetRecords) -> Result<Value, ApiError> {
    let now = shared.ticks();
    let token = &get.token;
    let age = Duration::from_nanos(now.saturating_sub(token.issued));
    if age > ITERATOR_LIFETIME {
        return Err(ApiError::client(
            "ExpiredIteratorException",
            format!(
                "Iterator expired. The iterator was created {} ms ago, further in the past than the tolerated delay of 300000 milliseconds.",
                age.as_millis()
            ),
        ));
    }
    let streams = shared.streams();
    let (stream, shard) = find(&streams, &token.stream, &token.shard)?;
    let first = shard.first_at(token.from);
    let end = read_end(shard, first, get.limit);
    let records = &shard.records[first..end];
    let caught_up = end == shard.records.len();
    let behind = match shard.records.get(end) {
        Some(next) if !caught_up => {
            let now = wire::epoch_millis(shardline::time::now());
            now.saturating_sub(wire::epoch_millis(next.arrival)).max(1)
        }
        _ => 0,
    };
    let mut answer = json!({
        "Records": records.iter().map(|r| json!({
            "SequenceNumber": r.seq.to_string(),
            "ApproximateArrivalTimestamp": wire::epoch_seconds(r.arrival),
            "Data": wire::encode_blob(&r.data),
            "PartitionKey": r.partition_key,
        })).collect::<Vec<_>>(),
        "MillisBehindLatest": behind,
    });
    if caught_up && !shard.is_open() {
        answer["ChildShards"] = children_json(stream, shard);
    } else {
        let next = IteratorToken {
            from: records.last().map_or(token.from, |r| r.seq.counter + 1),
            issued: now,
            ..token.clone()
        };
        answer["NextShardIterator"] = json!(wire::encode_token(&next));
    }
    Ok(answer)
}

/// Where a read from record `first` of `shard` ends: at most `limit` records
/// and [`MAX_RESPONSE_BYTES`] (at least one record, if there is one).
fn read_end(shard: &Shard, first: usize, limit: usize) -> usize {
    let mut bytes = 0;
    let mut end = first;
    for record in shard.records.iter().skip(first).take(limit) {
        let size = record.data.len() + record.partition_key.len();
        if end > first && bytes + size > MAX_RESPONSE_BYTES {
            break;
        }
        bytes += size;
        end += 1;
    }
    end
}

/// The `ChildShards` of a closed shard.
fn children_json(stream: &Stream, shard: &Shard) -> Value {
    let children = shard
        .children
        .iter()
        .filter_map(|&index| stream.shards.get(index as usize))
        .map(|child| {
            json!({
                "ShardId": child.id,
                "ParentShards": child.parents(),
                "HashKeyRange": hash_range_json(child),
            })
        });
    Value::Array(children.collect())
}

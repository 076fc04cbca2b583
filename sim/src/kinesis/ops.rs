//! The SDK operations: requests parsed into [`Request`]s, executed against
//! the streams. ListShards and DescribeStreamSummary are here; the reads are
//! in `read.rs`, the writes in `put.rs`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Shared;
use super::faults::Call;
use super::put::{self, PutRecords};
use super::read::{self, GetRecords, GetShardIterator};
use super::stream::{Shard, Stream, stream_arn};
use super::wire::{self, ApiError, constraint};

/// How long a ListShards `NextToken` may be used.
const NEXT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Shards a ListShards page holds without `MaxResults`.
const DEFAULT_MAX_RESULTS: usize = 1000;

/// A parsed, validated request.
#[derive(Debug)]
pub(super) enum Request {
    ListShards(ListShards),
    DescribeStreamSummary {
        stream: String,
    },
    GetShardIterator(GetShardIterator),
    GetRecords(GetRecords),
    /// PutRecords, or PutRecord (one entry, `single`).
    Put(PutRecords),
}

impl Request {
    /// Parses the request of `operation`.
    pub(super) fn parse(operation: &str, body: &Value) -> Result<Request, ApiError> {
        match operation {
            "ListShards" => parse_list_shards(body).map(Request::ListShards),
            "DescribeStreamSummary" => {
                let input: StreamInput = input(body)?;
                let stream = wire::stream_name(input.name.as_deref(), input.arn.as_deref())?;
                Ok(Request::DescribeStreamSummary { stream })
            }
            "GetShardIterator" => {
                read::parse_get_shard_iterator(body).map(Request::GetShardIterator)
            }
            "GetRecords" => read::parse_get_records(body).map(Request::GetRecords),
            "PutRecords" => put::parse_put_records(body).map(Request::Put),
            "PutRecord" => put::parse_put_record(body).map(Request::Put),
            other => Err(ApiError::client(
                "UnknownOperationException",
                format!("operation {other:?} is not simulated"),
            )),
        }
    }

    /// The request as the fault hook sees it.
    pub(super) fn call<'a>(&'a self, operation: &'a str, request: &'a Value) -> Call<'a> {
        let (stream, shard, entries) = match self {
            Request::ListShards(list) => (&list.stream, None, 0),
            Request::DescribeStreamSummary { stream } => (stream, None, 0),
            Request::GetShardIterator(get) => (&get.stream, Some(get.shard.as_str()), 0),
            Request::GetRecords(get) => (&get.token.stream, Some(get.token.shard.as_str()), 0),
            Request::Put(put) => (&put.stream, None, put.entries.len()),
        };
        Call {
            operation,
            stream: Some(stream),
            shard,
            entries,
            request,
        }
    }
}

/// Executes `request`; `call` is what the fault hook saw of it.
pub(super) fn execute(
    shared: &Shared,
    request: &Request,
    call: &Call<'_>,
) -> Result<Value, ApiError> {
    match request {
        Request::ListShards(list) => list_shards(shared, list),
        Request::DescribeStreamSummary { stream } => describe_stream_summary(shared, stream),
        Request::GetShardIterator(get) => read::get_shard_iterator(shared, get),
        Request::GetRecords(get) => read::get_records(shared, get),
        Request::Put(put) => put::execute(shared, call, put),
    }
}

/// The input of an operation from its JSON.
pub(super) fn input<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    T::deserialize(body)
        .map_err(|e| ApiError::serialization(format!("cannot read the request: {e}")))
}

/// A stream named by name or ARN.
#[derive(Debug, Deserialize)]
struct StreamInput {
    #[serde(rename = "StreamName")]
    name: Option<String>,
    #[serde(rename = "StreamARN")]
    arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsInput {
    #[serde(flatten)]
    stream: StreamInput,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    shard_filter: Option<ShardFilterInput>,
    stream_creation_timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardFilterInput {
    r#type: Option<String>,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

/// Which shards ListShards lists (`ShardFilter`). Without retention, the
/// trim horizon is the stream's creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Filter {
    /// Every shard (no filter, `FROM_TRIM_HORIZON`, `AFTER_SHARD_ID`).
    All,
    /// The shards open at the stream's creation (`AT_TRIM_HORIZON`).
    AtCreation,
    /// The open shards (`AT_LATEST`).
    Open,
    /// The shards open at a time, epoch milliseconds (`AT_TIMESTAMP`).
    At(u64),
    /// The shards open at a time or opened since (`FROM_TIMESTAMP`).
    From(u64),
}

impl Filter {
    fn keeps(self, shard: &Shard, stream: &Stream) -> bool {
        let time = |ms| std::time::UNIX_EPOCH + Duration::from_millis(ms);
        match self {
            Filter::All => true,
            Filter::AtCreation => shard.open_at(stream.created),
            Filter::Open => shard.is_open(),
            Filter::At(ms) => shard.open_at(time(ms)),
            Filter::From(ms) => shard.open_from(time(ms)),
        }
    }
}

/// What a ListShards `NextToken` holds.
#[derive(Debug, Serialize, Deserialize)]
struct ListToken {
    stream: String,
    after: String,
    filter: Filter,
    issued: u64,
}

/// A parsed ListShards.
#[derive(Debug)]
pub(super) struct ListShards {
    stream: String,
    /// List the shards after this id.
    after: Option<String>,
    filter: Filter,
    max: usize,
    /// When its `NextToken` was issued (nanoseconds of the service's clock).
    issued: Option<u64>,
}

fn parse_list_shards(body: &Value) -> Result<ListShards, ApiError> {
    let input: ListShardsInput = input(body)?;
    let max = match input.max_results {
        None => DEFAULT_MAX_RESULTS,
        Some(n @ 1..=10_000) => n as usize,
        Some(n) => {
            let rule = "must have value between 1 and 10000";
            return Err(constraint(&n.to_string(), "maxResults", rule));
        }
    };
    if let Some(token) = &input.next_token {
        let with_token = [
            input.stream.name.is_some() || input.stream.arn.is_some(),
            input.exclusive_start_shard_id.is_some(),
            input.shard_filter.is_some(),
            input.stream_creation_timestamp.is_some(),
        ];
        if with_token.contains(&true) {
            return Err(ApiError::invalid(
                "NextToken cannot be provided together with StreamName, StreamARN, ExclusiveStartShardId, ShardFilter or StreamCreationTimestamp.",
            ));
        }
        let token: ListToken = wire::decode_token(token)
            .ok_or_else(|| ApiError::invalid(format!("Invalid NextToken: {token}")))?;
        return Ok(ListShards {
            stream: token.stream,
            after: Some(token.after),
            filter: token.filter,
            max,
            issued: Some(token.issued),
        });
    }
    let stream = wire::stream_name(input.stream.name.as_deref(), input.stream.arn.as_deref())?;
    let mut after = input.exclusive_start_shard_id;
    let filter = match input.shard_filter {
        None => Filter::All,
        Some(filter) => parse_filter(filter, &mut after)?,
    };
    Ok(ListShards {
        stream,
        after,
        filter,
        max,
        issued: None,
    })
}

/// A `ShardFilter`; `AFTER_SHARD_ID` moves `after` on.
fn parse_filter(filter: ShardFilterInput, after: &mut Option<String>) -> Result<Filter, ApiError> {
    let kind = filter.r#type.unwrap_or_default();
    let time = |name: &str| {
        let seconds = filter
            .timestamp
            .ok_or_else(|| ApiError::invalid(format!("ShardFilter {name} needs a Timestamp.")))?;
        wire::from_epoch_seconds(seconds)
            .map(wire::epoch_millis)
            .ok_or_else(|| ApiError::invalid(format!("Invalid Timestamp {seconds}.")))
    };
    Ok(match kind.as_str() {
        "AFTER_SHARD_ID" => {
            let shard = filter
                .shard_id
                .ok_or_else(|| ApiError::invalid("ShardFilter AFTER_SHARD_ID needs a ShardId."))?;
            *after = after.take().max(Some(shard));
            Filter::All
        }
        "AT_TRIM_HORIZON" => Filter::AtCreation,
        "FROM_TRIM_HORIZON" => Filter::All,
        "AT_LATEST" => Filter::Open,
        "AT_TIMESTAMP" => Filter::At(time(&kind)?),
        "FROM_TIMESTAMP" => Filter::From(time(&kind)?),
        other => {
            let rule = "must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]";
            return Err(constraint(other, "shardFilter.type", rule));
        }
    })
}

fn list_shards(shared: &Shared, list: &ListShards) -> Result<Value, ApiError> {
    let now = shared.ticks();
    if let Some(issued) = list.issued
        && Duration::from_nanos(now.saturating_sub(issued)) > NEXT_TOKEN_LIFETIME
    {
        return Err(ApiError::client(
            "ExpiredNextTokenException",
            "The NextToken has expired: it is good for 300 seconds.",
        ));
    }
    let page_size = list.max.min(
        shared
            .list_page_size
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let streams = shared.streams();
    let stream = streams
        .get(&list.stream)
        .ok_or_else(|| ApiError::stream_not_found(&list.stream))?;
    let mut matching = stream
        .shards
        .iter()
        .filter(|s| {
            list.after
                .as_deref()
                .is_none_or(|after| s.id.as_str() > after)
        })
        .filter(|s| list.filter.keeps(s, stream));
    let page: Vec<&Shard> = matching.by_ref().take(page_size).collect();
    let mut answer = json!({"Shards": page.iter().map(|s| shard_json(s)).collect::<Vec<_>>()});
    if matching.next().is_some()
        && let Some(last) = page.last()
    {
        let token = ListToken {
            stream: stream.name.clone(),
            after: last.id.clone(),
            filter: list.filter,
            issued: now,
        };
        answer["NextToken"] = json!(wire::encode_token(&token));
    }
    Ok(answer)
}

/// A shard as ListShards writes it.
pub(super) fn shard_json(shard: &Shard) -> Value {
    let mut json = json!({
        "ShardId": shard.id,
        "HashKeyRange": hash_range_json(shard),
        "SequenceNumberRange": {"StartingSequenceNumber": shard.start_seq.to_string()},
    });
    if let Some(parent) = &shard.parent {
        json["ParentShardId"] = json!(parent);
    }
    if let Some(parent) = &shard.adjacent_parent {
        json["AdjacentParentShardId"] = json!(parent);
    }
    if let Some(end) = shard.end_seq {
        json["SequenceNumberRange"]["EndingSequenceNumber"] = json!(end.to_string());
    }
    json
}

/// A shard's `HashKeyRange`.
pub(super) fn hash_range_json(shard: &Shard) -> Value {
    json!({
        "StartingHashKey": shard.start_hash.to_string(),
        "EndingHashKey": shard.end_hash.to_string(),
    })
}

fn describe_stream_summary(shared: &Shared, name: &str) -> Result<Value, ApiError> {
    let streams = shared.streams();
    let stream = streams
        .get(name)
        .ok_or_else(|| ApiError::stream_not_found(name))?;
    let open = stream.shards.iter().filter(|s| s.is_open()).count();
    Ok(json!({"StreamDescriptionSummary": {
        "StreamName": stream.name,
        "StreamARN": stream_arn(&stream.name),
        "StreamStatus": "ACTIVE",
        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        "RetentionPeriodHours": 24,
        "StreamCreationTimestamp": wire::epoch_seconds(stream.created),
        "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
        "EncryptionType": "NONE",
        "OpenShardCount": open,
        "ConsumerCount": 0,
    }}))
}

#[cfg(test)]
mod tests;

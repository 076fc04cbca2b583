//! PutRecords and PutRecord: parsed and validated as Kinesis does (a request
//! breaking a limit is refused whole), routed, faulted entry by entry, written.
//!
//! - `ValidationException` (the API model's constraints, every violation
//!   listed): no records or more than 500, a partition key missing or not 1 to
//!   256 characters, data missing or over 1 MiB, an explicit hash key not
//!   matching `0|([1-9]\d{0,38})`.
//! - `InvalidArgumentException`: an explicit hash key above 2^128 - 1, a record
//!   over 1 MiB with its partition key, a request over 5 MiB (partition keys
//!   counted).
//! - `SerializationException`: data that is not base64.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::{Call, EntryCall, EntryFault, Failure};
use super::stream::Stream;
use super::wire::{self, ApiError, violation, violations};
use super::{PutResult, Shared, SimError, lock};

/// Entries a PutRecords request takes at most.
pub(super) const MAX_ENTRIES: usize = 500;
/// Bytes of a record, partition key included.
pub(super) const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Bytes of a PutRecords request, partition keys included.
pub(super) const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// Characters of a partition key.
const MAX_PARTITION_KEY_CHARS: usize = 256;

/// One entry as the JSON has it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryInput {
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput {
    records: Option<Vec<EntryInput>>,
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    #[serde(flatten)]
    entry: EntryInput,
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

/// A valid record to put.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    /// The hash key it is routed by.
    pub hash: u128,
    pub data: Bytes,
}

/// A valid PutRecords (or PutRecord, `single`) request.
#[derive(Debug, Clone)]
pub(super) struct PutRecords {
    pub stream: String,
    pub entries: Vec<Entry>,
    pub single: bool,
}

impl Entry {
    /// A record checked as PutRecord checks it.
    pub(super) fn new(
        key: &str,
        explicit_hash_key: Option<&str>,
        data: Bytes,
    ) -> Result<Entry, ApiError> {
        let input = EntryInput {
            data: None,
            partition_key: Some(key.to_owned()),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
        };
        let mut entries = check_entries(vec![(input, Some(data))], |_| String::new())?;
        entries.pop().ok_or_else(|| ApiError::invalid("no record"))
    }

    /// Its size as Kinesis counts it: data plus partition key.
    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    /// Appends it to `stream`.
    pub(super) fn put_into(
        &self,
        stream: &mut Stream,
        arrival: SystemTime,
    ) -> Result<PutResult, SimError> {
        let key = &self.partition_key;
        let hash_key = self.explicit_hash_key.as_deref();
        stream.put(self.hash, key, hash_key, self.data.clone(), arrival)
    }
}

/// Parses and validates a PutRecords request.
pub(super) fn parse_put_records(body: &Value) -> Result<PutRecords, ApiError> {
    let input: PutRecordsInput = super::ops::input(body)?;
    let stream = wire::stream_name(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let Some(records) = input.records else {
        return Err(violations(&[violation(
            "null",
            "records",
            "must not be null",
        )]));
    };
    let count = records.len();
    let mut size_rule = Vec::new();
    if count == 0 {
        size_rule.push(violation(
            "[]",
            "records",
            "must have length greater than or equal to 1",
        ));
    } else if count > MAX_ENTRIES {
        let rule = format!("must have length less than or equal to {MAX_ENTRIES}");
        size_rule.push(violation(&format!("[{count} records]"), "records", &rule));
    }
    if !size_rule.is_empty() {
        return Err(violations(&size_rule));
    }
    let decoded = records
        .into_iter()
        .enumerate()
        .map(|(i, input)| decode(input, &format!("records.{}.member.data", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let entries = check_entries(decoded, |i| format!("records.{}.member.", i + 1))?;
    let total: usize = entries.iter().map(Entry::size).sum();
    if total > MAX_REQUEST_BYTES {
        return Err(ApiError::invalid(format!(
            "Records size exceeds 5 MB limit: the request holds {total} bytes with its partition keys, over {MAX_REQUEST_BYTES}."
        )));
    }
    Ok(PutRecords {
        stream,
        entries,
        single: false,
    })
}

/// Parses and validates a PutRecord request.
pub(super) fn parse_put_record(body: &Value) -> Result<PutRecords, ApiError> {
    let input: PutRecordInput = super::ops::input(body)?;
    let stream = wire::stream_name(input.stream_name.as_deref(), input.stream_arn.as_deref())?;
    let decoded = decode(input.entry, "data")?;
    Ok(PutRecords {
        stream,
        entries: check_entries(vec![decoded], |_| String::new())?,
        single: true,
    })
}

/// The entry and its data decoded from base64.
fn decode(input: EntryInput, at: &str) -> Result<(EntryInput, Option<Bytes>), ApiError> {
    let data = match &input.data {
        Some(text) => Some(Bytes::from(wire::decode_blob(text, at)?)),
        None => None,
    };
    Ok((input, data))
}

/// Checks entries: every constraint violation first (`ValidationException`),
/// then what the service refuses (`InvalidArgumentException`). `at(i)`
/// prefixes the field names of entry `i` in messages.
fn check_entries(
    inputs: Vec<(EntryInput, Option<Bytes>)>,
    at: impl Fn(usize) -> String,
) -> Result<Vec<Entry>, ApiError> {
    let mut found = Vec::new();
    for (i, (input, data)) in inputs.iter().enumerate() {
        constraints(input, data.as_ref(), &at(i), &mut found);
    }
    if !found.is_empty() {
        return Err(violations(&found));
    }
    let mut entries = Vec::with_capacity(inputs.len());
    for (input, data) in inputs {
        let partition_key = input.partition_key.unwrap_or_default();
        let hash = match &input.explicit_hash_key {
            Some(key) => kpl::parse_explicit_hash_key(key).map_err(|_| {
                ApiError::invalid(format!("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {key}"))
            })?,
            None => kpl::partition_key_hash(&partition_key),
        };
        let entry = Entry {
            partition_key,
            explicit_hash_key: input.explicit_hash_key,
            hash,
            data: data.unwrap_or_default(),
        };
        if entry.size() > MAX_RECORD_BYTES {
            return Err(ApiError::invalid(format!(
                "Record size exceeds 1 MiB: {} bytes with its partition key of {} bytes, over {MAX_RECORD_BYTES}.",
                entry.size(),
                entry.partition_key.len()
            )));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The model constraints one entry breaks, into `found`.
fn constraints(input: &EntryInput, data: Option<&Bytes>, at: &str, found: &mut Vec<String>) {
    let field = |name: &str| format!("{at}{name}");
    match &input.partition_key {
        None => found.push(violation(
            "null",
            &field("partitionKey"),
            "must not be null",
        )),
        Some(key) => {
            let chars = key.chars().count();
            let shown: String = key.chars().take(300).collect();
            if chars == 0 {
                let rule = "must have length greater than or equal to 1";
                found.push(violation(&shown, &field("partitionKey"), rule));
            } else if chars > MAX_PARTITION_KEY_CHARS {
                let rule =
                    format!("must have length less than or equal to {MAX_PARTITION_KEY_CHARS}");
                found.push(violation(&shown, &field("partitionKey"), &rule));
            }
        }
    }
    let Some(data) = data else {
        found.push(violation("null", &field("data"), "must not be null"));
        return;
    };
    if data.len() > MAX_RECORD_BYTES {
        let rule = format!("must have length less than or equal to {MAX_RECORD_BYTES}");
        let shown = format!(
            "java.nio.HeapByteBuffer[pos=0 lim={} cap={}]",
            data.len(),
            data.len()
        );
        found.push(violation(&shown, &field("data"), &rule));
    }
    if let Some(key) = &input.explicit_hash_key
        && !matches_hash_key_pattern(key)
    {
        let rule = "must satisfy regular expression pattern: 0|([1-9]\\d{0,38})";
        found.push(violation(key, &field("explicitHashKey"), rule));
    }
}

/// Whether `key` matches `0|([1-9]\d{0,38})`.
fn matches_hash_key_pattern(key: &str) -> bool {
    let digits = !key.is_empty() && key.len() <= 39 && key.bytes().all(|b| b.is_ascii_digit());
    digits && (key == "0" || !key.starts_with('0'))
}

/// Writes the entries the fault hook lets through; answers per entry (or, for
/// PutRecord, as a whole).
pub(super) fn execute(
    shared: &Shared,
    call: &Call<'_>,
    put: &PutRecords,
) -> Result<Value, ApiError> {
    let shards = shared.with_stream(&put.stream, |stream| {
        let route = |e: &Entry| {
            stream
                .route(e.hash)
                .map(|s| s.id.clone())
                .unwrap_or_default()
        };
        Ok(put.entries.iter().map(route).collect::<Vec<_>>())
    })?;
    let faults = entry_faults(shared, call, put, &shards);
    if put.single
        && let Some(Some(fault)) = faults.first()
    {
        lock(&shared.stats).entries_failed += 1;
        let failure = match fault {
            EntryFault::Throughput => Failure::Throughput,
            EntryFault::Internal => Failure::Internal,
        };
        return Err(failure.error(call));
    }
    let arrival = wire::to_millis(shardline::time::now());
    let results = shared.with_stream(&put.stream, |stream| {
        let mut results = Vec::with_capacity(put.entries.len());
        for ((entry, fault), shard) in put.entries.iter().zip(&faults).zip(&shards) {
            results.push(match fault {
                Some(fault) => Err(fault.code_and_message(&put.stream, shard)),
                None => Ok(entry.put_into(stream, arrival)?),
            });
        }
        Ok(results)
    })?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut stats = lock(&shared.stats);
    stats.entries_put += (results.len() - failed) as u64;
    stats.entries_failed += failed as u64;
    drop(stats);
    if put.single {
        return match results.into_iter().next() {
            Some(Ok(put)) => {
                Ok(json!({"ShardId": put.shard_id, "SequenceNumber": put.sequence_number}))
            }
            _ => Err(ApiError::invalid("no record")),
        };
    }
    let records: Vec<Value> = results
        .into_iter()
        .map(|result| match result {
            Ok(put) => json!({"SequenceNumber": put.sequence_number, "ShardId": put.shard_id}),
            Err((code, message)) => json!({"ErrorCode": code, "ErrorMessage": message}),
        })
        .collect();
    Ok(json!({"FailedRecordCount": failed, "Records": records}))
}

/// What the fault hook says of each entry, in order.
fn entry_faults(
    shared: &Shared,
    call: &Call<'_>,
    put: &PutRecords,
    shards: &[String],
) -> Vec<Option<EntryFault>> {
    let mut hook = lock(&shared.hook);
    put.entries
        .iter()
        .zip(shards)
        .enumerate()
        .map(|(index, (entry, shard))| {
            let view = EntryCall {
                index,
                partition_key: &entry.partition_key,
                explicit_hash_key: entry.explicit_hash_key.as_deref(),
                data: &entry.data,
                shard,
            };
            hook.on_entry(call, &view)
        })
        .collect()
}

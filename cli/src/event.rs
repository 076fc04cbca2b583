//! `shardline-cli event`: a Lambda Kinesis event made of the user's own
//! payloads, for `invoke` (`cargo run -- invoke FILE`) and for tests.
//!
//! ```text
//! printf '{"id":"a","amount":1}\n{"id":"b","amount":2}\n' \
//!   | shardline-cli event --key-field id > events/mine.json
//! ```
//!
//! Each line of the input is one record (or each file, with `--whole-files`).
//! Sequence numbers grow with the time the event is made, so a newer event is
//! never skipped as already checkpointed; `--first-sequence` fixes them.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::SystemTime;

use kpl::{Aggregator, UserRecord};
use serde_json::Value;
use shardline_event::sample::{
    SAMPLE_SHARD, SAMPLE_STREAM_ARN, SampleRecord, SampleWindow, epoch_seconds, event_json,
    sequence_number,
};

/// `shardline-cli event`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EventArgs {
    /// Files of payloads, one per line (`-` or none: standard input).
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Each file is one payload, bytes as they are (binary too).
    #[arg(long)]
    pub whole_files: bool,
    /// The partition key of every record.
    #[arg(
        long,
        value_name = "KEY",
        conflicts_with = "key_field",
        default_value = "sample"
    )]
    pub partition_key: String,
    /// Each record's partition key is this top-level field of its JSON payload
    /// (a string or a number).
    #[arg(long, value_name = "FIELD")]
    pub key_field: Option<String>,
    /// The shard the records come from.
    #[arg(long, value_name = "SHARD_ID", default_value = SAMPLE_SHARD)]
    pub shard: String,
    /// The stream the records come from.
    #[arg(long, value_name = "ARN", default_value = SAMPLE_STREAM_ARN)]
    pub stream_arn: String,
    /// Sequence numbers from this one up (a 56-digit number grows with it);
    /// by default they grow with the current time.
    #[arg(long, value_name = "N")]
    pub first_sequence: Option<u64>,
    /// Pack the payloads into KPL aggregates of up to this many user records
    /// each, as the Kinesis Producer Library puts them.
    #[arg(long, value_name = "RECORDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub aggregate: Option<u32>,
    /// A tumbling-window event: the window's start (ISO 8601, as Lambda writes it).
    #[arg(long, value_name = "TIME", requires = "window_end")]
    pub window_start: Option<String>,
    /// The window's end.
    #[arg(long, value_name = "TIME", requires = "window_start")]
    pub window_end: Option<String>,
    /// The state carried from the window's previous invocation (JSON).
    #[arg(long, value_name = "JSON", requires = "window_start")]
    pub window_state: Option<String>,
    /// The window's final invocation (`isFinalInvokeForWindow`).
    #[arg(long, requires = "window_start")]
    pub final_invoke: bool,
}

/// Why no event was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventError {
    /// An input could not be read.
    #[error("{input}: {source}")]
    Read {
        /// The file, or `standard input`.
        input: String,
        /// The error.
        source: std::io::Error,
    },
    /// A payload without the partition key field asked for.
    #[error("{input} line {line}: {why}")]
    Key {
        /// The file.
        input: String,
        /// The line (1-based; 1 for a whole file).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// No payload at all.
    #[error("no payloads: give files of JSON lines, or lines on standard input")]
    Empty,
    /// A user record the KPL would refuse.
    #[error("{input} line {line}: cannot aggregate: {source}")]
    Aggregate {
        /// The file.
        input: String,
        /// The line.
        line: usize,
        /// The error.
        source: kpl::AggregateError,
    },
    /// `--window-state` is not JSON.
    #[error("--window-state: not JSON: {0}")]
    WindowState(serde_json::Error),
}

/// One payload and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Payload {
    input: String,
    line: usize,
    data: Vec<u8>,
}

fn read_input(path: &PathBuf) -> Result<(String, Vec<u8>), EventError> {
    let stdin = path.as_os_str() == "-";
    let input = if stdin {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let mut bytes = Vec::new();
    let read = if stdin {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(path).map(|b| bytes = b)
    };
    read.map_err(|source| EventError::Read {
        input: input.clone(),
        source,
    })?;
    Ok((input, bytes))
}

fn payloads(args: &EventArgs) -> Result<Vec<Payload>, EventError> {
    let stdin = [PathBuf::from("-")];
    let inputs = if args.inputs.is_empty() {
        &stdin[..]
    } else {
        &args.inputs[..]
    };
    let mut payloads = Vec::new();
    for path in inputs {
        let (input, bytes) = read_input(path)?;
        if args.whole_files {
            payloads.push(Payload {
                input,
                line: 1,
                data: bytes,
            });
            continue;
        }
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_bytes = line.strip_suffix(b"\r").unwrap_or(line);
            if line_bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            payloads.push(Payload {
                input: input.clone(),
                line: i + 1,
                data: line_bytes.to_vec(),
            });
        }
    }
    if payloads.is_empty() {
        return Err(EventError::Empty);
    }
    Ok(payloads)
}

/// The partition key of `payload`.
fn partition_key(args: &EventArgs, payload: &Payload) -> Result<String, EventError> {
    let Some(field) = &args.key_field else {
        return Ok(args.partition_key.clone());
    };
    let bad = |why: String| EventError::Key {
        input: payload.input.clone(),
        line: payload.line,
        why,
    };
    let value: Value = serde_json::from_slice(&payload.data)
        .map_err(|e| bad(format!("--key-field {field}: the payload is not JSON: {e}")))?;
    let key = match value.get(field) {
        Some(Value::String(key)) => key.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(bad(format!(
                "field {field:?} is neither a string nor a number"
            )));
        }
        None => return Err(bad(format!("no field {field:?}"))),
    };
    if key.is_empty() || key.chars().count() > 256 {
        return Err(bad(format!(
            "partition key {key:?}: Kinesis takes 1 to 256 characters"
        )));
    }
    Ok(key)
}

/// The sequence numbers' source: fixed from a number, or from the time.
fn sequence(args: &EventArgs, now: SystemTime) -> impl Fn(usize) -> String {
    let first = args.first_sequence;
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    move |i| match first {
        Some(first) => sequence_number(first.saturating_add(i as u64)),
        // 56 digits, as Kinesis writes them, growing with the time.
        None => format!("49{nanos:032}{i:022}"),
    }
}

/// The event's records, KPL aggregates when asked.
fn records(args: &EventArgs, now: SystemTime) -> Result<Vec<SampleRecord>, EventError> {
    let payloads = payloads(args)?;
    let sequence = sequence(args, now);
    let arrival = Some(epoch_seconds(now));
    let record = |i: usize, key: &str, data: &[u8]| {
        SampleRecord::new(sequence(i), data)
            .key(key)
            .shard(&args.stream_arn, &args.shard)
            .arrived(arrival)
    };
    let Some(per_aggregate) = args.aggregate else {
        return payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| Ok(record(i, &partition_key(args, payload)?, &payload.data)))
            .collect();
    };
    let mut out = Vec::new();
    for chunk in payloads.chunks(per_aggregate as usize) {
        let mut aggregator = Aggregator::new();
        let mut aggregates = Vec::new();
        for payload in chunk {
            let user = UserRecord::new(partition_key(args, payload)?, payload.data.clone());
            let full = aggregator
                .add(user)
                .map_err(|source| EventError::Aggregate {
                    input: payload.input.clone(),
                    line: payload.line,
                    source,
                })?;
            aggregates.extend(full);
        }
        aggregates.extend(aggregator.finish());
        for aggregate in aggregates {
            out.push(record(out.len(), &aggregate.partition_key, &aggregate.data));
        }
    }
    Ok(out)
}

/// The event, as JSON.
///
/// # Errors
/// See [`EventError`].
pub(crate) fn make(args: &EventArgs, now: SystemTime) -> Result<Value, EventError> {
    let records = records(args, now)?;
    let Some(start) = &args.window_start else {
        return Ok(event_json(&records));
    };
    let mut window = SampleWindow::new(start, args.window_end.as_deref().unwrap_or(start));
    window.shard_id.clone_from(&args.shard);
    window.stream_arn.clone_from(&args.stream_arn);
    if let Some(state) = &args.window_state {
        window = window.state(serde_json::from_str(state).map_err(EventError::WindowState)?);
    }
    if args.final_invoke {
        window = window.closing(false);
    }
    let bytes = window.event_bytes(&records);
    serde_json::from_slice(&bytes).map_err(EventError::WindowState)
}

#[cfg(test)]
mod tests;

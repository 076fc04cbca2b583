//! Lambda Kinesis events built by hand: the one builder behind the tests, the
//! benchmarks, the sample files and the functions' `event` commands.
//!
//! ```
//! use shardline_event::sample::{SampleRecord, event_bytes, sequence_number};
//! let event = event_bytes(&[
//!     SampleRecord::new(sequence_number(1), br#"{"id":1}"#).key("user-1"),
//!     SampleRecord::raw(sequence_number(2), "%%% not base64"),
//! ]);
//! let decoded = shardline_event::decode::decode_event(&event).unwrap();
//! assert_eq!(decoded.items.len(), 2);
//! assert_eq!(decoded.items[0].record().partition_key, "user-1");
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

/// The stream of sample records unless set otherwise.
pub const SAMPLE_STREAM_ARN: &str =
    "arn:aws:kinesis:us-east-1:123456789012:stream/shardline-sample";
/// The shard of sample records unless set otherwise.
pub const SAMPLE_SHARD: &str = "shardId-000000000000";

/// A 56-digit sequence number (as Kinesis makes them) that grows with `n`.
pub fn sequence_number(n: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{n:010}")
}

/// The epoch seconds of `time`, as `approximateArrivalTimestamp` carries them.
pub fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One record of a Lambda Kinesis event.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    /// `eventSourceARN`.
    pub stream_arn: String,
    /// The shard, in `eventID`.
    pub shard_id: String,
    /// `kinesis.sequenceNumber`.
    pub sequence_number: String,
    /// `kinesis.partitionKey`.
    pub partition_key: String,
    /// `kinesis.data` exactly as it goes into the JSON (base64 of the payload,
    /// or anything for a record that must fail to decode).
    pub data_field: String,
    /// `kinesis.approximateArrivalTimestamp` in epoch seconds; `None` leaves it out.
    pub arrival: Option<f64>,
}

impl SampleRecord {
    /// A record of `payload` (base64-encoded into the event) with partition key
    /// `pk`, arriving now, on the sample stream and shard.
    pub fn new(sequence_number: impl Into<String>, payload: impl AsRef<[u8]>) -> Self {
        SampleRecord {
            stream_arn: SAMPLE_STREAM_ARN.into(),
            shard_id: SAMPLE_SHARD.into(),
            sequence_number: sequence_number.into(),
            partition_key: "pk".into(),
            data_field: base64::engine::general_purpose::STANDARD.encode(payload),
            arrival: Some(epoch_seconds(crate::time::now())),
        }
    }

    /// A record whose `data` field is `field` as is (not base64-encoded here).
    pub fn raw(sequence_number: impl Into<String>, field: &str) -> Self {
        SampleRecord {
            data_field: field.to_owned(),
            ..SampleRecord::new(sequence_number, b"")
        }
    }

    /// With partition key `partition_key`.
    pub fn key(mut self, partition_key: &str) -> Self {
        self.partition_key = partition_key.to_owned();
        self
    }

    /// On `shard_id` of `stream_arn`.
    pub fn shard(mut self, stream_arn: &str, shard_id: &str) -> Self {
        self.stream_arn = stream_arn.to_owned();
        self.shard_id = shard_id.to_owned();
        self
    }

    /// Arrived at `arrival` (epoch seconds), or without an arrival time.
    pub fn arrived(mut self, arrival: Option<f64>) -> Self {
        self.arrival = arrival;
        self
    }

    /// The record as Lambda sends it.
    pub fn to_json(&self) -> Value {
        let mut kinesis = json!({
            "kinesisSchemaVersion": "1.0",
            "partitionKey": self.partition_key,
            "sequenceNumber": self.sequence_number,
            "data": self.data_field,
        });
        if let Some(arrival) = self.arrival {
            kinesis["approximateArrivalTimestamp"] = arrival.into();
        }
        json!({
            "kinesis": kinesis,
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{}:{}", self.shard_id, self.sequence_number),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/shardline-sample",
            "awsRegion": "us-east-1",
            "eventSourceARN": self.stream_arn,
        })
    }
}

/// The event holding `records`, as JSON.
pub fn event_json(records: &[SampleRecord]) -> Value {
    json!({ "Records": records.iter().map(SampleRecord::to_json).collect::<Vec<_>>() })
}

/// The event holding `records`, as JSON bytes.
pub fn event_bytes(records: &[SampleRecord]) -> Vec<u8> {
    event_json(records).to_string().into_bytes()
}

/// The window fields of a tumbling-window event
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleWindow {
    /// `window.start`.
    pub start: String,
    /// `window.end`.
    pub end: String,
    /// `state`; `None` leaves it out.
    pub state: Option<Value>,
    /// `shardId` (and `eventSourceARN`): the shard whose window it is.
    pub shard_id: String,
    /// `eventSourceARN`.
    pub stream_arn: String,
    /// `isFinalInvokeForWindow`.
    pub is_final: bool,
    /// `isWindowTerminatedEarly`.
    pub terminated_early: bool,
}

impl SampleWindow {
    /// The window from `start` to `end` of the sample shard, a middle
    /// invocation without state.
    pub fn new(start: &str, end: &str) -> Self {
        SampleWindow {
            start: start.to_owned(),
            end: end.to_owned(),
            state: None,
            shard_id: SAMPLE_SHARD.to_owned(),
            stream_arn: SAMPLE_STREAM_ARN.to_owned(),
            is_final: false,
            terminated_early: false,
        }
    }

    /// With `state`.
    pub fn state(mut self, state: Value) -> Self {
        self.state = Some(state);
        self
    }

    /// The window's final invocation (`early`: ended early, its state too large).
    pub fn closing(mut self, early: bool) -> Self {
        self.is_final = true;
        self.terminated_early = early;
        self
    }

    /// The event of `records` in this window, as JSON bytes.
    ///
    /// ```
    /// use shardline_event::sample::{SampleRecord, SampleWindow};
    /// let event = SampleWindow::new("2020-12-09T07:04:00Z", "2020-12-09T07:06:00Z")
    ///     .state(serde_json::json!({"1": 282}))
    ///     .event_bytes(&[SampleRecord::new("1", b"x")]);
    /// let json: serde_json::Value = serde_json::from_slice(&event).unwrap();
    /// assert_eq!(json["window"]["start"], "2020-12-09T07:04:00Z");
    /// assert_eq!(json["state"]["1"], 282);
    /// assert_eq!(json["Records"].as_array().unwrap().len(), 1);
    /// ```
    pub fn event_bytes(&self, records: &[SampleRecord]) -> Vec<u8> {
        let mut event = event_json(records);
        event["window"] = json!({ "start": self.start, "end": self.end });
        if let Some(state) = &self.state {
            event["state"] = state.clone();
        }
        event["shardId"] = self.shard_id.clone().into();
        event["eventSourceARN"] = self.stream_arn.clone().into();
        event["isFinalInvokeForWindow"] = self.is_final.into();
        event["isWindowTerminatedEarly"] = self.terminated_early.into();
        event.to_string().into_bytes()
    }
}

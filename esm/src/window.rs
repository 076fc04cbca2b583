//! Tumbling windows, as Lambda runs them for a mapping with
//! `TumblingWindowInSeconds` (developer guide: services-kinesis-windows):
//!
//! - a record belongs to the window its arrival time
//!   (`approximateArrivalTimestamp`) falls in; a batch holds records of one
//!   window only;
//! - each invocation carries the window (`start`, `end`), the `state` the last
//!   successful answer returned (`{}` at the window's first), `shardId`,
//!   `eventSourceARN`, `isFinalInvokeForWindow` and `isWindowTerminatedEarly`;
//! - an answer without a `state` object is a failed invocation;
//! - once the window is over (a record of a later window comes, or the clock
//!   passes its end with nothing left of it), a final invocation without
//!   records (`isFinalInvokeForWindow`) hands the function the last state,
//!   and is retried until it succeeds;
//! - a state over 1 MB ends the window early: a final invocation with
//!   `isWindowTerminatedEarly`, then the same window goes on with `{}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use bytes::Bytes;
use serde_json::{Map, Value};
use shardline_event::sample::SampleWindow;

use crate::record::StreamRecord;

/// The most state Lambda carries per shard.
pub const STATE_MAX_BYTES: usize = 1024 * 1024;

/// The window a slot is in, and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenWindow {
    /// Its start, epoch seconds.
    pub start: u64,
    /// Its length in seconds.
    pub length: u64,
    /// The state the last successful answer returned.
    pub state: Value,
}

impl OpenWindow {
    /// The window of `length` seconds that holds `record`, with a fresh state.
    pub fn of(record: &StreamRecord, length: u64) -> Self {
        OpenWindow {
            start: start_of(record, length),
            length,
            state: Value::Object(Map::new()),
        }
    }

    /// When it ends.
    pub fn end(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.start + self.length)
    }

    /// The event of `records` in this window (`is_final`, `early`: the flags).
    pub fn event(
        &self,
        stream_arn: &str,
        shard_id: &str,
        records: &[StreamRecord],
        is_final: bool,
        early: bool,
    ) -> Bytes {
        let window = SampleWindow {
            start: rfc3339_seconds(self.start),
            end: rfc3339_seconds(self.start + self.length),
            state: Some(self.state.clone()),
            shard_id: shard_id.to_owned(),
            stream_arn: stream_arn.to_owned(),
            is_final,
            terminated_early: early,
        };
        let samples: Vec<_> = records
            .iter()
            .map(|r| r.sample(stream_arn, shard_id))
            .collect();
        Bytes::from(window.event_bytes(&samples))
    }
}

/// The start (epoch seconds) of the window of `length` seconds that holds `record`.
pub fn start_of(record: &StreamRecord, length: u64) -> u64 {
    let arrival = if record.arrival.is_finite() && record.arrival > 0.0 {
        record.arrival as u64
    } else {
        0
    };
    arrival / length.max(1) * length.max(1)
}

/// The `state` object of an answer, and its size in bytes of JSON; `None`
/// when the answer has none (a failed invocation).
pub fn answered_state(body: &[u8]) -> Option<(Value, usize)> {
    let response: Value = serde_json::from_slice(body).ok()?;
    let state = response.get("state").filter(|s| s.is_object())?.clone();
    let size = state.to_string().len();
    Some((state, size))
}

/// `2020-12-09T07:04:00Z`, as Lambda writes a window's bounds.
fn rfc3339_seconds(seconds: u64) -> String {
    let at = DateTime::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX));
    at.fmt(Format::DateTime).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(arrival: f64) -> StreamRecord {
        StreamRecord {
            sequence: "1".parse().unwrap(),
            partition_key: "k".into(),
            data: Bytes::from_static(b"x"),
            arrival,
        }
    }

    #[test]
    fn records_fall_in_the_window_of_their_arrival() {
        let open = OpenWindow::of(&record(1_607_497_475.5), 120);
        assert_eq!(open.start, 1_607_497_440);
        let event: Value = serde_json::from_slice(&open.event(
            "arn:aws:kinesis:us-east-1:1:stream/s",
            "shardId-000000000006",
            &[record(1_607_497_475.5)],
            false,
            false,
        ))
        .unwrap();
        assert_eq!(event["window"]["start"], "2020-12-09T07:04:00Z");
        assert_eq!(event["window"]["end"], "2020-12-09T07:06:00Z");
        assert_eq!(event["state"], serde_json::json!({}));
        assert_eq!(event["shardId"], "shardId-000000000006");
        assert_eq!(event["isFinalInvokeForWindow"], false);
        assert_eq!(event["Records"].as_array().unwrap().len(), 1);
        assert_eq!(start_of(&record(f64::NAN), 60), 0);
    }

    #[test]
    fn an_answer_without_a_state_object_has_none() {
        assert!(answered_state(br#"{"batchItemFailures":[]}"#).is_none());
        assert!(answered_state(br#"{"state":5}"#).is_none());
        assert!(answered_state(b"null").is_none());
        let (state, size) =
            answered_state(br#"{"state":{"1":282},"batchItemFailures":[]}"#).unwrap();
        assert_eq!(state, serde_json::json!({"1": 282}));
        assert_eq!(size, r#"{"1":282}"#.len());
    }
}

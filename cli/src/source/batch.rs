//! Batches: the records of a stream as the mapping holds them, the Lambda event
//! made of them, and what the function's answer asks for.

use bytes::Bytes;
use serde_json::Value;
use shardline::SequenceNumber;
use shardline::sample::{SampleRecord, event_bytes};

/// The most bytes of one invocation's payload: 6 MB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// One Kinesis record read from a shard.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// Its partition key.
    pub partition_key: String,
    /// The payload.
    pub data: Bytes,
    /// `approximateArrivalTimestamp`, epoch seconds.
    pub arrival: f64,
}

impl StreamRecord {
    pub(super) fn sample(&self, stream_arn: &str, shard_id: &str) -> SampleRecord {
        SampleRecord::new(self.sequence.to_string(), &self.data)
            .key(&self.partition_key)
            .shard(stream_arn, shard_id)
            .arrived(Some(self.arrival))
    }

    /// Its size in the event's JSON (with the comma that separates it).
    pub fn event_size(&self, stream_arn: &str, shard_id: &str) -> usize {
        self.sample(stream_arn, shard_id)
            .to_json()
            .to_string()
            .len()
            + 1
    }
}

/// The Lambda event of `records`, from `shard_id` of `stream_arn`.
pub fn event(stream_arn: &str, shard_id: &str, records: &[StreamRecord]) -> Bytes {
    let samples: Vec<SampleRecord> = records
        .iter()
        .map(|r| r.sample(stream_arn, shard_id))
        .collect();
    Bytes::from(event_bytes(&samples))
}

/// What an answer asks of the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is done.
    Done,
    /// The records before this index are done; retry from it.
    RetryFrom(usize),
    /// The whole batch failed, for this reason.
    Failed(String),
}

/// Reads a response body for `batch`.
///
/// From the developer guide (services-kinesis-batchfailurereporting): without
/// `ReportBatchItemFailures` the body is ignored and the batch is a success; an
/// empty or null `batchItemFailures` (or an empty or null response) is a
/// complete success; an empty or null `itemIdentifier`, or one under a bad key
/// name, fails the whole batch; otherwise Lambda retries from the lowest
/// sequence number listed. An identifier that is not a record of the batch
/// fails the whole batch too (Lambda has no record to restart from).
pub fn verdict(body: &[u8], batch: &[StreamRecord], report_failures: bool) -> Verdict {
    if !report_failures {
        return Verdict::Done;
    }
    let Ok(response) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Done;
    };
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::Done,
        Some(Value::Array(items)) if items.is_empty() => return Verdict::Done,
        Some(Value::Array(items)) => items,
        Some(other) => return Verdict::Failed(format!("batchItemFailures is not a list: {other}")),
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let identifier = match item.get("itemIdentifier") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => {
                return Verdict::Failed(format!(
                    "a batch item failure without an itemIdentifier: {item}"
                ));
            }
        };
        let Some(index) = batch.iter().position(|r| r.sequence.as_str() == identifier) else {
            return Verdict::Failed(format!(
                "itemIdentifier {identifier} is not a record of the batch"
            ));
        };
        lowest = Some(lowest.map_or(index, |l| l.min(index)));
    }
    lowest.map_or(Verdict::Done, Verdict::RetryFrom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<StreamRecord> {
        (1..=4)
            .map(|n| StreamRecord {
                sequence: n.to_string().parse().unwrap(),
                partition_key: "k".into(),
                data: Bytes::from_static(b"x"),
                arrival: 1.0,
            })
            .collect()
    }

    #[test]
    fn answers_read_as_the_developer_guide_says() {
        let b = batch();
        for done in [
            &b""[..],
            b"null",
            br#"{}"#,
            br#"{"batchItemFailures":null}"#,
            br#"{"batchItemFailures":[]}"#,
        ] {
            assert_eq!(
                verdict(done, &b, true),
                Verdict::Done,
                "{}",
                String::from_utf8_lossy(done)
            );
        }
        let two = br#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#;
        assert_eq!(
            verdict(two, &b, true),
            Verdict::RetryFrom(1),
            "the lowest one"
        );
        for failed in [
            &br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#[..],
            br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            br#"{"batchItemFailures":[{"id":"2"}]}"#,
            br#"{"batchItemFailures":[{"itemIdentifier":"99"}]}"#,
        ] {
            assert!(
                matches!(verdict(failed, &b, true), Verdict::Failed(_)),
                "{}",
                String::from_utf8_lossy(failed)
            );
        }
        assert_eq!(
            verdict(two, &b, false),
            Verdict::Done,
            "ignored without ReportBatchItemFailures"
        );
    }

    #[test]
    fn events_carry_the_records() {
        let b = batch();
        let json: Value = serde_json::from_slice(&event(
            "arn:aws:kinesis:us-east-1:1:stream/s",
            "shardId-1",
            &b,
        ))
        .unwrap();
        let records = json["Records"].as_array().unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[2]["eventID"], "shardId-1:3");
        assert_eq!(records[2]["kinesis"]["approximateArrivalTimestamp"], 1.0);
        let size: usize = b
            .iter()
            .map(|r| r.event_size("arn:aws:kinesis:us-east-1:1:stream/s", "shardId-1"))
            .sum();
        assert!(
            size >= json.to_string().len() - 20,
            "sizes add up to about the event"
        );
    }
}

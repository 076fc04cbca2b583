//! Records as the mapping holds them, and the Lambda event made of them.

use bytes::Bytes;
use shardline_event::SequenceNumber;
use shardline_event::sample::{SampleRecord, event_bytes};

/// The most bytes of one invocation's payload: 6 MB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// One Kinesis record read from a shard.
#[derive(Debug, Clone, PartialEq)]
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
    pub(crate) fn sample(&self, stream_arn: &str, shard_id: &str) -> SampleRecord {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    pub(crate) fn records(n: u64) -> Vec<StreamRecord> {
        (1..=n)
            .map(|n| StreamRecord {
                sequence: n.to_string().parse().unwrap(),
                partition_key: "k".into(),
                data: Bytes::from_static(b"x"),
                arrival: 1.0,
            })
            .collect()
    }

    #[test]
    fn events_carry_the_records() {
        let b = records(4);
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

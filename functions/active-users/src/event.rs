//! Sample Kinesis events of heartbeats stamped with the current time, for the
//! local loop (`active-users event alice bob > /tmp/hb.json`, then `invoke` it).
//! The files in `events/active-users/` carry fixed times; these are fresh.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shardline::sample::{SampleRecord, epoch_seconds, event_json};

/// The stream ARN of generated events.
pub const SAMPLE_STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/heartbeats";
/// The shard of generated events.
pub const SAMPLE_SHARD: &str = "shardId-000000000000";

/// A Lambda Kinesis event with one heartbeat per user, seen and arrived `age`
/// before `now`. Sequence numbers grow with `now`, so a later event is never
/// skipped as already checkpointed.
pub fn heartbeat_event(users: &[String], age: Duration, now: SystemTime) -> Value {
    let at = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
    let ts = shardline::time::epoch_millis(at);
    let now_nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let records: Vec<SampleRecord> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let payload = json!({"user": user, "ts": ts}).to_string();
            SampleRecord::new(format!("49{now_nanos:036}{i:06}"), payload)
                .key(user)
                .shard(SAMPLE_STREAM_ARN, SAMPLE_SHARD)
                .arrived(Some(epoch_seconds(at)))
        })
        .collect();
    event_json(&records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn events_carry_fresh_heartbeats_with_growing_sequence_numbers() {
        let now = UNIX_EPOCH + Duration::from_millis(1_763_790_000_250);
        let users = vec!["a".to_owned(), "b".to_owned()];
        let event = heartbeat_event(&users, Duration::from_secs(10), now);
        let records = event["Records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        let data = records[1]["kinesis"]["data"].as_str().unwrap();
        let payload = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload, json!({"user": "b", "ts": 1_763_789_990_250_u64}));
        assert_eq!(
            records[0]["kinesis"]["approximateArrivalTimestamp"],
            json!(1_763_789_990.25)
        );
        let seq = |i: usize| {
            records[i]["kinesis"]["sequenceNumber"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(seq(0) < seq(1) && seq(0).len() == seq(1).len());
        let later = heartbeat_event(&users, Duration::ZERO, now + Duration::from_millis(1));
        let later_seq = later["Records"][0]["kinesis"]["sequenceNumber"]
            .as_str()
            .unwrap();
        assert!(later_seq > seq(1).as_str());
    }
}

//! Lambda Kinesis events for tests: from records read out of kinesis-mock, or
//! made up with increasing 56-digit sequence numbers.

use base64::Engine as _;

use crate::kinesis::ReadRecord;

/// A record to put in an event: sequence number, partition key, payload.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl From<&ReadRecord> for EventRecord {
    fn from(r: &ReadRecord) -> Self {
        EventRecord {
            sequence_number: r.sequence_number.clone(),
            partition_key: r.partition_key.clone(),
            data: r.data.clone(),
        }
    }
}

/// The JSON of a Lambda Kinesis event holding `records` of one shard.
pub fn event(stream_arn: &str, shard_id: &str, records: &[EventRecord]) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": now,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

/// `count` made-up records with 56-digit increasing sequence numbers, starting
/// after `first`; `key(i)` and `data(i)` give each record's key and payload.
pub fn made_up(
    first: u64,
    count: u64,
    key: impl Fn(u64) -> String,
    data: impl Fn(u64) -> Vec<u8>,
) -> Vec<EventRecord> {
    (first..first + count)
        .map(|i| EventRecord {
            sequence_number: format!("4959033827149025660855969253836157109592157598{:010}", i),
            partition_key: key(i),
            data: data(i),
        })
        .collect()
}

/// A stream ARN for made-up events.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}")
}

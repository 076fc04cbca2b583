//! Lambda Kinesis events for tests: from records read out of kinesis-mock, or
//! made up with increasing 56-digit sequence numbers.

use shardline::sample::SampleRecord;

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

/// The JSON of a Lambda Kinesis event holding `records` of one shard, arriving now
/// (built by the framework's one event builder, [`shardline::sample`]).
pub fn event(stream_arn: &str, shard_id: &str, records: &[EventRecord]) -> Vec<u8> {
    let records: Vec<SampleRecord> = records
        .iter()
        .map(|r| {
            SampleRecord::new(r.sequence_number.clone(), &r.data)
                .key(&r.partition_key)
                .shard(stream_arn, shard_id)
        })
        .collect();
    shardline::sample::event_bytes(&records)
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
            sequence_number: shardline::sample::sequence_number(i),
            partition_key: key(i),
            data: data(i),
        })
        .collect()
}

/// A stream ARN for made-up events.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}")
}

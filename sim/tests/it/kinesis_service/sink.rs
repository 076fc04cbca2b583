//! Shardline's `KinesisSink` over the simulated service.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kpl::Deaggregated;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{DeliveryOrder, OutRecord, Sink, SinkError};
use shardline::time::SimulatedWallClock;
use shardline::{Deadline, Position};
use shardline_sim::kinesis::{EntryFault, Failure, Fault, KinesisService, Refusal, ScriptedFaults};

use super::start;

/// Record `i` of key `i % keys`: its data is `key:i`.
fn record(i: u64, keys: u64, bytes: usize) -> OutRecord {
    let key = format!("key-{}", i % keys);
    let mut data = format!("{key}:{i}:").into_bytes();
    data.resize(data.len().max(bytes), b'.');
    OutRecord {
        source: Position::new(i.to_string().parse().unwrap(), 0),
        partition_key: key,
        explicit_hash_key: None,
        data: Bytes::from(data),
    }
}

/// The user records of the stream: per shard, deaggregated, in order; and
/// how many Kinesis records carried them.
fn user_records(service: &KinesisService, stream: &str) -> (Vec<(String, Bytes)>, usize) {
    let mut users = Vec::new();
    let mut kinesis_records = 0;
    for records in service.stream_records(stream).unwrap().into_values() {
        for record in records {
            kinesis_records += 1;
            match kpl::deaggregate(&record.data) {
                Deaggregated::Aggregate(inner) => {
                    users.extend(inner.into_iter().map(|u| (u.partition_key, u.data)));
                }
                Deaggregated::Plain => users.push((record.partition_key, record.data)),
                Deaggregated::Fallback(reason) => panic!("a broken aggregate: {reason}"),
            }
        }
    }
    (users, kinesis_records)
}

/// The number `i` of a record's data `key:i:...`.
fn index(data: &Bytes) -> u64 {
    let text = std::str::from_utf8(data).unwrap();
    text.split(':').nth(1).unwrap().parse().unwrap()
}

async fn deliver_every_record_once(order: DeliveryOrder, aggregate: bool) {
    let _clock = SimulatedWallClock::start(start());
    let service = KinesisService::new();
    service.create_stream("dest", 4).unwrap();
    let faults = (0..150).map(|i| match i % 5 {
        1 => Some(EntryFault::Throughput),
        3 => Some(EntryFault::Internal),
        _ => None,
    });
    let script = ScriptedFaults::new()
        .request(Some("PutRecords"), Fault::Fail(Failure::Internal))
        .entries(faults);
    service.set_faults(script);
    let sink = KinesisSink::new(service.client(), KinesisService::stream_arn("dest"))
        .order(order)
        .aggregate(aggregate);
    let records: Vec<OutRecord> = (0..400).map(|i| record(i, 23, 40)).collect();
    let outcome = sink
        .send(&records, Deadline::after(Duration::from_secs(60)))
        .await;
    let case = format!("{order:?}, aggregate {aggregate}");
    assert!(outcome.is_complete(), "{case}: {outcome:?}");
    assert!(
        outcome.rejected.is_empty() && outcome.error.is_none(),
        "{case}"
    );
    assert!(
        outcome.retried_entries > 0,
        "{case}: entries failed and were sent again"
    );
    let (users, kinesis_records) = user_records(&service, "dest");
    let mut got: Vec<(String, Bytes)> = users.clone();
    got.sort();
    let mut sent: Vec<(String, Bytes)> = records
        .iter()
        .map(|r| (r.partition_key.clone(), r.data.clone()))
        .collect();
    sent.sort();
    assert_eq!(got, sent, "{case}: every record once");
    if aggregate {
        assert!(
            kinesis_records < 100,
            "{case}: {kinesis_records} Kinesis records"
        );
    } else {
        assert_eq!(kinesis_records, 400, "{case}");
    }
    if order == DeliveryOrder::Ordered || aggregate {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        for (key, data) in &users {
            let i = index(data);
            let before = last.insert(key.clone(), i);
            assert!(
                before.is_none_or(|b| b < i),
                "{case}: {key} out of order at {i}"
            );
        }
    }
    assert!(service.stats().entries_failed > 0, "{case}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sink_delivers_every_record_once_ordered() {
    deliver_every_record_once(DeliveryOrder::Ordered, false).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sink_delivers_every_record_once_for_throughput() {
    deliver_every_record_once(DeliveryOrder::Throughput, false).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sink_delivers_every_record_once_aggregated_ordered() {
    deliver_every_record_once(DeliveryOrder::Ordered, true).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sink_delivers_every_record_once_aggregated_for_throughput() {
    deliver_every_record_once(DeliveryOrder::Throughput, true).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_sink_fails_fast_on_a_refused_stream() {
    for (refusal, code) in [
        (Refusal::NotFound, "ResourceNotFoundException"),
        (Refusal::AccessDenied, "AccessDeniedException"),
    ] {
        let service = KinesisService::new();
        service.create_stream("dest", 1).unwrap();
        service.set_faults(ScriptedFaults::new().request(None, Fault::Refuse(refusal)));
        let sink = KinesisSink::new(service.client(), "dest");
        let records: Vec<OutRecord> = (0..5).map(|i| record(i, 5, 1)).collect();
        let outcome = sink
            .send(&records, Deadline::after(Duration::from_secs(60)))
            .await;
        assert!(
            matches!(&outcome.error, Some(SinkError::Refused { code: c, .. }) if c == code),
            "{outcome:?}"
        );
        assert!(outcome.delivered.iter().all(|d| !d));
        assert!(service.stream_records("dest").unwrap()["shardId-000000000000"].is_empty());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_record_the_service_refuses_is_isolated_and_rejected() {
    let service = KinesisService::new();
    service.create_stream("dest", 1).unwrap();
    // The sink believes the stream takes 2 MiB records; the service takes 1 MiB.
    let sink = KinesisSink::new(service.client(), "dest").max_record_bytes(2 * 1024 * 1024);
    let mut records: Vec<OutRecord> = (0..8).map(|i| record(i, 8, 10)).collect();
    // Data over 1 MiB breaks the API model; data under 1 MiB with its key over
    // it is refused by the service.
    records[2] = record(2, 8, 1024 * 1024 + 512 * 1024);
    records[5] = record(5, 8, 1024 * 1024 - 2);
    let outcome = sink
        .send(&records, Deadline::after(Duration::from_secs(60)))
        .await;
    let mut rejected = outcome.rejected.clone();
    rejected.sort();
    assert_eq!(rejected.len(), 2, "{outcome:?}");
    assert_eq!((rejected[0].0, rejected[1].0), (2, 5));
    assert!(
        rejected[0].1.contains("ValidationException"),
        "{}",
        rejected[0].1
    );
    assert!(
        rejected[1].1.contains("InvalidArgumentException"),
        "{}",
        rejected[1].1
    );
    let delivered: Vec<bool> = (0..8).map(|i| i != 2 && i != 5).collect();
    assert_eq!(outcome.delivered, delivered);
    assert_eq!(user_records(&service, "dest").0.len(), 6);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_late_answer_past_the_deadline_counts_as_undelivered_but_landed() {
    let service = KinesisService::new();
    service.create_stream("dest", 1).unwrap();
    service.set_faults(ScriptedFaults::new().request(None, Fault::Late(Duration::from_secs(10))));
    let sink = KinesisSink::new(service.client(), "dest");
    let records: Vec<OutRecord> = (0..3).map(|i| record(i, 3, 1)).collect();
    let outcome = sink
        .send(&records, Deadline::after(Duration::from_secs(3)))
        .await;
    assert!(
        matches!(
            outcome.error,
            Some(SinkError::Incomplete { undelivered: 3, .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(
        user_records(&service, "dest").0.len(),
        3,
        "the records landed"
    );
}

//! The fan-out against kinesis-mock (destinations) and moto (state), with a
//! fault-injecting proxy where the test needs failures.

use std::sync::Arc;
use std::time::Duration;

use shardline::decode::decode_event;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{DeliveryOrder, FanOut, OutRecord, Sink, SinkError, StaticDestinations};
use shardline::state::{DynamoDbStore, StateStore};
use shardline::{BatchOutcome, Deadline, EngineConfig, Position, process_event};
use shardline_tests::delivered::assert_delivered_once;
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::kinesis;
use shardline_tests::lambda::{EventRecord, event, made_up, stream_arn};
use shardline_tests::{Emulators, RequestCounter, unique_name};

const KEYS: u64 = 500;

struct Setup {
    emulators: Emulators,
    direct: aws_sdk_kinesis::Client,
    store: DynamoDbStore,
}

impl Setup {
    async fn new() -> Setup {
        let emulators = Emulators::from_env();
        let store = DynamoDbStore::new(emulators.dynamodb(), unique_name("fanout"));
        store.create_table().await.unwrap();
        let direct = emulators.kinesis();
        Setup {
            emulators,
            direct,
            store,
        }
    }

    /// Destination streams of 16 shards each: kinesis-mock's PutRecords
    /// hashes every record already in an entry's shard, so fewer records a
    /// shard cost it less (the 10,000-record test: 28 CPU-seconds of
    /// kinesis-mock at 4 shards, 15 at 16). No assertion here depends on the
    /// shard count.
    async fn streams(&self, count: usize) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..count {
            let name = unique_name("dest");
            kinesis::create_stream(&self.direct, &name, 16).await;
            names.push(name);
        }
        names
    }

    /// A Kinesis client to `endpoint` (the proxy, or kinesis-mock), counting requests.
    fn client(&self, endpoint: Option<&str>) -> (aws_sdk_kinesis::Client, RequestCounter) {
        let counter = RequestCounter::new();
        let mut config = self.emulators.kinesis_config().interceptor(counter.clone());
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        (aws_sdk_kinesis::Client::from_conf(config.build()), counter)
    }

    fn fanout(
        &self,
        client: &aws_sdk_kinesis::Client,
        streams: &[String],
        order: DeliveryOrder,
    ) -> FanOut {
        let sinks: Vec<Arc<dyn Sink>> = streams
            .iter()
            .map(|s| {
                Arc::new(
                    KinesisSink::new(client.clone(), s.clone())
                        .order(order)
                        .backoff(Duration::from_millis(5), Duration::from_millis(50)),
                ) as Arc<dyn Sink>
            })
            .collect();
        FanOut::new(StaticDestinations(sinks), 1024 * 1024)
    }

    async fn run(
        &self,
        fanout: &FanOut,
        records: &[EventRecord],
        config: &EngineConfig,
    ) -> BatchOutcome {
        let json = event(&stream_arn("source"), "shardId-000000000000", records);
        process_event(
            decode_event(&json).unwrap(),
            fanout,
            &self.store,
            config,
            Deadline::after(Duration::from_secs(120)),
        )
        .await
        .unwrap()
    }

    /// Every record of a destination, shard by shard, in shard order.
    async fn read_all(&self, stream: &str) -> Vec<kinesis::ReadRecord> {
        let mut all = Vec::new();
        for shard in kinesis::list_shards(&self.direct, stream).await {
            all.extend(
                kinesis::read_shard(&self.direct, stream, &shard.shard_id)
                    .await
                    .records,
            );
        }
        all
    }

    /// Asserts a destination holds `expected` records exactly once, with their
    /// keys, and (if `ordered`) in order per key.
    async fn assert_delivered(&self, stream: &str, expected: &[EventRecord], ordered: bool) {
        self.assert_delivered_but_given_up(stream, expected, ordered, 0)
            .await;
    }

    /// As [`Setup::assert_delivered`], allowing `given_up` records to be seen
    /// twice: those of requests given up on at a deadline.
    async fn assert_delivered_but_given_up(
        &self,
        stream: &str,
        expected: &[EventRecord],
        ordered: bool,
        given_up: u64,
    ) {
        let read = self.read_all(stream).await;
        let read: Vec<(&[u8], &str)> = read
            .iter()
            .map(|r| (r.data.as_slice(), r.partition_key.as_str()))
            .collect();
        assert_delivered_once(stream, &read, expected, ordered, given_up);
    }
}

mod deadline;

fn records(count: u64) -> Vec<EventRecord> {
    made_up(
        0,
        count,
        |i| format!("user-{}", i % KEYS),
        |i| format!("rec-{i:06}").into_bytes(),
    )
}

async fn fan_out_in_batches(
    setup: &Setup,
    fanout: &FanOut,
    all: &[EventRecord],
    batch: usize,
    config: &EngineConfig,
) {
    for chunk in all.chunks(batch) {
        let outcome = setup.run(fanout, chunk, config).await;
        assert!(outcome.response.is_success(), "{:?}", outcome.report);
    }
}

#[tokio::test]
async fn ten_thousand_records_reach_three_streams_exactly_once_in_order() {
    let setup = Setup::new().await;
    let streams = setup.streams(3).await;
    let (client, counter) = setup.client(None);
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Ordered);
    let all = records(10_000);
    fan_out_in_batches(&setup, &fanout, &all, 1_000, &EngineConfig::new("fanout")).await;
    for stream in &streams {
        setup.assert_delivered(stream, &all, true).await;
    }
    // 1,000 records of 500 keys: two requests per batch and destination.
    assert_eq!(counter.get("PutRecords"), 10 * 2 * 3);
    assert_eq!(fanout.retried_entries(), 0);
}

#[tokio::test]
async fn partial_failures_are_retried_exactly_once_and_in_order() {
    let setup = Setup::new().await;
    let streams = setup.streams(2).await;
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            entry_failure_rate: 0.2,
            request_failure_rate: 0.05,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Ordered);
    let all = records(3_000);
    fan_out_in_batches(&setup, &fanout, &all, 1_000, &EngineConfig::new("fanout")).await;
    let stats = proxy.stats();
    assert!(
        stats["injected_entry_failures"].as_u64().unwrap() > 100,
        "{stats}"
    );
    assert!(
        stats["injected_request_failures"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(fanout.retried_entries() > 100);
    for stream in &streams {
        setup.assert_delivered(stream, &all, true).await;
    }
}

#[tokio::test]
async fn throughput_mode_loses_and_repeats_nothing_under_failures() {
    let setup = Setup::new().await;
    let streams = setup.streams(2).await;
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            entry_failure_rate: 0.2,
            request_failure_rate: 0.05,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Throughput);
    let all = records(3_000);
    fan_out_in_batches(&setup, &fanout, &all, 1_000, &EngineConfig::new("fanout")).await;
    for stream in &streams {
        setup.assert_delivered(stream, &all, false).await;
    }
}

#[tokio::test]
async fn a_retry_after_one_destination_failed_writes_nothing_twice_to_the_others() {
    let setup = Setup::new().await;
    let mut streams = setup.streams(2).await;
    let late = unique_name("late");
    streams.push(late.clone()); // does not exist yet
    let (client, _) = setup.client(None);
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Ordered);
    let batch = records(600);
    let config = EngineConfig::new("fanout");

    let first = setup.run(&fanout, &batch, &config).await;
    assert_eq!(
        first.response.batch_item_failures[0].item_identifier, batch[0].sequence_number,
        "the batch is retried from its start"
    );
    for stream in &streams[..2] {
        setup.assert_delivered(stream, &batch, true).await;
    }

    kinesis::create_stream(&setup.direct, &late, 4).await;
    let retry = setup.run(&fanout, &batch, &config).await;
    assert!(retry.response.is_success(), "{:?}", retry.report);
    for stream in &streams {
        setup.assert_delivered(stream, &batch, true).await;
    }
    // A third delivery of the same batch is skipped by the checkpoint.
    let replay = setup.run(&fanout, &batch, &config).await;
    assert_eq!(replay.report.skipped_checkpointed, 600);
}

#[tokio::test]
async fn oversized_records_are_quarantined_and_unknown_or_denied_streams_fail_fast() {
    let setup = Setup::new().await;
    let streams = setup.streams(1).await;
    let (client, counter) = setup.client(None);
    let sinks: Vec<Arc<dyn Sink>> = vec![Arc::new(KinesisSink::new(
        client.clone(),
        streams[0].clone(),
    ))];
    let fanout = FanOut::new(StaticDestinations(sinks), 1_000);
    let mut batch = records(3);
    batch[1].data = vec![b'x'; 2_000];
    let outcome = setup
        .run(&fanout, &batch, &EngineConfig::new("fanout"))
        .await;
    assert!(outcome.response.is_success());
    assert_eq!(outcome.report.quarantined_permanent, 1);
    let quarantined = setup.store.quarantined("fanout").await.unwrap();
    assert_eq!(quarantined[0].data.len(), 2_000, "kept with its payload");
    let delivered = setup.read_all(&streams[0]).await;
    assert_eq!(delivered.len(), 2, "the oversized record is not sent");

    // An unknown stream: one request, a clear refusal naming it.
    let missing = unique_name("missing");
    let sink = KinesisSink::new(client.clone(), missing.clone());
    let out_record = |i: u64| OutRecord {
        source: Position::new(i.to_string().parse().unwrap(), 0),
        partition_key: "k".into(),
        explicit_hash_key: None,
        data: bytes::Bytes::from_static(b"x"),
    };
    counter.reset();
    let sent = sink
        .send(
            &[out_record(1), out_record(2)],
            Deadline::after(Duration::from_secs(30)),
        )
        .await;
    assert!(
        matches!(&sent.error, Some(SinkError::Refused { destination, code, .. })
            if *destination == missing && code == "ResourceNotFoundException"),
        "{:?}",
        sent.error
    );
    assert_eq!(sent.delivered, [false, false]);
    assert_eq!(counter.get("PutRecords"), 1, "not retried");
    assert!(sent.error.unwrap().to_string().contains(&missing));

    // Access denied (through the proxy): refused at once, naming the stream.
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            deny_streams: vec![streams[0].clone()],
            ..Faults::default()
        },
    );
    let (denied_client, denied_counter) = setup.client(Some(&proxy.endpoint));
    let sink = KinesisSink::new(denied_client, streams[0].clone());
    let sent = sink
        .send(&[out_record(1)], Deadline::after(Duration::from_secs(30)))
        .await;
    assert!(
        matches!(&sent.error, Some(SinkError::Refused { code, .. }) if code == "AccessDeniedException"),
        "{:?}",
        sent.error
    );
    assert_eq!(denied_counter.get("PutRecords"), 1);
}

#[tokio::test]
async fn interleaved_batches_of_one_shard_reach_every_destination_in_per_key_mode() {
    let setup = Setup::new().await;
    let streams = setup.streams(2).await;
    let (client, _) = setup.client(None);
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Ordered);
    let mut config = EngineConfig::new("fanout");
    config.progress = shardline::ProgressMode::PartitionKey;
    // ParallelizationFactor 2: one slot per key, their sequence numbers interleaved.
    let all = made_up(
        0,
        400,
        |i| format!("k{}", i % 2),
        |i| format!("rec-{i:06}").into_bytes(),
    );
    for slot in 0..2 {
        let batch: Vec<EventRecord> = all.iter().skip(slot).step_by(2).cloned().collect();
        let outcome = setup.run(&fanout, &batch, &config).await;
        assert!(outcome.response.is_success(), "{:?}", outcome.report);
        assert_eq!(outcome.report.processed, 200);
    }
    for stream in &streams {
        setup.assert_delivered(stream, &all, true).await;
    }
}

#[tokio::test]
async fn throughput_mode_keeps_each_key_in_order_when_nothing_fails() {
    let setup = Setup::new().await;
    let streams = setup.streams(1).await;
    // Concurrent requests overtake each other on their way to the stream.
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            jitter_ms: 80,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Throughput);
    let all = made_up(
        0,
        2_000,
        |i| format!("user-{}", i % 10),
        |i| format!("rec-{i:06}").into_bytes(),
    );
    fan_out_in_batches(&setup, &fanout, &all, 2_000, &EngineConfig::new("fanout")).await;
    assert_eq!(fanout.retried_entries(), 0, "nothing failed");
    setup.assert_delivered(&streams[0], &all, true).await;
}

#[tokio::test]
async fn a_request_refused_for_one_record_delivers_the_others_and_quarantines_that_one() {
    let setup = Setup::new().await;
    let streams = setup.streams(1).await;
    // The proxy refuses, as Kinesis does, a whole PutRecords holding a key it
    // finds invalid (here: longer than 8 characters).
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            max_partition_key: 8,
            ..Faults::default()
        },
    );
    let (client, counter) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(&client, &streams, DeliveryOrder::Throughput);
    let mut batch = made_up(
        0,
        20,
        |i| format!("k{}", i % 5),
        |i| format!("rec-{i:06}").into_bytes(),
    );
    batch[13].partition_key = "much-too-long".into();
    let outcome = setup
        .run(&fanout, &batch, &EngineConfig::new("fanout"))
        .await;
    assert!(outcome.response.is_success(), "{:?}", outcome.report);
    assert_eq!(
        outcome.report.quarantined_permanent, 1,
        "{:?}",
        outcome.report
    );
    let quarantined = setup.store.quarantined("fanout").await.unwrap();
    assert_eq!(quarantined[0].sequence_number, batch[13].sequence_number);
    assert_eq!(quarantined[0].data.as_ref(), b"rec-000013");
    assert!(
        quarantined[0].detail.contains("ValidationException"),
        "{}",
        quarantined[0].detail
    );
    let mut delivered = batch.clone();
    delivered.remove(13);
    setup.assert_delivered(&streams[0], &delivered, true).await;
    // Halving isolates the record: a handful of requests, not one per record.
    assert!(counter.get("PutRecords") <= 12, "{:?}", counter.snapshot());
}

//! Aggregated fan-out (`FANOUT_AGGREGATE=on`, `KinesisSink::aggregate`) against
//! kinesis-mock (destinations) and moto (state): a Shardline consumer of the
//! destination, reading it with GetRecords and decoding what it reads with
//! `decode_event` (which deaggregates), sees every record exactly once, in
//! order per key, each on the shard it would have reached on its own.
//!
//! `cargo test -p shardline-tests --test it fanout_aggregate:: -- --nocapture`
//! prints the aggregation ratio (Kinesis records put per user record) for
//! 10,000 records of 100 bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shardline::decode::kpl::partition_key_hash;
use shardline::decode::{Item, decode_event};
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{DeliveryOrder, FanOut, Sink, StaticDestinations};
use shardline::state::{DynamoDbStore, StateStore};
use shardline::{BatchOutcome, Deadline, EngineConfig, Record, RecordOrigin, process_event};
use shardline_tests::delivered::assert_delivered_once;
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::kinesis::{self, ShardInfo};
use shardline_tests::lambda::{EventRecord, event, made_up, stream_arn};
use shardline_tests::{Emulators, RequestCounter, unique_name};

struct Setup {
    emulators: Emulators,
    direct: aws_sdk_kinesis::Client,
    store: DynamoDbStore,
}

/// What a Shardline consumer of a destination saw, shard by shard.
struct Consumed {
    /// Kinesis records read (aggregates count one).
    kinesis_records: usize,
    /// User records, with the shard they were read from, in shard order
    /// (shards in id order: parents before their children).
    records: Vec<(ShardInfo, Record)>,
}

impl Setup {
    async fn new() -> Setup {
        let emulators = Emulators::from_env();
        let store = DynamoDbStore::new(emulators.dynamodb(), unique_name("fanagg"));
        store.create_table().await.unwrap();
        let direct = emulators.kinesis();
        Setup {
            emulators,
            direct,
            store,
        }
    }

    async fn streams(&self, count: usize, shards: i32) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..count {
            let name = unique_name("aggdest");
            kinesis::create_stream(&self.direct, &name, shards).await;
            names.push(name);
        }
        names
    }

    fn client(&self, endpoint: Option<&str>) -> (aws_sdk_kinesis::Client, RequestCounter) {
        let counter = RequestCounter::new();
        let mut config = self.emulators.kinesis_config().interceptor(counter.clone());
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        (aws_sdk_kinesis::Client::from_conf(config.build()), counter)
    }

    fn sink(
        &self,
        client: &aws_sdk_kinesis::Client,
        stream: &str,
        order: DeliveryOrder,
    ) -> KinesisSink {
        KinesisSink::new(client.clone(), stream)
            .order(order)
            .aggregate(true)
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
    }

    fn fanout(&self, sinks: Vec<KinesisSink>) -> FanOut {
        let sinks: Vec<Arc<dyn Sink>> = sinks
            .into_iter()
            .map(|s| Arc::new(s) as Arc<dyn Sink>)
            .collect();
        FanOut::new(StaticDestinations(sinks), 1024 * 1024)
    }

    async fn run(
        &self,
        fanout: &FanOut,
        records: &[EventRecord],
        deadline: Duration,
    ) -> BatchOutcome {
        let json = event(&stream_arn("source"), "shardId-000000000000", records);
        let config = EngineConfig::new("fanout");
        process_event(
            decode_event(&json).unwrap(),
            fanout,
            &self.store,
            &config,
            Deadline::after(deadline),
        )
        .await
        .unwrap()
    }

    async fn run_all(&self, fanout: &FanOut, all: &[EventRecord], batch: usize) {
        for chunk in all.chunks(batch) {
            let outcome = self.run(fanout, chunk, Duration::from_secs(120)).await;
            assert!(outcome.response.is_success(), "{:?}", outcome.report);
        }
    }

    /// Reads every shard of `stream` and decodes it as a Shardline consumer does.
    async fn consume(&self, stream: &str) -> Consumed {
        let mut shards = kinesis::list_shards(&self.direct, stream).await;
        shards.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        let arn = kinesis::stream_arn(&self.direct, stream).await;
        let mut consumed = Consumed {
            kinesis_records: 0,
            records: Vec::new(),
        };
        for shard in shards {
            let read = kinesis::read_shard(&self.direct, stream, &shard.shard_id).await;
            consumed.kinesis_records += read.records.len();
            let events: Vec<EventRecord> = read.records.iter().map(EventRecord::from).collect();
            for chunk in events.chunks(1_000) {
                let decoded = decode_event(&event(&arn, &shard.shard_id, chunk)).unwrap();
                assert_eq!(decoded.kpl.fallbacks, 0, "every aggregate is valid");
                for item in decoded.items {
                    let Item::Ready(record) = item else {
                        panic!("undecodable record in {stream}: {item:?}");
                    };
                    consumed.records.push((shard.clone(), record));
                }
            }
        }
        consumed
    }
}

impl Consumed {
    /// Asserts the consumer saw `expected` exactly once each, with its key,
    /// and (if `ordered`) each key in order.
    fn assert_exactly_once(&self, expected: &[EventRecord], ordered: bool) {
        self.assert_once_but_given_up(expected, ordered, 0);
    }

    /// As [`Consumed::assert_exactly_once`], allowing `given_up` records to be
    /// seen twice: those of requests given up on at a deadline.
    fn assert_once_but_given_up(&self, expected: &[EventRecord], ordered: bool, given_up: u64) {
        let read: Vec<(&[u8], &str)> = self
            .records
            .iter()
            .map(|(_, r)| (r.data.as_ref(), r.partition_key.as_str()))
            .collect();
        assert_delivered_once("consumer", &read, expected, ordered, given_up);
    }

    /// The user records read from a shard whose hash key range does not hold
    /// their partition key's hash: put where they would not have landed alone.
    fn misplaced(&self) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|(shard, r)| {
                let hash = partition_key_hash(&r.partition_key);
                hash < shard.starting_hash_key || hash > shard.ending_hash_key
            })
            .map(|(_, r)| r)
            .collect()
    }
}

/// `count` records of exactly 100 bytes over `keys` keys, from `first`.
fn records(first: u64, count: u64, keys: u64) -> Vec<EventRecord> {
    made_up(
        first,
        count,
        |i| format!("user-{}", i % keys),
        |i| format!("rec-{i:06}-{}", "x".repeat(100 - 11)).into_bytes(),
    )
}

#[tokio::test]
async fn ten_thousand_records_reach_a_shardline_consumer_once_each_in_few_aggregates() {
    let setup = Setup::new().await;
    let stream = setup.streams(1, 4).await.remove(0);
    let (client, counter) = setup.client(None);
    let fanout = setup.fanout(vec![setup.sink(&client, &stream, DeliveryOrder::Ordered)]);
    let all = records(0, 10_000, 500);
    assert!(all.iter().all(|r| r.data.len() == 100));
    setup.run_all(&fanout, &all, 1_000).await;

    let consumed = setup.consume(&stream).await;
    consumed.assert_exactly_once(&all, true);
    assert!(
        consumed.misplaced().is_empty(),
        "each record on the shard of its key"
    );
    assert!(
        consumed
            .records
            .iter()
            .all(|(_, r)| matches!(r.origin, RecordOrigin::Aggregated { .. }))
    );
    let ratio = consumed.kinesis_records as f64 / all.len() as f64;
    println!(
        "aggregation ratio: {ratio:.4} Kinesis records put per user record ({} records for 10,000 user records of 100 bytes, 4 destination shards, batches of 1,000; {} PutRecords, {} ListShards)",
        consumed.kinesis_records,
        counter.get("PutRecords"),
        counter.get("ListShards"),
    );
    // Per batch of 1,000: one aggregate per destination shard, in one request.
    assert_eq!(consumed.kinesis_records, 10 * 4);
    assert_eq!(counter.get("PutRecords"), 10);
    assert_eq!(counter.get("ListShards"), 1, "the shard map is cached");
}

#[tokio::test]
async fn failed_aggregates_are_retried_and_every_record_is_seen_once_in_order() {
    let setup = Setup::new().await;
    let streams = setup.streams(2, 4).await;
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            entry_failure_rate: 0.3,
            request_failure_rate: 0.1,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let sinks = streams
        .iter()
        .map(|s| {
            setup
                .sink(&client, s, DeliveryOrder::Ordered)
                .max_record_bytes(8 * 1024)
        })
        .collect();
    let fanout = setup.fanout(sinks);
    let all = records(0, 3_000, 200);
    setup.run_all(&fanout, &all, 1_000).await;
    let stats = proxy.stats();
    assert!(
        stats["injected_entry_failures"].as_u64().unwrap() > 5,
        "{stats}"
    );
    assert!(fanout.retried_entries() > 5, "{}", fanout.retried_entries());
    for stream in &streams {
        let consumed = setup.consume(stream).await;
        consumed.assert_exactly_once(&all, true);
        assert!(
            consumed.kinesis_records < 3_000 / 20,
            "{}",
            consumed.kinesis_records
        );
    }
}

#[tokio::test]
async fn a_retry_after_one_destination_failed_writes_no_aggregate_twice_to_the_others() {
    let setup = Setup::new().await;
    let stream = setup.streams(1, 4).await.remove(0);
    let late = unique_name("late");
    let (client, _) = setup.client(None);
    let fanout = setup.fanout(vec![
        setup.sink(&client, &stream, DeliveryOrder::Throughput),
        setup.sink(&client, &late, DeliveryOrder::Throughput),
    ]);
    let batch = records(0, 600, 50);
    let first = setup.run(&fanout, &batch, Duration::from_secs(60)).await;
    assert!(
        !first.response.is_success(),
        "the missing destination fails the batch"
    );
    kinesis::create_stream(&setup.direct, &late, 2).await;
    let retry = setup.run(&fanout, &batch, Duration::from_secs(60)).await;
    assert!(retry.response.is_success(), "{:?}", retry.report);
    for stream in [&stream, &late] {
        setup
            .consume(stream)
            .await
            .assert_exactly_once(&batch, true);
    }
}

#[tokio::test]
async fn a_slow_destination_cut_by_the_deadline_loses_and_repeats_nothing() {
    let setup = Setup::new().await;
    let stream = setup.streams(1, 1).await.remove(0);
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        // Requests that take 400 to 550 ms: the next may be slower than any
        // before it, so the sink keeps time to spare before starting one.
        &Faults {
            delay_ms: 400,
            jitter_ms: 150,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    // Aggregates of 2 KiB on one shard, ordered: one request per aggregate.
    let sink = setup
        .sink(&client, &stream, DeliveryOrder::Ordered)
        .max_record_bytes(2 * 1024);
    let fanout = setup.fanout(vec![sink]);
    let batch = records(0, 200, 20);
    let json = event(&stream_arn("source"), "shardId-000000000000", &batch);
    let mut config = EngineConfig::new("fanout");
    config.time_reserve = Duration::from_millis(200);
    let mut invocations = 0;
    loop {
        invocations += 1;
        assert!(invocations <= 20, "no progress across invocations");
        let deadline = Deadline::after(Duration::from_millis(1_500));
        let outcome = process_event(
            decode_event(&json).unwrap(),
            &fanout,
            &setup.store,
            &config,
            deadline,
        )
        .await
        .unwrap();
        if outcome.response.is_success() {
            break;
        }
    }
    assert!(invocations > 1, "the batch needed several invocations");
    let given_up = fanout.given_up();
    println!("records given up on at a deadline: {given_up}");
    setup
        .consume(&stream)
        .await
        .assert_once_but_given_up(&batch, true, given_up);
}

#[tokio::test]
async fn a_resharded_destination_gets_every_record_once_and_the_map_is_listed_again() {
    let setup = Setup::new().await;
    let stream = setup.streams(1, 2).await.remove(0);
    let (client, counter) = setup.client(None);
    let fanout = setup.fanout(vec![setup.sink(&client, &stream, DeliveryOrder::Ordered)]);
    let all = records(0, 3_000, 300);
    setup.run_all(&fanout, &all[..1_000], 1_000).await;
    let parent = kinesis::list_shards(&setup.direct, &stream).await.remove(0);
    kinesis::split_shard(&setup.direct, &stream, &parent.shard_id).await;
    // The sink's cached map still names the closed parent: its aggregates land
    // on one child each, some records on the sibling of theirs.
    setup.run_all(&fanout, &all[1_000..2_000], 1_000).await;
    assert_eq!(counter.get("ListShards"), 1);
    setup.run_all(&fanout, &all[2_000..], 1_000).await;
    assert_eq!(
        counter.get("ListShards"),
        2,
        "listed again after the misplaced aggregates"
    );

    let consumed = setup.consume(&stream).await;
    consumed.assert_exactly_once(&all, false);
    let misplaced = consumed.misplaced();
    assert!(
        !misplaced.is_empty(),
        "the stale map put records on a sibling shard"
    );
    let index = |r: &Record| -> usize {
        std::str::from_utf8(&r.data[4..10])
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        misplaced.iter().all(|r| (1_000..2_000).contains(&index(r))),
        "only the batch sent on the stale map is misplaced"
    );
    // Within each shard, each key keeps its order.
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (shard, r) in &consumed.records {
        let previous = last.insert((&shard.shard_id, &r.partition_key), index(r));
        assert!(
            previous.is_none_or(|p| p < index(r)),
            "key {} out of order in {}",
            r.partition_key,
            shard.shard_id
        );
    }
}

#[tokio::test]
async fn an_aggregate_refused_whole_is_sent_again_record_by_record() {
    let setup = Setup::new().await;
    let stream = setup.streams(1, 1).await.remove(0);
    // The proxy refuses a whole PutRecords holding a partition key over 8
    // characters, as Kinesis does: here the aggregate's own key (its first record's).
    let proxy = FaultProxy::start(
        &setup.emulators.kinesis_endpoint,
        &Faults {
            max_partition_key: 8,
            ..Faults::default()
        },
    );
    let (client, _) = setup.client(Some(&proxy.endpoint));
    let fanout = setup.fanout(vec![setup.sink(
        &client,
        &stream,
        DeliveryOrder::Throughput,
    )]);
    let mut batch = records(0, 20, 5);
    batch[0].partition_key = "much-too-long".into();
    let outcome = setup.run(&fanout, &batch, Duration::from_secs(60)).await;
    assert!(outcome.response.is_success(), "{:?}", outcome.report);
    assert_eq!(
        outcome.report.quarantined_permanent, 1,
        "{:?}",
        outcome.report
    );
    let quarantined = setup.store.quarantined("fanout").await.unwrap();
    assert_eq!(quarantined[0].sequence_number, batch[0].sequence_number);
    let consumed = setup.consume(&stream).await;
    consumed.assert_exactly_once(&batch[1..], true);
    assert_eq!(consumed.kinesis_records, 19, "the others went as they are");
}

//! Fan-out benchmark against kinesis-mock: 10,000 records to 3 streams (4
//! shards each), in batches of 1,000, for each delivery order and two key
//! spreads, plain and aggregated (`FANOUT_AGGREGATE=on`). Prints PutRecords
//! requests, the fewest the limits allow, the Kinesis records the destinations
//! hold, and wall time, a JSON line per cell. Needs the emulators:
//! `scripts/bench.sh` runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline::decode::decode_event;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{DeliveryOrder, FanOut, Sink, StaticDestinations};
use shardline::state::DynamoDbStore;
use shardline::{Deadline, EngineConfig, process_event};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::{Emulators, RequestCounter, kinesis, unique_name};

const RECORDS: u64 = 10_000;
const BATCH: usize = 1_000;
const DESTINATIONS: usize = 3;

/// PutRecords made, Kinesis records put (per destination), wall time.
async fn run(order: DeliveryOrder, keys: u64, aggregate: bool) -> (u64, u64, Duration) {
    let emulators = Emulators::from_env();
    let direct = emulators.kinesis();
    let mut streams = Vec::new();
    for _ in 0..DESTINATIONS {
        let name = unique_name("bench");
        kinesis::create_stream(&direct, &name, 4).await;
        streams.push(name);
    }
    let store = DynamoDbStore::new(emulators.dynamodb(), unique_name("bench"));
    store.create_table().await.unwrap();
    let counter = RequestCounter::new();
    let client = aws_sdk_kinesis::Client::from_conf(
        emulators
            .kinesis_config()
            .interceptor(counter.clone())
            .build(),
    );
    let sinks: Vec<Arc<dyn Sink>> = streams
        .iter()
        .map(|s| {
            let sink = KinesisSink::new(client.clone(), s.clone())
                .order(order)
                .aggregate(aggregate);
            Arc::new(sink) as Arc<dyn Sink>
        })
        .collect();
    let fanout = FanOut::new(StaticDestinations(sinks), 1024 * 1024);
    let records = made_up(
        0,
        RECORDS,
        |i| format!("user-{}", i % keys),
        |i| format!("{{\"user\":{},\"n\":{i}}}", i % keys).into_bytes(),
    );
    let config = EngineConfig::new("bench");
    let started = Instant::now();
    for chunk in records.chunks(BATCH) {
        let json = event(&stream_arn("source"), "shardId-000000000000", chunk);
        let outcome = process_event(
            decode_event(&json).unwrap(),
            &fanout,
            &store,
            &config,
            Deadline::after(Duration::from_secs(300)),
        )
        .await
        .unwrap();
        assert!(outcome.response.is_success());
    }
    let elapsed = started.elapsed();
    let mut put = 0;
    for shard in kinesis::list_shards(&direct, &streams[0]).await {
        put += kinesis::read_shard(&direct, &streams[0], &shard.shard_id)
            .await
            .records
            .len() as u64;
    }
    for stream in &streams {
        kinesis::delete_stream(&direct, stream).await;
    }
    (counter.get("PutRecords"), put, elapsed)
}

/// The fewest PutRecords the limits allow: per batch and destination, 500
/// records and 5 MiB a request.
fn minimum_requests() -> u64 {
    let batch_bytes: u64 = made_up(
        0,
        BATCH as u64,
        |i| format!("user-{i}"),
        |i| format!("{{\"user\":{i},\"n\":{i}}}").into_bytes(),
    )
    .iter()
    .map(|r| (r.data.len() + r.partition_key.len()) as u64)
    .sum();
    let per_batch = (BATCH as u64)
        .div_ceil(500)
        .max(batch_bytes.div_ceil(5 << 20));
    per_batch * RECORDS.div_ceil(BATCH as u64) * DESTINATIONS as u64
}

/// One JSON line per cell: order, keys, PutRecords, the minimum, wall time.
#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let minimum = minimum_requests();
    for aggregate in [false, true] {
        for keys in [500u64, 10] {
            for order in [DeliveryOrder::Ordered, DeliveryOrder::Throughput] {
                let (requests, put, wall) = run(order, keys, aggregate).await;
                println!(
                    "{}",
                    serde_json::json!({
                        "records": RECORDS, "destinations": DESTINATIONS, "batch": BATCH,
                        "order": format!("{order:?}").to_lowercase(), "keys": keys,
                        "aggregate": aggregate, "put_records": requests, "minimum": minimum,
                        "kinesis_records": put, "wall_ms": wall.as_secs_f64() * 1e3,
                    })
                );
            }
        }
    }
}

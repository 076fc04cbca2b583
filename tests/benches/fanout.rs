//! Fan-out benchmark against kinesis-mock: 10,000 records to 3 streams (4
//! shards each), in batches of 1,000, for each delivery order and two key
//! spreads. Prints PutRecords requests and wall time. Needs the emulators:
//! run it with `scripts/bench-fanout.sh`.

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

async fn run(order: DeliveryOrder, keys: u64) -> (u64, Duration) {
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
            Arc::new(KinesisSink::new(client.clone(), s.clone()).order(order)) as Arc<dyn Sink>
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
    for stream in &streams {
        kinesis::delete_stream(&direct, stream).await;
    }
    (counter.get("PutRecords"), elapsed)
}

#[tokio::main]
async fn main() {
    println!(
        "fan-out of {RECORDS} records to {DESTINATIONS} streams, batches of {BATCH} (kinesis-mock on loopback)"
    );
    println!(
        "{:<11} {:>6} {:>12} {:>10} {:>12}",
        "order", "keys", "PutRecords", "wall", "records/s"
    );
    let mut rows = Vec::new();
    for keys in [500u64, 10] {
        for order in [DeliveryOrder::Ordered, DeliveryOrder::Throughput] {
            let (requests, wall) = run(order, keys).await;
            let rate = (RECORDS * DESTINATIONS as u64) as f64 / wall.as_secs_f64();
            println!(
                "{:<11} {keys:>6} {requests:>12} {:>9.2}s {rate:>12.0}",
                format!("{order:?}"),
                wall.as_secs_f64()
            );
            rows.push((order, keys, wall));
        }
    }
    for keys in [500u64, 10] {
        let wall = |o| {
            rows.iter()
                .find(|r| r.0 == o && r.1 == keys)
                .map(|r| r.2.as_secs_f64())
                .unwrap_or(0.0)
        };
        println!(
            "keys {keys}: ordered takes {:.2}x the time of throughput",
            wall(DeliveryOrder::Ordered) / wall(DeliveryOrder::Throughput)
        );
    }
}

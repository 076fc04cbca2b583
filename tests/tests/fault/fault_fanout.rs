//! The fan-out under faults, through `shardline-cli source` against kinesis-mock,
//! with Shardline's state in moto: 2,000 records (`SHARDLINE_FAULT_FANOUT_RECORDS`;
//! the test command's size, 4,000 before, more for a soak) over 150 keys into a 2-shard
//! stream (half waiting before the source starts), a split and a merge during
//! the run, two destination streams behind a proxy that fails 12% of PutRecords
//! entries and 2% of whole requests, and 5% of DynamoDB requests failed. At the
//! end each destination holds every record exactly once and, in ordered mode,
//! each key's records in order. One run packs the destinations' records into
//! KPL aggregates (`FANOUT_AGGREGATE=on`); its destinations are read as a
//! consumer that deaggregates reads them. The ordered run with two batches per
//! shard runs on Lambda Managed Instances: one function process serves every
//! shard's batches, up to eight at once.
//!
//! Exactly once holds while the function's processes live: what reached a
//! destination is written beside the checkpoint, so a Lambda retry sends only
//! the rest. A process killed between a PutRecords and that write cannot know
//! whether the put landed, and Kinesis has no idempotent put: the retry sends
//! it again. The run with kills asserts that nothing is lost and each key's
//! first copies are in order, and reports the duplicates.
//!
//! `SHARDLINE_FAULT_SEED` replays a run; `SHARDLINE_SOAK_MINUTES` repeats runs
//! with new seeds for that long.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shardline::decode::kpl::{UserRecord, user_records};
use shardline::state::DynamoDbStore;
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::kinesis;
use shardline_tests::source::{self, Running, binaries, report, source_command};
use shardline_tests::workload::{put, put_while_resharding, resharded};
use shardline_tests::{Emulators, unique_name};

/// Records per run in the test command; `SHARDLINE_FAULT_FANOUT_RECORDS`
/// sets another size (at least one per key).
const RECORDS_IN_CI: usize = 2_000;

/// Records per run.
fn record_count() -> usize {
    source::size("SHARDLINE_FAULT_FANOUT_RECORDS", RECORDS_IN_CI, KEYS)
}
const KEYS: usize = 150;

/// One run's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    parallelization: u32,
    ordered: bool,
    kill_rate: f64,
    aggregate: bool,
    /// Invocations one function process serves at once (Lambda Managed
    /// Instances; 1: classic Lambda).
    at_once: u32,
}

/// The records: per key, `n` from 1.
fn records() -> Vec<(String, String)> {
    let mut next = vec![0u64; KEYS];
    (0..record_count())
        .map(|i| {
            let k = (i * 13 + i / KEYS) % KEYS;
            next[k] += 1;
            let key = format!("key-{k:03}");
            let payload = format!(r#"{{"k":"{key}","n":{},"id":{i}}}"#, next[k]);
            (key, payload)
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Copied {
    k: String,
    n: u64,
    id: usize,
}

/// What one destination got wrong.
#[derive(Debug, Default, PartialEq, Eq)]
struct Damage {
    lost: usize,
    duplicated: usize,
    out_of_order: usize,
    /// Kinesis records read (an aggregate is one).
    kinesis_records: usize,
}

/// Reads every shard of `destination` and counts the damage.
async fn check(client: &aws_sdk_kinesis::Client, destination: &str) -> Damage {
    let mut copies = vec![0usize; record_count()];
    let mut damage = Damage::default();
    for shard in kinesis::list_shards(client, destination).await {
        let read = kinesis::read_shard(client, destination, &shard.shard_id).await;
        // Each key hashes to one shard, so a shard's order is each key's order.
        let mut last: HashMap<String, u64> = HashMap::new();
        damage.kinesis_records += read.records.len();
        let users = read
            .records
            .into_iter()
            .flat_map(|r| user_records(UserRecord::new(r.partition_key, r.data)));
        for record in users {
            let copied: Copied = serde_json::from_slice(&record.data).unwrap();
            copies[copied.id] += 1;
            let last = last.entry(copied.k).or_default();
            // A repeated copy is a duplicate, not a reordering: order is judged
            // on first copies.
            if copies[copied.id] == 1 {
                if copied.n != *last + 1 {
                    damage.out_of_order += 1;
                }
                *last = copied.n;
            }
        }
    }
    damage.lost = copies.iter().filter(|c| **c == 0).count();
    damage.duplicated = copies.iter().map(|c| c.saturating_sub(1)).sum();
    damage
}

async fn run(shape: Shape, seed: u64) {
    let emulators = Emulators::from_env();
    let client = emulators.kinesis();
    let stream = unique_name("fault-fanout");
    kinesis::create_stream(&client, &stream, 2).await;
    let destinations = [unique_name("fanout-to-a"), unique_name("fanout-to-b")];
    for destination in &destinations {
        kinesis::create_stream(&client, destination, 2).await;
    }
    let table = unique_name("fanout-state");
    DynamoDbStore::new(emulators.dynamodb(), &table)
        .create_table()
        .await
        .unwrap();
    let kinesis_faults = Faults {
        entry_failure_rate: 0.12,
        request_failure_rate: 0.02,
        seed,
        ..Faults::default()
    };
    let kinesis_proxy = FaultProxy::start(&emulators.kinesis_endpoint, &kinesis_faults);
    let dynamodb_proxy = FaultProxy::dynamodb(&emulators.dynamodb_endpoint, 0.05, seed);

    let bins = binaries();
    let mut command = source_command(&stream, 6, seed);
    command
        .args(["--batch-size", "100", "--function-timeout", "60"])
        .args(["--kill-rate", &shape.kill_rate.to_string()])
        .args([
            "--per-execution-environment-max-concurrency",
            &shape.at_once.to_string(),
        ])
        .args([
            "--parallelization-factor",
            &shape.parallelization.to_string(),
        ])
        .arg("--")
        .arg(&bins.fanout)
        .env("AWS_ENDPOINT_URL_KINESIS", &kinesis_proxy.endpoint)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb_proxy.endpoint)
        .env("SHARDLINE_STATE_TABLE", &table)
        .env("SHARDLINE_MAX_ATTEMPTS", "10000")
        .env("SHARDLINE_METRICS", "off")
        .env("SHARDLINE_LOG", "error")
        .env("FANOUT_SINK", "kinesis")
        .env("FANOUT_DESTINATIONS", destinations.join(","))
        .env(
            "FANOUT_AGGREGATE",
            if shape.aggregate { "on" } else { "off" },
        )
        .env(
            "FANOUT_ORDER",
            if shape.ordered {
                "ordered"
            } else {
                "throughput"
            },
        );
    if shape.parallelization > 1 {
        command.env("SHARDLINE_PROGRESS", "partition-key");
    }

    let records = records();
    let (backlog, rest) = records.split_at(records.len() / 2);
    put(&client, &stream, backlog).await;
    let started = Instant::now();
    let source = Running::start(command);
    let lineage = put_while_resharding(&client, &stream, rest).await;
    let summary = tokio::task::spawn_blocking(move || source.summary(Duration::from_secs(900)))
        .await
        .unwrap();

    let mut damages = Vec::new();
    for destination in &destinations {
        damages.push(check(&client, destination).await);
    }
    let stats = kinesis_proxy.stats();
    let injected = stats["injected_entry_failures"].as_u64().unwrap_or(0)
        + stats["injected_request_failures"].as_u64().unwrap_or(0);
    let injected_dynamodb = dynamodb_proxy.stats()["injected_dynamodb_failures"]
        .as_u64()
        .unwrap_or(0);
    let sum = |f: fn(&Damage) -> usize| damages.iter().map(f).sum::<usize>();
    report(&format!(
        "fault-fanout pf={} order={} aggregate={} kill-rate={} per-process={} seed={seed}: records {} x {} destinations, \
         invocations {} crashes {} injected PutRecords faults {injected} DynamoDB faults {injected_dynamodb} \
         | lost {} duplicated {} out of order {} | {:.1}s",
        shape.parallelization,
        if shape.ordered {
            "ordered"
        } else {
            "throughput"
        },
        shape.aggregate,
        shape.kill_rate,
        shape.at_once,
        record_count(),
        destinations.len(),
        summary["invocations"],
        summary["crashes"],
        sum(|d| d.lost),
        sum(|d| d.duplicated),
        sum(|d| d.out_of_order),
        started.elapsed().as_secs_f64()
    ));
    assert!(resharded(&lineage), "a split and a merge: {lineage:?}");
    let (entries, failed_entries) = (
        stats["put_records_entries"].as_u64().unwrap_or(0),
        stats["injected_entry_failures"].as_u64().unwrap_or(0),
    );
    // Aggregates are few entries: their share of failures varies more.
    let share = if shape.aggregate { 20 } else { 10 };
    assert!(
        failed_entries * share >= entries,
        "at least 1/{share} of PutRecords entries failed: {stats}"
    );
    assert_eq!(sum(|d| d.lost), 0, "{damages:?}");
    if shape.ordered {
        assert_eq!(sum(|d| d.out_of_order), 0, "{damages:?}");
    }
    if shape.aggregate {
        let put = sum(|d| d.kinesis_records);
        assert!(
            put * 4 < record_count() * destinations.len(),
            "few aggregates: {damages:?}"
        );
    }
    if shape.kill_rate == 0.0 {
        assert_eq!(sum(|d| d.duplicated), 0, "{damages:?}");
    } else {
        let (crashes, invocations) = (
            summary["crashes"].as_u64().unwrap(),
            summary["invocations"].as_u64().unwrap(),
        );
        assert!(
            crashes * 20 >= invocations,
            "at least 5% of invocations killed: {summary}"
        );
    }
}

/// One run of `shape`, or a soak of them; each shape has its own first seed.
async fn runs(shape: Shape) {
    let first = 11
        + u64::from(shape.parallelization)
        + u64::from(shape.ordered)
        + 7 * u64::from(shape.aggregate);
    source::runs(first, |seed| run(shape, seed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_with_one_batch_per_shard_delivers_exactly_once_in_order() {
    runs(Shape {
        parallelization: 1,
        ordered: true,
        kill_rate: 0.0,
        aggregate: false,
        at_once: 1,
    })
    .await;
}

/// On Lambda Managed Instances: one process serves every shard's batches, up
/// to eight at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_with_two_batches_per_shard_in_one_process_at_eight_at_once_delivers_exactly_once_in_order()
 {
    runs(Shape {
        parallelization: 2,
        ordered: true,
        kill_rate: 0.0,
        aggregate: false,
        at_once: 8,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_one_batch_per_shard_delivers_exactly_once() {
    runs(Shape {
        parallelization: 1,
        ordered: false,
        kill_rate: 0.0,
        aggregate: false,
        at_once: 1,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_two_batches_per_shard_delivers_exactly_once() {
    runs(Shape {
        parallelization: 2,
        ordered: false,
        kill_rate: 0.0,
        aggregate: false,
        at_once: 1,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_processes_lose_nothing_and_keep_each_keys_first_copies_in_order() {
    runs(Shape {
        parallelization: 2,
        ordered: true,
        kill_rate: 0.25,
        aggregate: false,
        at_once: 1,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_ordered_delivers_every_user_record_exactly_once_in_order() {
    runs(Shape {
        parallelization: 1,
        ordered: true,
        kill_rate: 0.0,
        aggregate: true,
        at_once: 1,
    })
    .await;
}

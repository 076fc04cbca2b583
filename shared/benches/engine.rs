//! The engine on a 10,000-record event: decode (base64, KPL deaggregation) plus
//! the batch loop and its one commit, with a trivial handler, against the
//! embedded SQLite store in a temporary folder.
//!
//! Two payloads, plain JSON or KPL aggregates of 100 user records each, and for
//! each a fresh consumer (every record is handled, then checkpointed) or a
//! replay (every record is skipped as checkpointed); plus the decode alone.
//!
//! `cargo bench -p shardline-lambda --bench engine` prints criterion's figures (the
//! `thrpt` line is records/s) and a closing table of records/s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use shardline::decode::decode_event;
use shardline::decode::kpl::{UserRecord, aggregate};
use shardline::sample::{SampleRecord, event_bytes};
use shardline::state::EmbeddedStore;
use shardline::{BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Record};

const RECORDS: usize = 10_000;
const PER_AGGREGATE: usize = 100;
const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/bench";

/// A handler that touches the payload and succeeds.
struct Trivial;

impl Handler for Trivial {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        std::hint::black_box(record.data.len());
        Ok(())
    }
}

fn seq(i: usize) -> String {
    format!("49590338271490256608559692538361571095921575989136{i:06}")
}

fn payload(i: usize) -> String {
    format!(
        r#"{{"account":"A{}","seq":{},"amount":{},"txn":"t-{i}"}}"#,
        i % 100,
        i / 100 + 1,
        (i % 7) as i64 * 100 - 300
    )
}

fn kinesis_record(i: usize, data: &[u8], partition_key: &str) -> SampleRecord {
    SampleRecord::new(seq(i), data)
        .key(partition_key)
        .shard(STREAM, "shardId-000000000000")
}

/// 10,000 plain records with ledger-like JSON payloads.
fn plain_event() -> Vec<u8> {
    let records: Vec<_> = (0..RECORDS)
        .map(|i| kinesis_record(i, payload(i).as_bytes(), &format!("A{}", i % 100)))
        .collect();
    event_bytes(&records)
}

/// 100 Kinesis records, each a KPL aggregate of 100 user records: 10,000 user records.
fn kpl_event() -> Vec<u8> {
    let records: Vec<_> = (0..RECORDS / PER_AGGREGATE)
        .map(|a| {
            let users: Vec<UserRecord> = (0..PER_AGGREGATE)
                .map(|u| {
                    let i = a * PER_AGGREGATE + u;
                    UserRecord {
                        partition_key: format!("A{}", i % 100),
                        explicit_hash_key: None,
                        data: Bytes::from(payload(i)),
                    }
                })
                .collect();
            kinesis_record(a, &aggregate(&users), &format!("agg-{a}"))
        })
        .collect();
    event_bytes(&records)
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    store: EmbeddedStore,
    dir: PathBuf,
    fresh: AtomicU64,
}

impl Bench {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "shardline-bench-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let store = EmbeddedStore::open(&dir).expect("the embedded store opens");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Bench {
            runtime,
            store,
            dir,
            fresh: AtomicU64::new(0),
        }
    }

    /// Decodes `event` and processes it as `consumer`.
    fn run(&self, event: &[u8], consumer: &str) -> BatchOutcome {
        self.runtime.block_on(async {
            let decoded = decode_event(event).expect("the bench event decodes");
            let config = EngineConfig::new(consumer);
            shardline::process_event(decoded, &Trivial, &self.store, &config, Deadline::none())
                .await
                .expect("the engine runs")
        })
    }

    /// A consumer name never used before: nothing is checkpointed for it.
    fn fresh_consumer(&self) -> String {
        format!("fresh-{}", self.fresh.fetch_add(1, Ordering::Relaxed))
    }

    fn run_fresh(&self, event: &[u8]) -> BatchOutcome {
        let outcome = self.run(event, &self.fresh_consumer());
        assert_eq!(outcome.report.processed, RECORDS as u64);
        outcome
    }

    fn run_replay(&self, event: &[u8], consumer: &str) -> BatchOutcome {
        let outcome = self.run(event, consumer);
        assert_eq!(outcome.report.skipped_checkpointed, RECORDS as u64);
        outcome
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Case {
    name: &'static str,
    event: Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "plain",
            event: plain_event(),
        },
        Case {
            name: "kpl",
            event: kpl_event(),
        },
    ]
}

fn bench_engine(c: &mut Criterion, bench: &Bench, cases: &[Case]) {
    let mut group = c.benchmark_group("engine_10k");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(RECORDS as u64));
    for case in cases {
        // The decode alone, to see what the engine and the store add to it.
        group.bench_function(format!("{}/decode-only", case.name), |b| {
            b.iter(|| decode_event(&case.event).expect("the bench event decodes"))
        });
        group.bench_function(format!("{}/fresh", case.name), |b| {
            b.iter(|| bench.run_fresh(&case.event))
        });
        let replay = format!("replay-{}", case.name);
        bench.run_fresh_as(&case.event, &replay);
        group.bench_function(format!("{}/replay", case.name), |b| {
            b.iter(|| bench.run_replay(&case.event, &replay))
        });
    }
    group.finish();
}

impl Bench {
    /// Processes `event` once as `consumer`, so later runs replay it.
    fn run_fresh_as(&self, event: &[u8], consumer: &str) {
        let outcome = self.run(event, consumer);
        assert_eq!(outcome.report.processed, RECORDS as u64);
    }
}

/// A plain records/s table: the median of a few timed runs of each case.
fn summary(bench: &Bench, cases: &[Case]) {
    const RUNS: usize = 5;
    let median_rate = |run: &dyn Fn()| {
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed()
            })
            .collect();
        times.sort();
        let median = times[RUNS / 2];
        (RECORDS as f64 / median.as_secs_f64(), median)
    };
    println!(
        "\nShardline engine, {RECORDS} records per event (decode + engine + commit), median of {RUNS}:"
    );
    println!(
        "{:<8} {:<7} {:>14} {:>12}",
        "payload", "state", "records/s", "per event"
    );
    for case in cases {
        let replay = format!("replay-{}", case.name);
        let (fresh_rate, fresh_time) = median_rate(&|| {
            bench.run_fresh(&case.event);
        });
        let (replay_rate, replay_time) = median_rate(&|| {
            bench.run_replay(&case.event, &replay);
        });
        println!(
            "{:<8} {:<7} {:>14.0} {:>9.1} ms",
            case.name,
            "fresh",
            fresh_rate,
            fresh_time.as_secs_f64() * 1e3
        );
        println!(
            "{:<8} {:<7} {:>14.0} {:>9.1} ms",
            case.name,
            "replay",
            replay_rate,
            replay_time.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let bench = Bench::new();
    let cases = cases();
    let mut criterion = Criterion::default().configure_from_args();
    bench_engine(&mut criterion, &bench, &cases);
    criterion.final_summary();
    // `cargo test --benches` / `cargo bench -- --test` only check that it runs.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--test" || a == "--list") {
        summary(&bench, &cases);
    }
}

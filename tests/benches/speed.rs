//! Engine speed: the ledger workload (`shardline_tests::speed`) through the
//! bare loops (the limit) and through Shardline, at three boundaries:
//!
//! - `records`: the payloads already decoded; parse each record's JSON and
//!   add up `amount` (Shardline: `process_event` on a decoded event, embedded
//!   store, one commit);
//! - `parse`: the event JSON to records (Shardline: `decode_event`, which also
//!   decodes base64 and checks for KPL aggregates);
//! - `raw`: from the event's bytes to the sum (Shardline: `decode_event` +
//!   `process_event`).
//!
//! Writes the events to `target/bench-speed/` for the peers' scripts and prints
//! one JSON line per event and per measurement (medians after warm-up);
//! `scripts/bench.sh` turns them into BENCHMARKS.md. Fails only when a sum is
//! wrong.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine as _;
use serde::Deserialize;
use shardline::decode::{DecodeOptions, DecodedEvent, decode_event_with};
use shardline::state::EmbeddedStore;
use shardline::{Deadline, EngineConfig, Handler, HandlerError, Record, process_event};
use shardline_tests::TempDir;
use shardline_tests::speed::{SpeedEvent, Txn, expected_sum};

const WARM_UPS: usize = 3;
const RUNS: usize = 15;

/// The envelope as a bare loop reads it: borrowed strings, nothing else kept.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<EventRecord<'a>>,
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(borrow)]
    kinesis: Kinesis<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kinesis<'a> {
    #[serde(borrow)]
    partition_key: &'a str,
    #[serde(borrow)]
    sequence_number: &'a str,
    #[serde(borrow)]
    data: &'a str,
}

fn sum_serde(payloads: &[Vec<u8>]) -> i64 {
    payloads
        .iter()
        .map(|p| serde_json::from_slice::<Txn>(p).expect("a txn").amount)
        .sum()
}

fn sum_sonic(payloads: &[Vec<u8>]) -> i64 {
    payloads
        .iter()
        .map(|p| sonic_rs::from_slice::<Txn>(p).expect("a txn").amount)
        .sum()
}

fn decode_payloads(event: &Event<'_>) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    event
        .records
        .iter()
        .map(|r| {
            std::hint::black_box((r.kinesis.partition_key, r.kinesis.sequence_number));
            b64.decode(r.kinesis.data).expect("base64")
        })
        .collect()
}

fn bare_serde_parse(bytes: &[u8]) -> Vec<Vec<u8>> {
    decode_payloads(&serde_json::from_slice::<Event<'_>>(bytes).expect("the event"))
}

fn bare_sonic_parse(bytes: &[u8]) -> Vec<Vec<u8>> {
    decode_payloads(&sonic_rs::from_slice::<Event<'_>>(bytes).expect("the event"))
}

/// Shardline's handler for the workload: parse the record, add its amount.
#[derive(Default)]
struct Sum(AtomicI64);

impl Handler for Sum {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let txn: Txn = serde_json::from_slice(&record.data).map_err(HandlerError::permanent)?;
        self.0.fetch_add(txn.amount, Ordering::Relaxed);
        Ok(())
    }
}

struct Engine {
    runtime: tokio::runtime::Runtime,
    store: EmbeddedStore,
    consumers: AtomicU64,
    _dir: TempDir,
}

impl Engine {
    fn new() -> Self {
        let dir = TempDir::new("speed");
        Engine {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            store: EmbeddedStore::open(dir.path()).expect("the embedded store opens"),
            consumers: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// Processes `decoded` as a consumer never seen before; returns the sum.
    fn process(&self, decoded: DecodedEvent) -> i64 {
        let consumer = format!("speed-{}", self.consumers.fetch_add(1, Ordering::Relaxed));
        let config = EngineConfig::new(consumer);
        let handler = Sum::default();
        let records = decoded.items.len() as u64;
        let outcome = self
            .runtime
            .block_on(process_event(
                decoded,
                &handler,
                &self.store,
                &config,
                Deadline::none(),
            ))
            .expect("the engine runs");
        assert_eq!(outcome.report.processed, records, "every record processed");
        handler.0.load(Ordering::Relaxed)
    }
}

/// Median and best of [`RUNS`] timed runs after [`WARM_UPS`]; `setup` runs
/// untimed before each. Every run's result must equal `want`.
fn measure<S, T: FnMut() -> S, F: FnMut(S) -> i64>(
    want: i64,
    mut setup: T,
    mut run: F,
) -> (f64, f64) {
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..WARM_UPS + RUNS {
        let input = setup();
        let started = Instant::now();
        let sum = run(input);
        let took = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(sum, want, "a wrong sum");
        if i >= WARM_UPS {
            times.push(took);
        }
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], times[0])
}

fn line(implementation: &str, boundary: &str, event: &SpeedEvent, (median, best): (f64, f64)) {
    println!(
        "{}",
        serde_json::json!({
            "impl": implementation, "boundary": boundary, "event": event.name,
            "median_ms": median, "best_ms": best, "sum": expected_sum(event.records),
        })
    );
}

fn bare(event: &SpeedEvent, want: i64) {
    let bytes = &event.bytes[..];
    let payloads = bare_serde_parse(bytes);
    let len = |p: Vec<Vec<u8>>| p.len() as i64;
    let records = event.records as i64;
    line(
        "bare-serde",
        "records",
        event,
        measure(want, || (), |()| sum_serde(&payloads)),
    );
    line(
        "bare-serde",
        "parse",
        event,
        measure(records, || (), |()| len(bare_serde_parse(bytes))),
    );
    line(
        "bare-serde",
        "raw",
        event,
        measure(want, || (), |()| sum_serde(&bare_serde_parse(bytes))),
    );
    line(
        "bare-sonic",
        "records",
        event,
        measure(want, || (), |()| sum_sonic(&payloads)),
    );
    line(
        "bare-sonic",
        "parse",
        event,
        measure(records, || (), |()| len(bare_sonic_parse(bytes))),
    );
    line(
        "bare-sonic",
        "raw",
        event,
        measure(want, || (), |()| sum_sonic(&bare_sonic_parse(bytes))),
    );
}

fn shardline(engine: &Engine, event: &SpeedEvent, want: i64, threads: usize) {
    let name = format!("shardline-{threads}t");
    let options = DecodeOptions::default().threads(threads);
    let decode = || decode_event_with(&event.bytes, &options).expect("the event decodes");
    let records = event.records as i64;
    if threads == 1 {
        let decoded = decode();
        line(
            &name,
            "records",
            event,
            measure(want, || decoded.clone(), |d| engine.process(d)),
        );
    }
    line(
        &name,
        "parse",
        event,
        measure(records, || (), |()| decode().items.len() as i64),
    );
    line(
        &name,
        "raw",
        event,
        measure(want, || (), |()| engine.process(decode())),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-speed");
    let engine = Engine::new();
    if let Ok(what) = std::env::var("SPEED_PROFILE") {
        return profile(&engine, &what);
    }
    for event in SpeedEvent::both() {
        let path = event.write_to(&out).expect("the event file is written");
        let want = expected_sum(event.records);
        println!(
            "{}",
            serde_json::json!({
                "event": event.name, "records": event.records, "bytes": event.bytes.len(),
                "path": path.canonicalize().unwrap_or(path), "sum": want,
            })
        );
        bare(&event, want);
        shardline(&engine, &event, want, 1);
        shardline(&engine, &event, want, 2);
    }
}

/// `SPEED_PROFILE=records|raw`: one Shardline boundary in a loop, for `perf record`.
fn profile(engine: &Engine, what: &str) {
    let event = &SpeedEvent::both()[0];
    let decoded = decode_event_with(&event.bytes, &DecodeOptions::default()).expect("decodes");
    for _ in 0..200 {
        let input = if what == "raw" {
            decode_event_with(&event.bytes, &DecodeOptions::default()).expect("decodes")
        } else {
            decoded.clone()
        };
        std::hint::black_box(engine.process(input));
    }
}

//! In-batch concurrency benchmark (`scripts/bench-concurrency.sh` runs it with
//! the emulators and the peers, and writes `BENCHMARKS.md`).
//!
//! 1. A handler that awaits a simulated 5 ms of I/O per record: 10,000 records
//!    over 1, 10, 100 and 1,000 keys, at concurrency 1, 8, 32, 128 and 1,000,
//!    through `process_event` on the embedded store.
//! 2. The `ledger` binary (`LEDGER_BIN`, a release build) on moto behind the
//!    fault proxy holding each DynamoDB request 5 ms: `LEDGER_RECORDS` records
//!    (default 2,000) over 10, 100 and 1,000 accounts, one `invoke` each.
//!
//! Prints Markdown tables: wall time, and the speed-up over concurrency 1.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use shardline::decode::decode_event;
use shardline::state::EmbeddedStore;
use shardline::{Deadline, EngineConfig, Handler, HandlerError, Record, process_event};
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::{Emulators, TempDir, unique_name};

const RECORDS: u64 = 10_000;
const KEYS: [u64; 4] = [1, 10, 100, 1_000];
const CONCURRENCY: [usize; 5] = [1, 8, 32, 128, 1_000];

/// Awaits 5 ms per record, as a handler waiting on a database would.
struct SimulatedIo;

impl Handler for SimulatedIo {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let _: serde_json::Value = record.json().map_err(HandlerError::permanent)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

async fn simulated(keys: u64, concurrency: usize) -> Duration {
    let dir = TempDir::new("bench-concurrency");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let records = made_up(
        0,
        RECORDS,
        |i| format!("key-{}", i % keys),
        |i| format!("{{\"key\":{},\"n\":{i}}}", i % keys).into_bytes(),
    );
    let json = event(&stream_arn("bench"), "shardId-000000000000", &records);
    let mut config = EngineConfig::new("bench");
    config.concurrency = concurrency;
    let started = Instant::now();
    let outcome = process_event(
        decode_event(&json).unwrap(),
        &SimulatedIo,
        &store,
        &config,
        Deadline::none(),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(outcome.response.is_success());
    assert_eq!(outcome.report.processed, RECORDS);
    drop(store);
    took
}

/// Per row (keys or accounts), per concurrency, the wall time or why it failed.
type Rows = BTreeMap<u64, Vec<(usize, Result<Duration, String>)>>;

fn table(title: &str, rows: &Rows, unit: &str) {
    println!("\n{title}\n");
    let header: Vec<String> = CONCURRENCY
        .iter()
        .map(|c| format!("concurrency {c}"))
        .collect();
    println!("| {unit} | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(CONCURRENCY.len()));
    for (keys, cells) in rows {
        let serial = match cells.first() {
            Some((_, Ok(took))) => *took,
            _ => Duration::ZERO,
        };
        let cells: Vec<String> = cells
            .iter()
            .map(|(_, took)| match took {
                Ok(took) => format!(
                    "{:.0} ms ({:.0}×)",
                    took.as_secs_f64() * 1e3,
                    serial.as_secs_f64() / took.as_secs_f64()
                ),
                Err(why) => format!("failed: {why}"),
            })
            .collect();
        println!("| {keys} | {} |", cells.join(" | "));
    }
}

struct Ledger {
    binary: PathBuf,
    endpoint: String,
    dir: PathBuf,
}

impl Ledger {
    fn command(&self, consumer: &str, tables: &(String, String)) -> Command {
        let mut command = Command::new(&self.binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("SHARDLINE_STATE_DIR", &self.dir)
            .env("SHARDLINE_STATE_TABLE", &tables.0)
            .env("LEDGER_TABLE", &tables.1)
            .env("SHARDLINE_CONSUMER", consumer)
            .env("SHARDLINE_PARENT_GUARD", "off")
            .env("SHARDLINE_TIMEOUT_SECONDS", "900")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }

    /// One `invoke` of `records` transactions over `accounts`: its wall time,
    /// or why not every transaction was applied.
    fn run(&self, records: u64, accounts: u64, concurrency: usize) -> Result<Duration, String> {
        let tables = (unique_name("state"), unique_name("ledger"));
        let consumer = format!("bench-{accounts}-{concurrency}");
        let setup = self
            .command(&consumer, &tables)
            .arg("setup")
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        let txns = made_up(
            0,
            records,
            |i| format!("acct-{}", i % accounts),
            |i| {
                format!(
                    r#"{{"account":"acct-{}","seq":{},"amount":1,"txn":"t{i}"}}"#,
                    i % accounts,
                    i / accounts + 1
                )
                .into_bytes()
            },
        );
        let file = self.dir.join(format!("{consumer}.json"));
        std::fs::write(
            &file,
            event(&stream_arn("ledger"), "shardId-000000000000", &txns),
        )
        .unwrap();
        let started = Instant::now();
        let out = self
            .command(&consumer, &tables)
            .env("SHARDLINE_CONCURRENCY", concurrency.to_string())
            .arg("invoke")
            .arg(&file)
            .output()
            .unwrap();
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout.contains("\"batchItemFailures\":[]") {
            return Ok(took);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = stderr.lines().rev().find(|l| l.starts_with("ledger:"));
        Err(summary.unwrap_or("the invocation failed").to_owned())
    }
}

#[tokio::main]
async fn main() {
    let mut rows: Rows = BTreeMap::new();
    for keys in KEYS {
        for concurrency in CONCURRENCY {
            let took = simulated(keys, concurrency).await;
            eprintln!("simulated keys={keys} concurrency={concurrency}: {took:?}");
            rows.entry(keys).or_default().push((concurrency, Ok(took)));
        }
    }
    table(
        "Simulated 5 ms of I/O per record, 10,000 records, `process_event` on the embedded store (wall time, speed-up over concurrency 1):",
        &rows,
        "keys",
    );

    let Ok(binary) = std::env::var("LEDGER_BIN") else {
        eprintln!("LEDGER_BIN unset: the ledger part is left out");
        return;
    };
    let records: u64 = std::env::var("LEDGER_RECORDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2_000);
    let emulators = Emulators::from_env();
    let proxy = FaultProxy::start(
        &emulators.dynamodb_endpoint,
        &Faults {
            dynamodb_delay_ms: 5,
            ..Faults::default()
        },
    );
    let dir = TempDir::new("bench-ledger");
    let ledger = Ledger {
        binary: PathBuf::from(binary),
        endpoint: proxy.endpoint.clone(),
        dir: dir.path().to_path_buf(),
    };
    let mut rows: Rows = BTreeMap::new();
    for accounts in [10, 100, 1_000] {
        for concurrency in CONCURRENCY {
            let took = ledger.run(records, accounts, concurrency);
            eprintln!("ledger accounts={accounts} concurrency={concurrency}: {took:?}");
            rows.entry(accounts).or_default().push((concurrency, took));
        }
    }
    table(
        &format!(
            "The ledger on moto, each DynamoDB request held 5 ms by a proxy, {records} transactions, one `ledger invoke` (wall time, speed-up over concurrency 1):"
        ),
        &rows,
        "accounts",
    );
}

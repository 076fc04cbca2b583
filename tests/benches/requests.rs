//! AWS requests per batch: Shardline's DynamoDB state, counted at the fault
//! proxy (`scripts/fault_proxy.py`, no faults) in front of moto, for each mode
//! and batch size, first run and replay (the same batch again, as Lambda
//! resends it after a failure), plus a batch with one quarantined record.
//! Prints one JSON line per cell; `scripts/bench.sh` puts them beside
//! Powertools idempotency's (`scripts/peers/idempotency.py`, through the same
//! proxy). Needs the emulators.

use std::sync::Arc;
use std::time::Duration;

use shardline::sink::file::FileSink;
use shardline::sink::{FanOut, Sink, StaticDestinations};
use shardline::skip::DedupRule;
use shardline::state::DynamoDbStore;
use shardline::{EngineConfig, Handler, ProgressMode, Record};
use shardline_tests::fault_proxy::FaultProxy;
use shardline_tests::lambda::{EventRecord, made_up};
use shardline_tests::recorder::{Recorder, run_with};
use shardline_tests::{Emulators, TempDir, unique_name};

const SHARD: &str = "shardId-000000000000";

/// A state mode and its handler.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Checkpoint,
    PerKey,
    Dedup,
    FanOut,
    OneQuarantined,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Checkpoint => "checkpoint",
            Mode::PerKey => "per-key",
            Mode::Dedup => "dedup",
            Mode::FanOut => "fan-out",
            Mode::OneQuarantined => "one-quarantined",
        }
    }

    fn config(self) -> EngineConfig {
        let mut config = EngineConfig::new(unique_name(self.name()));
        match self {
            Mode::PerKey => config.progress = ProgressMode::PartitionKey,
            Mode::Dedup => {
                config.skip.dedup = Some(DedupRule {
                    key: Arc::new(|r: &Record| Some(String::from_utf8_lossy(&r.data).into_owned())),
                    window: Duration::from_secs(3600),
                });
            }
            _ => {}
        }
        config
    }
}

struct Bench {
    proxy: FaultProxy,
    store: DynamoDbStore,
    dir: TempDir,
}

impl Bench {
    async fn new() -> Self {
        let emulators = Emulators::from_env();
        let proxy = FaultProxy::dynamodb(&emulators.dynamodb_endpoint, 0.0, 1);
        let client = aws_sdk_dynamodb::Client::from_conf(
            emulators
                .dynamodb_config()
                .endpoint_url(&proxy.endpoint)
                .build(),
        );
        let store = DynamoDbStore::new(client, unique_name("requests"));
        store
            .create_table()
            .await
            .expect("the state table is created");
        Bench {
            proxy,
            store,
            dir: TempDir::new("requests"),
        }
    }

    fn requests(&self) -> u64 {
        self.proxy.stats()["dynamodb_requests"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Runs `records` through `handler` as `config`; the requests it took.
    async fn count<H: Handler>(
        &self,
        records: &[EventRecord],
        handler: &H,
        config: &EngineConfig,
    ) -> u64 {
        let before = self.requests();
        let outcome = run_with(records, SHARD, handler, &self.store, config).await;
        assert!(outcome.response.is_success(), "{:?}", outcome.response);
        self.requests() - before
    }

    fn fan_out(&self) -> FanOut {
        let sinks: Vec<Arc<dyn Sink>> = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let path = self
                    .dir
                    .path()
                    .join(format!("{}-{name}.jsonl", unique_name("fanout")));
                Arc::new(FileSink::new(*name, path)) as Arc<dyn Sink>
            })
            .collect();
        FanOut::new(StaticDestinations(sinks), 1 << 20)
    }

    async fn cell(&self, mode: Mode, n: u64) -> [u64; 2] {
        let records = made_up(
            0,
            n,
            |i| format!("key-{}", i % 100),
            |i| format!("r{i}").into_bytes(),
        );
        let config = mode.config();
        let mut counts = [0; 2];
        for count in &mut counts {
            *count = match mode {
                Mode::FanOut => self.count(&records, &self.fan_out(), &config).await,
                Mode::OneQuarantined => {
                    let handler = Recorder::default();
                    handler
                        .permanent
                        .lock()
                        .unwrap()
                        .push(format!("r{}", n / 2));
                    self.count(&records, &handler, &config).await
                }
                _ => self.count(&records, &Recorder::default(), &config).await,
            };
        }
        counts
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bench = Bench::new().await;
    let modes = [
        Mode::Checkpoint,
        Mode::PerKey,
        Mode::Dedup,
        Mode::FanOut,
        Mode::OneQuarantined,
    ];
    for n in [100u64, 1_000, 10_000] {
        for mode in modes {
            let [first, replay] = bench.cell(mode, n).await;
            for (run, requests) in [("first", first), ("replay", replay)] {
                println!(
                    "{}",
                    serde_json::json!({
                        "impl": "shardline", "mode": mode.name(), "records": n,
                        "run": run, "requests": requests,
                    })
                );
            }
        }
    }
}

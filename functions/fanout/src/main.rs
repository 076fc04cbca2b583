//! `fanout`: copies every record of the source stream to N Kinesis streams
//! (seed 001), never losing one (failed PutRecords entries are retried), never
//! writing one twice on a Lambda retry (progress per destination), in order per
//! partition key by default. KPL aggregates are fanned out as user records.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `FANOUT_DESTINATIONS` | comma-separated stream names or ARNs | none |
//! | `FANOUT_CONFIG_TABLE` | DynamoDB table of destinations by `source_arn` | unset |
//! | `FANOUT_CONFIG_TTL_SECONDS` | how long the table's answer is cached | 60 |
//! | `FANOUT_ORDER` | `ordered` (per key) or `throughput` | `ordered` |
//! | `FANOUT_MAX_RECORD_BYTES` | largest record the destinations take (to 10 MiB) | 1048576 |
//! | `FANOUT_SINK` | `kinesis`, or `file` (JSON lines in `FANOUT_OUTPUT_DIR`) | `kinesis` in Lambda or with an endpoint set, else `file` |
//! | `FANOUT_OUTPUT_DIR` | folder of the `file` sink | `$SHARDLINE_STATE_DIR/fanout` |

mod destinations;

use std::sync::Arc;
use std::time::Duration;

use shardline::config::{ConfigError, Settings, parse_var, process_env};
use shardline::entry::TableSpec;
use shardline::sink::file::FileSink;
use shardline::sink::kinesis::{KinesisSink, MAX_RECORD_BYTES_LIMIT};
use shardline::sink::{DeliveryOrder, FanOut, Sink};
use shardline::{App, BoxError};

use crate::destinations::{ConfigTable, ConfiguredDestinations, SinkFactory};

const CONFIG_TABLE: TableSpec = TableSpec {
    env_var: "FANOUT_CONFIG_TABLE",
    hash_key: "source_arn",
    range_key: Some("destination"),
    ttl_attribute: None,
};

/// Where records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkKind {
    Kinesis,
    File,
}

impl std::str::FromStr for SinkKind {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "kinesis" => Ok(SinkKind::Kinesis),
            "file" => Ok(SinkKind::File),
            _ => Err(()),
        }
    }
}

fn config_error(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        variable: variable.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    let settings = Settings::from_env()?;
    let env = &process_env;
    let fixed: Vec<String> = env("FANOUT_DESTINATIONS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    let config_table = env(CONFIG_TABLE.env_var).filter(|t| !t.is_empty());
    let order: DeliveryOrder = parse_var(
        env,
        "FANOUT_ORDER",
        "`ordered` or `throughput`",
        |_: &DeliveryOrder| true,
    )?
    .unwrap_or_default();
    let max_record_bytes = parse_var(
        env,
        "FANOUT_MAX_RECORD_BYTES",
        "bytes from 1 to 10485760",
        |b: &usize| (1..=MAX_RECORD_BYTES_LIMIT).contains(b),
    )?
    .unwrap_or(shardline::sink::DEFAULT_MAX_RECORD_BYTES);
    let ttl = parse_var(
        env,
        "FANOUT_CONFIG_TTL_SECONDS",
        "whole seconds",
        |_: &u64| true,
    )?
    .unwrap_or(60);
    let endpoint_set = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"]
        .iter()
        .any(|v| env(v).is_some_and(|e| !e.is_empty()));
    let default_kind = if shardline::config::in_lambda() || endpoint_set {
        SinkKind::Kinesis
    } else {
        SinkKind::File
    };
    let kind = parse_var(env, "FANOUT_SINK", "`kinesis` or `file`", |_: &SinkKind| {
        true
    })?
    .unwrap_or(default_kind);
    if fixed.is_empty() && config_table.is_none() {
        let hint = "stream names or ARNs, comma-separated (or set FANOUT_CONFIG_TABLE)";
        return Err(config_error("FANOUT_DESTINATIONS", "", hint).into());
    }

    let make: SinkFactory = match kind {
        SinkKind::Kinesis => {
            let client = shardline::aws::kinesis().await;
            Box::new(move |name: &str| -> Arc<dyn Sink> {
                Arc::new(
                    KinesisSink::new(client.clone(), name)
                        .order(order)
                        .max_record_bytes(max_record_bytes),
                )
            })
        }
        SinkKind::File => {
            let dir = env("FANOUT_OUTPUT_DIR")
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| settings.state_dir.join("fanout"));
            Box::new(move |name: &str| -> Arc<dyn Sink> {
                let file = name.rsplit(['/', ':']).next().unwrap_or(name);
                Arc::new(
                    FileSink::new(name, dir.join(format!("{file}.jsonl")))
                        .max_record_bytes(max_record_bytes),
                )
            })
        }
    };
    let table = match config_table {
        Some(table) => Some(ConfigTable {
            client: shardline::aws::dynamodb().await,
            table,
            ttl: Duration::from_secs(ttl),
        }),
        None => None,
    };
    let destinations = ConfiguredDestinations::new(fixed, table, make);
    App::new("fanout", FanOut::new(destinations, max_record_bytes))
        .table(CONFIG_TABLE)
        .command(
            "stats",
            "print this process's fan-out request and retry counts",
            stats,
        )
        .run()
        .await
}

async fn stats(fanout: Arc<FanOut>, _args: Vec<String>) -> Result<(), BoxError> {
    println!(
        "{{\"requests\":{},\"retried_entries\":{}}}",
        fanout.requests(),
        fanout.retried_entries()
    );
    Ok(())
}

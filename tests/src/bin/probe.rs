//! `probe`: a Lambda function for testing `shardline-cli source`, on the Lambda
//! runtime alone (no Shardline inside), that does what each record's payload
//! asks. A payload is `LABEL:COMMAND`; the commands:
//!
//! | command | the function... |
//! |---|---|
//! | `ok` (or none) | succeeds |
//! | `fail` / `fail-once` | reports the record in `batchItemFailures` (always / the first time it sees it) |
//! | `empty-id-once` | answers `{"batchItemFailures":[{"itemIdentifier":""}]}` the first time |
//! | `error` / `error-once` | returns a function error |
//! | `crash-once` | exits with status 3 |
//! | `sleep-once` | sleeps 30 s (past a short `--function-timeout`) |
//! | `slow` | sleeps 500 ms |
//!
//! Every invocation appends one JSON line to `PROBE_LOG` before acting: the
//! labels of its records, in order. "The first time" is read from that log.

use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// A record of the event: sequence number, label, command.
struct Item {
    sequence: String,
    label: String,
    command: String,
}

fn items(event: &Value) -> Vec<Item> {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    records
        .iter()
        .map(|r| {
            let data = r["kinesis"]["data"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let (label, command) = text.split_once(':').unwrap_or((&text, "ok"));
            Item {
                sequence: r["kinesis"]["sequenceNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                label: label.to_owned(),
                command: command.to_owned(),
            }
        })
        .collect()
}

/// Appends this invocation's labels to the log; says which labels the log
/// held before.
fn log(labels: &[&str]) -> Result<Vec<String>, Error> {
    let path = std::env::var("PROBE_LOG")?;
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    let seen = before
        .lines()
        .filter_map(|l| serde_json::from_str::<Vec<String>>(l).ok())
        .flatten()
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    file.write_all(format!("{}\n", json!(labels)).as_bytes())?;
    Ok(seen)
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let items = items(&event.payload);
    let labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    let seen = log(&labels)?;
    let first_time = |item: &Item| !seen.contains(&item.label);
    let mut failures = Vec::new();
    for item in &items {
        match item.command.as_str() {
            "fail" => failures.push(json!({"itemIdentifier": item.sequence})),
            "fail-once" if first_time(item) => {
                failures.push(json!({"itemIdentifier": item.sequence}))
            }
            "empty-id-once" if first_time(item) => {
                return Ok(json!({"batchItemFailures": [{"itemIdentifier": ""}]}));
            }
            "error" => return Err(format!("record {} asked for an error", item.label).into()),
            "error-once" if first_time(item) => {
                return Err(format!("record {} asked for an error once", item.label).into());
            }
            "crash-once" if first_time(item) => std::process::exit(3),
            "sleep-once" if first_time(item) => tokio::time::sleep(Duration::from_secs(30)).await,
            "slow" => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => {}
        }
    }
    Ok(json!({ "batchItemFailures": failures }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

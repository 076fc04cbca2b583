//! `SHARDLINE_KEY_PROGRESS_TTL_HOURS` through `ledger invoke` in per-key mode,
//! with Shardline's state in moto: the TTL of each key's progress item is the
//! setting's, and a value out of range stops the function naming the variable.

use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use shardline::state::DynamoDbStore;
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::{Emulators, unique_name};

/// `ledger invoke` of one batch of two accounts' transactions, with `ttl_hours`.
fn invoke(emulators: &Emulators, state_table: &str, ttl_hours: &str) -> Output {
    let dir = std::env::temp_dir().join(unique_name("ledger-ttl"));
    std::fs::create_dir_all(&dir).unwrap();
    let records = made_up(
        1,
        2,
        |i| format!("A{i}"),
        |i| format!(r#"{{"account":"A{i}","seq":1,"amount":100,"txn":"t-{i}"}}"#).into_bytes(),
    );
    let file = dir.join("batch.json");
    std::fs::write(
        &file,
        event(&stream_arn("ttl"), "shardId-000000000000", &records),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") || name == "LEDGER_TABLE" {
            command.env_remove(name);
        }
    }
    command
        .arg("invoke")
        .arg(&file)
        .env("SHARDLINE_STATE_DIR", &dir)
        .env("SHARDLINE_STATE_TABLE", state_table)
        .env("SHARDLINE_PROGRESS", "partition-key")
        .env("SHARDLINE_PARENT_GUARD", "off")
        .env("SHARDLINE_KEY_PROGRESS_TTL_HOURS", ttl_hours)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &emulators.dynamodb_endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

/// The `expires_at` of every key progress item of the state table.
async fn key_progress_expiries(emulators: &Emulators, table: &str) -> Vec<SystemTime> {
    let items = emulators
        .dynamodb()
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .filter(
            |item| matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.contains("#key#")),
        )
        .map(|item| {
            let Some(AttributeValue::N(seconds)) = item.get("expires_at") else {
                panic!("no expires_at: {item:?}");
            };
            UNIX_EPOCH + Duration::from_secs(seconds.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_key_progress_ttl_setting_reaches_the_dynamodb_store() {
    let emulators = Emulators::from_env();
    let state_table = unique_name("state");
    DynamoDbStore::new(emulators.dynamodb(), &state_table)
        .create_table()
        .await
        .unwrap();
    let before = SystemTime::now();
    let output = invoke(&emulators, &state_table, "720");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expiries = key_progress_expiries(&emulators, &state_table).await;
    assert_eq!(expiries.len(), 2, "one progress item per account");
    let thirty_days = Duration::from_secs(720 * 3600);
    for expires in expiries {
        let ttl = expires.duration_since(before).unwrap();
        assert!(
            ttl >= thirty_days - Duration::from_secs(2)
                && ttl <= thirty_days + Duration::from_secs(120),
            "key progress expires {:.2} days after the commit, want 30",
            ttl.as_secs_f64() / 86_400.0
        );
    }
}

#[tokio::test]
async fn a_key_progress_ttl_out_of_range_stops_the_function_naming_the_variable() {
    let emulators = Emulators::from_env();
    let state_table = unique_name("state");
    for bad in ["23", "9000", "30d"] {
        let output = invoke(&emulators, &state_table, bad);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad} taken: {stderr}");
        assert!(
            stderr.contains(&format!("SHARDLINE_KEY_PROGRESS_TTL_HOURS=\"{bad}\""))
                && stderr.contains("from 24 to 8784"),
            "{stderr}"
        );
    }
}

//! `ledger invoke` of a child shard's batch before its parent is finished,
//! against kinesis-mock (the split) and moto (Shardline's state): locally, as
//! in Lambda, the invocation has a finite timeout, so the guard gives up and
//! the batch is reported held instead of polling forever.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardline::state::DynamoDbStore;
use shardline_tests::kinesis;
use shardline_tests::lambda::{EventRecord, event};
use shardline_tests::{Emulators, unique_name};

#[tokio::test]
async fn a_held_child_batch_returns_within_the_local_timeout() {
    let emulators = Emulators::from_env();
    let client = emulators.kinesis();
    let stream = unique_name("ledger-guard");
    kinesis::create_stream(&client, &stream, 1).await;
    let arn = kinesis::stream_arn(&client, &stream).await;
    let parent = kinesis::list_shards(&client, &stream).await[0].clone();
    let txn = |seq: u64| format!(r#"{{"account":"A1","seq":{seq},"amount":100,"txn":"t-{seq}"}}"#);
    kinesis::put_record_at_hash_key(&client, &stream, "A1", parent.starting_hash_key, txn(1)).await;
    let [low, _] = kinesis::split_shard(&client, &stream, &parent.shard_id).await;
    kinesis::put_record_at_hash_key(&client, &stream, "A1", low.starting_hash_key, txn(2)).await;
    let child: Vec<EventRecord> = kinesis::read_shard(&client, &stream, &low.shard_id)
        .await
        .records
        .iter()
        .map(EventRecord::from)
        .collect();
    let dir = std::env::temp_dir().join(unique_name("ledger-guard"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("child.json");
    std::fs::write(&file, event(&arn, &low.shard_id, &child)).unwrap();
    let state_table = unique_name("state");
    DynamoDbStore::new(emulators.dynamodb(), &state_table)
        .create_table()
        .await
        .unwrap();

    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let started = Instant::now();
    let mut process = command
        .arg("invoke")
        .arg(&file)
        .env("SHARDLINE_STATE_DIR", &dir)
        .env("SHARDLINE_STATE_TABLE", &state_table)
        .env("SHARDLINE_TIMEOUT_SECONDS", "3")
        .env("AWS_ENDPOINT_URL_DYNAMODB", &emulators.dynamodb_endpoint)
        .env("AWS_ENDPOINT_URL_KINESIS", &emulators.kinesis_endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = process.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            process.kill().unwrap();
            panic!("ledger invoke of a held child batch did not return within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = process.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        stdout.trim(),
        format!(
            r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}}]}}"#,
            child[0].sequence_number
        )
    );
    assert!(
        stderr.contains("held back by an unfinished parent shard"),
        "{stderr}"
    );
    kinesis::delete_stream(&client, &stream).await;
}

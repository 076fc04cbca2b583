//! `shardline-cli source --tumbling-window-in-seconds` against kinesis-mock, with
//! the key-counts function (embedded store): batches of a few records, so each
//! window takes several invocations whose state the source threads from answer
//! to invocation; every window ends with a final invocation, and the counts the
//! function wrote add up to exactly what was put, per partition key.

use std::collections::BTreeMap;
use std::time::Duration;

use shardline_tests::source::{Running, binaries, clean_command, source_command};
use shardline_tests::{Emulators, kinesis, unique_name};

const KEYS: usize = 4;

/// Records of `count` with payloads of 10 to 12 bytes, keys `k0`.. in turn.
fn burst(count: usize, offset: usize) -> Vec<(String, Vec<u8>)> {
    (offset..offset + count)
        .map(|i| (format!("k{}", i % KEYS), vec![b'x'; 10 + i % 3]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_thread_their_state_and_every_record_counts_once() {
    let emulators = Emulators::from_env();
    let client = emulators.kinesis();
    let stream = unique_name("windows");
    kinesis::create_stream(&client, &stream, 1).await;
    // Two bursts 3 s apart: records in at least two windows of 2 s.
    let mut put = burst(40, 0);
    let second = burst(21, 40);
    let pairs = |records: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> { records.to_vec() };
    kinesis::put_records(&client, &stream, pairs(&put)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    kinesis::put_records(&client, &stream, pairs(&second)).await;
    put.extend(second);

    let dir = std::env::temp_dir().join(unique_name("source-windows"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = source_command(&stream, 4, 7);
    command
        .args(["--tumbling-window-in-seconds", "2", "--batch-size", "7"])
        .args(["--function-timeout", "30", "--"])
        .arg(&binaries().key_counts)
        .env("AWS_ENDPOINT_URL_KINESIS", &emulators.kinesis_endpoint)
        .env("SHARDLINE_STATE_DIR", &dir)
        .env("SHARDLINE_PARENT_GUARD", "off");
    let source = Running::start(command);
    let summary = tokio::task::spawn_blocking(move || source.summary(Duration::from_secs(180)))
        .await
        .unwrap();
    assert_eq!(summary["discarded"], 0, "{summary}");

    let out = clean_command(&binaries().key_counts)
        .arg("counts")
        .env("SHARDLINE_STATE_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counted: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut windows = std::collections::BTreeSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        windows.insert(row["window_start"].as_str().unwrap().to_owned());
        let entry = counted
            .entry(row["partition_key"].as_str().unwrap().to_owned())
            .or_default();
        entry.0 += row["records"].as_u64().unwrap();
        entry.1 += row["bytes"].as_u64().unwrap();
    }
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (key, data) in &put {
        let entry = expected.entry(key.clone()).or_default();
        entry.0 += 1;
        entry.1 += data.len() as u64;
    }
    assert_eq!(counted, expected);
    assert!(windows.len() >= 2, "{windows:?}");
    let invocations = summary["invocations"].as_u64().unwrap_or_default();
    assert!(
        invocations >= 61 / 7 + windows.len() as u64,
        "batches of 7 and a final invocation per window: {summary}"
    );
    kinesis::delete_stream(&client, &stream).await;
    let _ = std::fs::remove_dir_all(&dir);
}

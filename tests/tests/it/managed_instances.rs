//! Lambda Managed Instances: one function process answers several invocations
//! at once (`AWS_LAMBDA_MAX_CONCURRENCY`, the runtime's concurrent mode), and
//! each keeps its own metrics line, log context and state. Through
//! `shardline-cli invoke --per-execution-environment-max-concurrency`, whose
//! Runtime API hands out as many events at once as the process asks for.
//!
//! The function is `rendezvous` (`src/bin/rendezvous.rs`): a batch holding a
//! `wait` record passes it only once two invocations hold one, so the test
//! fails unless the two really overlap in the one process.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use shardline_tests::TempDir;
use shardline_tests::source::{binaries, clean_command};

/// An event of `payloads` (one per line) from `shard`, written to `dir`.
fn event(dir: &Path, shard: &str, payloads: &[&str]) -> PathBuf {
    let lines = dir.join(format!("{shard}.txt"));
    std::fs::write(&lines, payloads.join("\n") + "\n").unwrap();
    let out = clean_command(&binaries().shardline)
        .args(["event", "--shard", shard])
        .arg(&lines)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(format!("{shard}.json"));
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// `shardline-cli invoke` of `rendezvous` with `events`, `at_once` per process.
fn invoke(dir: &Path, events: &[PathBuf], at_once: u32, timeout: u32) -> Output {
    invoke_function(&binaries().rendezvous, dir, events, at_once, timeout, &[])
}

/// `shardline-cli invoke` of `function` with `events`, `at_once` per process
/// and `env` on top.
fn invoke_function(
    function: &Path,
    dir: &Path,
    events: &[PathBuf],
    at_once: u32,
    timeout: u32,
    env: &[(&str, &str)],
) -> Output {
    let mut command = clean_command(&binaries().shardline);
    command.envs(env.iter().copied());
    command
        .env("SHARDLINE_STATE_DIR", dir.join("state"))
        .args(["invoke", "--function-timeout", &timeout.to_string()])
        .args([
            "--per-execution-environment-max-concurrency",
            &at_once.to_string(),
        ]);
    for event in events {
        command.arg("--event").arg(event);
    }
    command.arg("--").arg(function).output().unwrap()
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The value of `field` in any of a log line's spans.
fn span_field<'a>(line: &'a Value, field: &str) -> Option<&'a str> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|span| span[field].as_str())
}

#[test]
fn overlapping_invocations_in_one_process_keep_their_metrics_logs_and_state_apart() {
    let dir = TempDir::new("lmi");
    let events = [
        event(
            dir.path(),
            "shardId-000000000000",
            &["wait", "s0-a", "s0-b"],
        ),
        event(dir.path(), "shardId-000000000001", &["wait", "s1-a"]),
    ];
    let out = invoke(dir.path(), &events, 2, 20);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let answers = json_lines(&out.stdout);
    assert_eq!(answers.len(), 2, "{answers:?} {stderr}");
    for answer in &answers {
        assert_eq!(answer["outcome"], "response", "{answer} {stderr}");
        assert_eq!(
            answer["response"]["batchItemFailures"],
            serde_json::json!([])
        );
    }
    let lines = json_lines(&out.stderr);
    // One metrics line per invocation, each with its own request id and counts.
    let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(metrics.len(), 2, "{stderr}");
    let records_of = |request: &str| {
        metrics.iter().find(|m| m["RequestId"] == request).map(|m| {
            (
                m["RecordsProcessed"].as_u64(),
                m["RendezvousRecords"].as_u64(),
            )
        })
    };
    // Every line a record wrote names its invocation and its shard.
    let seen: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "record seen")
        .collect();
    assert_eq!(seen.len(), 5, "{stderr}");
    let mut requests = std::collections::BTreeMap::new();
    for line in &seen {
        let payload = line["payload"].as_str().unwrap_or_default();
        let shard = span_field(line, "shard").unwrap_or_default();
        let request = span_field(line, "requestId").unwrap_or_default();
        let expected_shard = match payload {
            "s1-a" => "shardId-000000000001",
            "wait" => shard,
            _ => "shardId-000000000000",
        };
        assert_eq!(shard, expected_shard, "{line}");
        requests
            .entry(shard.to_owned())
            .or_insert_with(std::collections::BTreeSet::new)
            .insert(request.to_owned());
    }
    assert_eq!(requests.len(), 2, "two shards: {requests:?}");
    let ids: Vec<&String> = requests.values().flatten().collect();
    assert_eq!(ids.len(), 2, "one request per shard: {requests:?}");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(records_of(ids[0]), Some((Some(3), Some(3))), "{metrics:?}");
    assert_eq!(records_of(ids[1]), Some((Some(2), Some(2))), "{metrics:?}");
    // Each shard's checkpoint is its own: the same events again are skipped.
    let again = invoke(dir.path(), &events, 2, 20);
    let metrics_again: Vec<Value> = json_lines(&again.stderr)
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(metrics_again.len(), 2);
    for line in &metrics_again {
        assert_eq!(line["RecordsProcessed"], 0, "{line}");
        assert!(line.get("RendezvousRecords").is_none(), "{line}");
    }
}

#[test]
fn one_invocation_at_a_time_never_meets_the_other() {
    // The control: the same events to a classic sandbox (one at a time). The
    // first waits for a second invocation that cannot come, until the engine
    // cuts its handler at the end of the invocation and reports the record.
    let dir = TempDir::new("lmi-classic");
    let events = [
        event(dir.path(), "shardId-000000000000", &["wait"]),
        event(dir.path(), "shardId-000000000001", &["wait"]),
    ];
    let out = invoke(dir.path(), &events, 1, 2);
    let answers = json_lines(&out.stdout);
    assert_eq!(answers[0]["outcome"], "response", "{answers:?}");
    let failures = answers[0]["response"]["batchItemFailures"].as_array();
    assert_eq!(failures.map(Vec::len), Some(1), "{answers:?}");
}

/// Concurrent invocations run on the function's tokio worker threads (2 MiB of
/// stack by default), not on the main thread (8 MiB) as one at a time does.
/// The ledger, a debug build, on half of that: two batches at once both
/// answer. Before the engine boxed its phases, a debug build's copies of the
/// inline futures needed 2.5 MiB and every concurrent invocation aborted
/// with a stack overflow.
#[test]
fn concurrent_invocations_fit_a_worker_threads_stack_with_room_to_spare() {
    let dir = TempDir::new("lmi-stack");
    let txn = |shard: &str, n: u32| {
        format!(r#"{{"account":"{shard}-{n}","seq":1,"amount":{n},"txn":"{shard}-t{n}"}}"#)
    };
    let events: Vec<PathBuf> = ["shardId-000000000000", "shardId-000000000001"]
        .iter()
        .map(|shard| {
            let payloads: Vec<String> = (1..=20).map(|n| txn(shard, n)).collect();
            let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
            event(dir.path(), shard, &payloads)
        })
        .collect();
    let out = invoke_function(
        &binaries().ledger,
        dir.path(),
        &events,
        2,
        30,
        &[("RUST_MIN_STACK", "1048576"), ("SHARDLINE_LOG", "warn")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("overflowed its stack"), "{stderr}");
    let answers = json_lines(&out.stdout);
    assert_eq!(answers.len(), 2, "{answers:?} {stderr}");
    for answer in &answers {
        assert_eq!(answer["outcome"], "response", "{answer} {stderr}");
        assert_eq!(
            answer["response"]["batchItemFailures"]
                .as_array()
                .map(Vec::len),
            Some(0),
            "{answer}"
        );
    }
}

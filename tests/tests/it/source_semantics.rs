//! `shardline-cli source` follows the event source mapping's rules, checked with
//! the probe function (`tests/src/bin/probe.rs`: the Lambda runtime alone,
//! doing what each payload asks) on kinesis-mock. The rules, from the Lambda
//! developer guide (with-kinesis, services-kinesis-batchfailurereporting,
//! kinesis-on-failure-destination):
//!
//! - a partial batch response makes Lambda retry from the lowest reported
//!   record; an empty item identifier fails the whole batch; without
//!   ReportBatchItemFailures the response is not read;
//! - with BisectBatchOnFunctionError a function error splits the batch in two
//!   and a partial response bisects it at the reported record, neither counting
//!   as a retry;
//! - an error response, a crash and a timeout are function errors, each retry
//!   counts, past MaximumRetryAttempts the batch is discarded with its metadata
//!   to the on-failure destination; records older than
//!   MaximumRecordAgeInSeconds are discarded unsent;
//! - StartingPosition LATEST skips what is already in the shard, AT_TIMESTAMP
//!   starts from that time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use shardline_tests::kinesis;
use shardline_tests::source::{Running, binaries, clean_command};
use shardline_tests::{Emulators, unique_name};

/// A one-shard stream and a probe's files.
struct Probe {
    client: aws_sdk_kinesis::Client,
    endpoint: String,
    stream: String,
    dir: PathBuf,
}

/// What a run of the source came to.
struct Run {
    summary: Value,
    /// Each invocation's record labels, in order.
    invocations: Vec<Vec<String>>,
    on_failure: Vec<Value>,
}

impl Probe {
    async fn new() -> Probe {
        let emulators = Emulators::from_env();
        let client = emulators.kinesis();
        let stream = unique_name("source-rules");
        kinesis::create_stream(&client, &stream, 1).await;
        let dir = std::env::temp_dir().join(unique_name("probe"));
        std::fs::create_dir_all(&dir).unwrap();
        Probe {
            client,
            endpoint: emulators.kinesis_endpoint,
            stream,
            dir,
        }
    }

    /// Puts payloads `LABEL:COMMAND`, in order.
    async fn put(&self, payloads: &[&str]) {
        let records = payloads.iter().map(|p| ("key", p.as_bytes()));
        kinesis::put_records(&self.client, &self.stream, records).await;
    }

    /// Runs the source with `args` until idle.
    fn run(&self, args: &[&str]) -> Run {
        let log = self.dir.join(format!("log-{}", unique_name("run")));
        let on_failure = self.dir.join(format!("on-failure-{}", unique_name("run")));
        let bins = binaries();
        let mut command = clean_command(&bins.shardline);
        command
            .args(["source", "--stream", &self.stream, "--seed", "1"])
            .arg("--on-failure")
            .arg(&on_failure)
            .args(args)
            .args(if args.contains(&"--until-idle") {
                &[][..]
            } else {
                &["--until-idle", "2"][..]
            })
            .arg("--")
            .arg(&bins.probe)
            .env("AWS_ENDPOINT_URL_KINESIS", &self.endpoint)
            .env("PROBE_LOG", &log);
        let summary = Running::start(command).summary(Duration::from_secs(300));
        Run {
            summary,
            invocations: lines(&log)
                .iter()
                .map(|l| serde_json::from_value(l.clone()).unwrap())
                .collect(),
            on_failure: lines(&on_failure),
        }
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn labels(batches: &[&[&str]]) -> Vec<Vec<String>> {
    batches
        .iter()
        .map(|b| b.iter().map(|l| (*l).to_owned()).collect())
        .collect()
}

impl Run {
    fn count(&self, what: &str) -> u64 {
        self.summary[what]
            .as_u64()
            .unwrap_or_else(|| panic!("{what} in {}", self.summary))
    }
}

#[tokio::test]
async fn a_partial_failure_is_retried_from_the_lowest_reported_record() {
    let probe = Probe::new().await;
    probe
        .put(&["a:ok", "b:fail-once", "c:ok", "d:fail-once"])
        .await;
    let run = probe.run(&[]);
    assert_eq!(
        run.invocations,
        labels(&[&["a", "b", "c", "d"], &["b", "c", "d"]])
    );
    assert_eq!(run.count("retries"), 1, "{}", run.summary);
}

#[tokio::test]
async fn an_empty_item_identifier_fails_the_whole_batch() {
    let probe = Probe::new().await;
    probe.put(&["a:ok", "b:empty-id-once"]).await;
    let run = probe.run(&[]);
    assert_eq!(run.invocations, labels(&[&["a", "b"], &["a", "b"]]));
    assert_eq!(run.count("retries"), 1);
}

#[tokio::test]
async fn without_report_batch_item_failures_a_partial_response_is_a_success() {
    let probe = Probe::new().await;
    probe.put(&["a:ok", "b:fail", "c:ok"]).await;
    let run = probe.run(&["--report-batch-item-failures", "false"]);
    assert_eq!(run.invocations, labels(&[&["a", "b", "c"]]));
    assert_eq!(run.count("retries"), 0);
}

#[tokio::test]
async fn bisect_halves_a_failing_batch_down_to_the_bad_record_and_discards_it_past_the_retry_limit()
{
    let probe = Probe::new().await;
    probe
        .put(&["1", "2", "3", "4", "5", "6:error", "7", "8"])
        .await;
    let run = probe.run(&[
        "--bisect-batch-on-function-error",
        "--maximum-retry-attempts",
        "1",
    ]);
    assert_eq!(
        run.invocations,
        labels(&[
            &["1", "2", "3", "4", "5", "6", "7", "8"],
            &["1", "2", "3", "4"],
            &["5", "6", "7", "8"],
            &["5", "6"],
            &["5"],
            &["6"],
            &["6"],
            &["7", "8"],
        ])
    );
    assert_eq!(
        (
            run.count("bisects"),
            run.count("retries"),
            run.count("function_errors"),
            run.count("discarded")
        ),
        (3, 1, 5, 1),
        "{}",
        run.summary
    );
    assert_eq!(run.on_failure.len(), 1);
    let info = &run.on_failure[0]["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert_eq!(
        run.on_failure[0]["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(
        run.on_failure[0]["requestContext"]["approximateInvokeCount"],
        2
    );
}

#[tokio::test]
async fn with_bisect_a_partial_failure_splits_at_the_reported_record() {
    let probe = Probe::new().await;
    probe.put(&["1", "2", "3:fail", "4"]).await;
    let run = probe.run(&[
        "--bisect-batch-on-function-error",
        "--maximum-retry-attempts",
        "0",
    ]);
    assert_eq!(
        run.invocations,
        labels(&[&["1", "2", "3", "4"], &["3", "4"]])
    );
    assert_eq!(
        (
            run.count("bisects"),
            run.count("retries"),
            run.count("discarded")
        ),
        (1, 0, 2)
    );
    assert_eq!(
        run.on_failure[0]["KinesisBatchInfo"]["batchSize"], 2,
        "3 and 4 go together"
    );
}

#[tokio::test]
async fn a_crash_and_a_timeout_kill_the_process_count_as_retries_and_cold_start_the_next() {
    let probe = Probe::new().await;
    probe.put(&["a:crash-once", "b:sleep-once", "c"]).await;
    let run = probe.run(&["--batch-size", "1", "--function-timeout", "1"]);
    assert_eq!(
        run.invocations,
        labels(&[&["a"], &["a"], &["b"], &["b"], &["c"]])
    );
    assert_eq!(
        (
            run.count("crashes"),
            run.count("timeouts"),
            run.count("retries"),
            run.count("cold_starts")
        ),
        (1, 1, 2, 3),
        "{}",
        run.summary
    );
}

#[tokio::test]
async fn killing_every_invocation_exhausts_the_retries_and_discards_the_batch() {
    let probe = Probe::new().await;
    probe.put(&["a:slow", "b"]).await;
    let run = probe.run(&["--kill-rate", "1", "--maximum-retry-attempts", "2"]);
    assert_eq!(
        (
            run.count("crashes"),
            run.count("retries"),
            run.count("discarded")
        ),
        (3, 2, 2),
        "{}",
        run.summary
    );
    assert_eq!(run.on_failure.len(), 1);
    assert_eq!(
        run.on_failure[0]["requestContext"]["approximateInvokeCount"],
        3
    );
    assert_eq!(run.on_failure[0]["KinesisBatchInfo"]["batchSize"], 2);
}

/// Lambda cannot hand a function an event over 6 MB: a record that alone makes
/// a bigger event fails as the invocation would, is retried to the limit and
/// discarded; the records around it are delivered. (5 MiB: base64 makes its
/// event about 7 MB. kinesis-mock's GetRecords fails on a 10 MiB record.)
#[tokio::test]
async fn a_record_too_big_for_an_invocation_is_discarded_and_its_neighbours_delivered() {
    let probe = Probe::new().await;
    // The stream takes records over 1 MiB (UpdateMaxRecordSize).
    let arn = kinesis::stream_arn(&probe.client, &probe.stream).await;
    probe
        .client
        .update_max_record_size()
        .stream_arn(arn)
        .max_record_size_in_kib(10 * 1024)
        .send()
        .await
        .unwrap();
    let big = format!("big:{}", "x".repeat(5 * 1024 * 1024));
    probe.put(&["a"]).await;
    probe.put(&[big.as_str()]).await;
    probe.put(&["c"]).await;
    let run = probe.run(&["--maximum-retry-attempts", "1"]);
    assert_eq!(run.invocations, labels(&[&["a"], &["c"]]));
    assert_eq!(
        (run.count("function_errors"), run.count("discarded")),
        (2, 1),
        "{}",
        run.summary
    );
    assert_eq!(run.on_failure[0]["KinesisBatchInfo"]["batchSize"], 1);
}

#[tokio::test]
async fn latest_skips_what_is_in_the_shard_and_at_timestamp_starts_at_that_time() {
    let probe = Probe::new().await;
    probe.put(&["old-1", "old-2"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe.put(&["new-1", "new-2"]).await;
    let run = probe.run(&[
        "--starting-position",
        "AT_TIMESTAMP",
        "--starting-position-timestamp",
        &at.to_string(),
    ]);
    assert_eq!(run.invocations, labels(&[&["new-1", "new-2"]]));

    // LATEST: nothing of what is there; what comes after the mapping starts.
    let (stream, endpoint) = (probe.stream.clone(), probe.endpoint.clone());
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let client = Emulators::from_env().kinesis();
        kinesis::put_records(&client, &stream, [("key", &b"latest-1"[..])]).await;
        drop(endpoint);
    });
    let run = tokio::task::spawn_blocking(move || {
        probe.run(&["--starting-position", "LATEST", "--until-idle", "4"])
    })
    .await
    .unwrap();
    later.await.unwrap();
    assert_eq!(run.invocations, labels(&[&["latest-1"]]));
}

/// MaximumRecordAgeInSeconds is at least 60: this test waits that long.
#[tokio::test]
async fn records_past_the_maximum_age_are_discarded_unsent() {
    let probe = Probe::new().await;
    probe.put(&["old"]).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    probe.put(&["fresh"]).await;
    let run = probe.run(&["--maximum-record-age-in-seconds", "60"]);
    assert_eq!(run.invocations, labels(&[&["fresh"]]));
    assert_eq!(run.count("discarded"), 1);
    assert_eq!(
        run.on_failure[0]["requestContext"]["condition"],
        "RecordAgeExceeded"
    );
}

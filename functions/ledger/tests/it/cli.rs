//! The `ledger` binary as a developer runs it: `invoke`, `balances` and
//! `quarantine` on the sample events, each test with its own state folder.
//!
//! Expected balances, by the rules in `src/rules.rs` (apply strictly in `seq`
//! order; a seen `seq` or txn id is a duplicate; a debit that would overdraw is
//! rejected and leaves the balance):
//! - batch.json: A1 +1000, -250, then -5000 rejected (750 left) = 750;
//!   B2 +500, the same txn again (duplicate), -100 = 400.
//! - poison.json: P1 +700, a record with `"seq":"two"` (permanent: quarantined),
//!   a record that is not base64 (undecodable: quarantined), -200 = 500.
//! - kpl-aggregate.json: one KPL aggregate of C3 +900, C3 -400, D9 +50, then a
//!   plain C3 +25: C3 = 525, D9 = 50.
//! - gap.json: G7 seq 1 (+100), seq 3 (+10) before seq 2 (+20). Seq 3 is a gap
//!   (retryable) until it is quarantined on its 3rd attempt; then seq 2 applies:
//!   G7 = 120 (txn 3 waits in the quarantine for a replay).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root: the sample events are addressed from there, as in the README.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct StateDir(PathBuf);

impl StateDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("ledger-cli-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }

    /// Runs the ledger binary with `args` on this state, with `env` added.
    fn ledger_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.args(args).current_dir(workspace());
        // Nothing from the caller's environment may steer the run.
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command.env("SHARDLINE_STATE_DIR", &self.0);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("the ledger binary runs")
    }

    fn ledger(&self, args: &[&str]) -> Output {
        self.ledger_with(args, &[])
    }

    /// `invoke events/ledger/<file>`, which must succeed; (stdout, stderr).
    fn invoke(&self, file: &str) -> (String, String) {
        let path = format!("events/ledger/{file}");
        let out = self.ledger(&["invoke", &path]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "invoke {file} failed: {stderr}");
        (stdout, stderr)
    }

    fn balances(&self) -> String {
        let out = self.ledger(&["balances"]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "balances failed: {stderr}");
        stdout
    }

    fn quarantine(&self) -> Vec<serde_json::Value> {
        let out = self.ledger(&["quarantine"]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "quarantine failed: {stderr}");
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

/// The one summary line of an `invoke` on stderr.
fn summary(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ledger: "))
        .collect();
    assert_eq!(lines.len(), 1, "one summary line in {stderr:?}");
    lines[0]
}

const SUCCESS: &str = "{\"batchItemFailures\":[]}\n";

/// The `kinesis.data` field of record `index` of an event file.
fn data_field(file: &str, index: usize) -> String {
    let text = std::fs::read_to_string(workspace().join("events/ledger").join(file)).unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    event["Records"][index]["kinesis"]["data"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Standard base64 with padding (the quarantine's encoding of payloads).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn invoke_prints_only_the_response_on_stdout_and_skips_everything_the_second_time() {
    let state = StateDir::new("batch");
    let (stdout, stderr) = state.invoke("batch.json");
    assert_eq!(
        stdout, SUCCESS,
        "stdout carries the response and nothing else"
    );
    assert_eq!(
        summary(&stderr),
        "ledger: 6 records: 6 processed, 0 skipped (0 checkpointed, 0 stale, 0 duplicate), \
         0 quarantined (0 permanent, 0 exhausted, 0 undecodable), 0 failed, 0 not started"
    );

    let (stdout, stderr) = state.invoke("batch.json");
    assert_eq!(stdout, SUCCESS);
    assert!(
        summary(&stderr).contains("0 processed, 6 skipped (6 checkpointed, 0 stale, 0 duplicate)"),
        "{stderr}"
    );
    assert_eq!(state.balances(), "{\"A1\":750,\"B2\":400}\n");
}

#[test]
fn balances_follow_the_ledger_rules_for_each_sample() {
    let cases = [
        ("batch.json", "{\"A1\":750,\"B2\":400}\n"),
        ("poison.json", "{\"P1\":500}\n"),
        ("kpl-aggregate.json", "{\"C3\":525,\"D9\":50}\n"),
    ];
    for (file, expected) in cases {
        let state = StateDir::new("balances");
        let (stdout, _) = state.invoke(file);
        assert_eq!(stdout, SUCCESS, "{file}");
        assert_eq!(state.balances(), expected, "{file}");
    }
}

#[test]
fn an_empty_state_has_empty_balances_and_no_quarantine() {
    let state = StateDir::new("empty");
    assert_eq!(state.balances(), "{}\n");
    assert!(state.quarantine().is_empty());
}

#[test]
fn the_kpl_sample_is_deaggregated() {
    let state = StateDir::new("kpl");
    let (_, stderr) = state.invoke("kpl-aggregate.json");
    let line = summary(&stderr);
    assert!(line.starts_with("ledger: 4 records: 4 processed"), "{line}");
    assert!(
        line.ends_with("KPL: 1 aggregates held 3 records, 0 fell back to plain"),
        "{line}"
    );
    let (_, stderr) = state.invoke("kpl-aggregate.json");
    assert!(
        summary(&stderr).contains("4 skipped (4 checkpointed"),
        "{stderr}"
    );
}

#[test]
fn poison_records_are_quarantined_with_their_payload_and_listed_as_json_lines() {
    let state = StateDir::new("poison");
    let (stdout, stderr) = state.invoke("poison.json");
    assert_eq!(stdout, SUCCESS, "quarantined records are not retried");
    assert!(
        summary(&stderr).contains(
            "2 processed, 0 skipped (0 checkpointed, 0 stale, 0 duplicate), \
             2 quarantined (1 permanent, 0 exhausted, 1 undecodable), 0 failed"
        ),
        "{stderr}"
    );

    let lines = state.quarantine();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        for field in [
            "shard_id",
            "sequence_number",
            "subsequence_number",
            "reason",
            "data",
        ] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
        assert_eq!(line["shard_id"], "shardId-000000000001");
        assert_eq!(line["subsequence_number"], 0);
    }
    let permanent = &lines[0];
    assert_eq!(permanent["reason"], "permanent");
    assert_eq!(
        permanent["sequence_number"],
        "49590338271490256608559693538361571095921575989136590898"
    );
    assert_eq!(
        permanent["data"].as_str().unwrap(),
        data_field("poison.json", 1),
        "the payload, base64 as it came"
    );
    assert_eq!(permanent["attempts"], 1);
    let undecodable = &lines[1];
    assert_eq!(undecodable["reason"], "undecodable");
    assert_eq!(
        undecodable["sequence_number"],
        "49590338271490256608559693538361571095921575989136591898"
    );
    assert_eq!(
        undecodable["data"].as_str().unwrap(),
        base64(data_field("poison.json", 2).as_bytes()),
        "the data field's raw text, base64-encoded"
    );
    assert_eq!(undecodable["attempts"], 0);
}

#[test]
fn a_gap_is_retried_then_quarantined_as_exhausted_on_the_third_run() {
    let state = StateDir::new("gap");
    let gap_seq = "49590338271490256608559695538361571095921575989136590898";
    let retry = format!("{{\"batchItemFailures\":[{{\"itemIdentifier\":\"{gap_seq}\"}}]}}\n");

    let (stdout, stderr) = state.invoke("gap.json");
    assert_eq!(stdout, retry, "run 1 reports the gap record");
    assert!(
        summary(&stderr).contains("1 processed, 0 skipped (0 checkpointed"),
        "{stderr}"
    );
    assert!(
        summary(&stderr).contains("1 failed, 1 not started"),
        "{stderr}"
    );
    assert_eq!(state.balances(), "{\"G7\":100}\n");

    let (stdout, stderr) = state.invoke("gap.json");
    assert_eq!(stdout, retry, "run 2 reports it again");
    assert!(
        summary(&stderr).contains("0 processed, 1 skipped (1 checkpointed"),
        "{stderr}"
    );
    assert!(state.quarantine().is_empty());

    let (stdout, stderr) = state.invoke("gap.json");
    assert_eq!(stdout, SUCCESS, "run 3 quarantines it and goes on");
    assert!(
        summary(&stderr).contains("1 quarantined (0 permanent, 1 exhausted, 0 undecodable)"),
        "{stderr}"
    );
    let lines = state.quarantine();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "exhausted");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["sequence_number"], gap_seq);
    assert_eq!(lines[0]["shard_id"], "shardId-000000000003");
    assert_eq!(
        lines[0]["data"].as_str().unwrap(),
        data_field("gap.json", 1)
    );
    assert_eq!(
        state.balances(),
        "{\"G7\":120}\n",
        "txn 2 after the gap is applied"
    );

    let (stdout, _) = state.invoke("gap.json");
    assert_eq!(stdout, SUCCESS, "a fourth run has nothing left to do");
}

#[test]
fn max_attempts_setting_counts() {
    let state = StateDir::new("gap-1");
    let out = state.ledger_with(
        &["invoke", "events/ledger/gap.json"],
        &[("SHARDLINE_MAX_ATTEMPTS", "1")],
    );
    assert!(out.status.success());
    assert_eq!(texts(&out).0, SUCCESS, "one attempt: quarantined at once");
    assert_eq!(state.balances(), "{\"G7\":120}\n");
}

#[test]
fn the_samples_use_their_own_shards_and_do_not_skip_each_other() {
    let state = StateDir::new("all");
    for file in ["batch.json", "poison.json", "kpl-aggregate.json"] {
        let (_, stderr) = state.invoke(file);
        assert!(
            summary(&stderr).contains("(0 checkpointed"),
            "{file}: {stderr}"
        );
    }
    for _ in 0..3 {
        state.invoke("gap.json");
    }
    assert_eq!(
        state.balances(),
        "{\"A1\":750,\"B2\":400,\"C3\":525,\"D9\":50,\"G7\":120,\"P1\":500}\n"
    );
    assert_eq!(state.quarantine().len(), 3);
}

#[test]
fn an_invalid_max_attempts_fails_naming_the_variable() {
    let state = StateDir::new("bad-env");
    let out = state.ledger_with(
        &["invoke", "events/ledger/batch.json"],
        &[("SHARDLINE_MAX_ATTEMPTS", "0")],
    );
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success(), "exit code {:?}", out.status.code());
    assert!(stdout.is_empty(), "no response on stdout: {stdout:?}");
    assert!(stderr.contains("SHARDLINE_MAX_ATTEMPTS"), "{stderr}");
    assert_eq!(
        state.balances(),
        "{}\n",
        "nothing was processed before the error"
    );
}

#[test]
fn a_non_kinesis_event_fails_with_a_clear_error() {
    let state = StateDir::new("sqs");
    let sqs = state.0.join("sqs.json");
    std::fs::write(
        &sqs,
        r#"{"Records":[{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d","receiptHandle":"AQEB",
            "body":"test","attributes":{},"messageAttributes":{},"md5OfBody":"098f6bcd4621d373cade4e832627b4f6",
            "eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:my-queue",
            "awsRegion":"us-east-1"}]}"#,
    )
    .unwrap();
    let out = state.ledger(&["invoke", sqs.to_str().unwrap()]);
    let (stdout, stderr) = texts(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(
        stderr.contains("aws:sqs") && stderr.contains("not a Kinesis event"),
        "{stderr}"
    );

    let out = state.ledger(&["invoke", "events/ledger/no-such-file.json"]);
    assert!(!out.status.success());
    assert!(
        texts(&out).1.contains("no-such-file.json"),
        "{}",
        texts(&out).1
    );
}

//! The `quarantine` subcommands on the `ledger` binary, as an operator runs
//! them locally (embedded store): `--count`, the filters, `replay` (with
//! `--dry-run`) through the ledger's own rules, and `purge`.
//!
//! gap.json: G7 seq 1 (+100), seq 3 (+10) before seq 2 (+20). Three invokes
//! quarantine seq 3 (exhausted) and apply seq 2: G7 = 120. Its replay now
//! succeeds: G7 = 130. poison.json quarantines a permanent and an undecodable
//! record on shard 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct State(PathBuf);

impl State {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ledger-quarantine-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        State(dir)
    }

    /// Runs `ledger ARGS` on this state; (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.args(args).current_dir(workspace());
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        let out: Output = command
            .env("SHARDLINE_STATE_DIR", &self.0)
            .output()
            .expect("the ledger binary runs");
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "{args:?} failed: {stderr}");
        (stdout, stderr)
    }

    fn lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let (stdout, _) = self.ok(args);
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
            .collect()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn count_filters_replay_and_purge_work_on_the_local_quarantine() {
    let state = State::new("ops");
    for _ in 0..3 {
        state.ok(&["invoke", "events/ledger/gap.json"]);
    }
    state.ok(&["invoke", "events/ledger/poison.json"]);
    assert_eq!(state.ok(&["balances"]).0, "{\"G7\":120,\"P1\":500}\n");

    let counts = state.lines(&["quarantine", "--count"]);
    let summary: Vec<(String, String, u64)> = counts
        .iter()
        .map(|c| {
            (
                c["shard_id"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 3, "{summary:?}");
    assert!(summary.contains(&("shardId-000000000003".into(), "exhausted".into(), 1)));
    let exhausted = state.lines(&["quarantine", "--reason", "exhausted"]);
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["shard_id"], "shardId-000000000003");
    assert!(state.lines(&["quarantine", "--until", "1000"]).is_empty());
    assert_eq!(
        state
            .lines(&["quarantine", "--since", "1h", "--limit", "2"])
            .len(),
        2
    );

    // A dry run changes nothing; the replay applies txn 3 through the ledger's rules.
    let dry = state.lines(&["quarantine", "replay", "--reason", "exhausted", "--dry-run"]);
    assert_eq!(dry[0]["outcome"], "would_run");
    assert_eq!(state.ok(&["balances"]).0, "{\"G7\":120,\"P1\":500}\n");
    let (stdout, stderr) = state.ok(&["quarantine", "replay", "--shard", "shardId-000000000003"]);
    let replayed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(replayed["outcome"], "replayed", "{stderr}");
    assert!(stderr.contains("1 replayed"), "{stderr}");
    assert_eq!(state.ok(&["balances"]).0, "{\"G7\":130,\"P1\":500}\n");
    // Replayed once: a second replay finds nothing and applies nothing.
    state.ok(&["quarantine", "replay", "--shard", "shardId-000000000003"]);
    assert_eq!(state.ok(&["balances"]).0, "{\"G7\":130,\"P1\":500}\n");

    // The poison record fails again and stays, with one more attempt.
    let again = state.lines(&["quarantine", "replay", "--reason", "permanent"]);
    assert_eq!(again[0]["outcome"], "failed");
    let left = state.lines(&["quarantine", "--reason", "permanent"]);
    assert_eq!(left[0]["attempts"], 2);

    // Purge needs a filter (or --all), and prints what it deletes.
    let (ok, _, stderr) = state.run(&["quarantine", "purge"]);
    assert!(!ok && stderr.contains("--all"), "{stderr}");
    let purged = state.lines(&["quarantine", "purge", "--reason", "undecodable"]);
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0]["reason"], "undecodable");
    assert_eq!(
        state.lines(&["quarantine"]).len(),
        1,
        "the permanent one is left"
    );
    let (ok, _, stderr) = state.run(&["quarantine", "--reason", "odd"]);
    assert!(!ok && stderr.contains("--reason"), "{stderr}");
}

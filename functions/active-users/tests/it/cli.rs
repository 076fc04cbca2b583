//! The `active-users` binary as a developer runs it locally (embedded SQLite
//! state, no AWS): `invoke` on the sample events, `active`, `quarantine`,
//! `event`, and the window's validation. Each test has its own state folder.
//!
//! The sample events carry fixed times from November 2025, so these tests run
//! them with `ACTIVE_WINDOW_SECONDS=315360000` (ten years), as
//! `docs/active-users.md` does; with the default 120 s they are all stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

const TEN_YEARS: &str = "315360000";
const ALICE: &str = "3f2a6c1e-8b1d-4c2e-9f3a-1b2c3d4e5f60";
const BOB: &str = "7d9e0f12-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
const CAROL: &str = "b5c6d7e8-f901-4a2b-8c3d-4e5f6a7b8c9d";
const DAVE: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const ERIN: &str = "c0ffee00-1234-4abc-9def-0123456789ab";
const FRANK: &str = "f4a5b6c7-d8e9-4f0a-9b1c-2d3e4f5a6b7c";
const GRACE: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const SUCCESS: &str = "{\"batchItemFailures\":[]}\n";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Local {
    dir: PathBuf,
    window: Option<&'static str>,
}

impl Local {
    fn new(tag: &str, window: Option<&'static str>) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "active-users-cli-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Local { dir, window }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_active-users"));
        command.args(args).current_dir(workspace());
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_")
                || name.starts_with("AWS_")
                || name.starts_with("ACTIVE_")
            {
                command.env_remove(name);
            }
        }
        command.env("SHARDLINE_STATE_DIR", &self.dir);
        if let Some(window) = self.window {
            command.env("ACTIVE_WINDOW_SECONDS", window);
        }
        command.output().expect("the active-users binary runs")
    }

    /// Runs `args`, which must succeed; (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        (stdout, stderr)
    }

    /// `invoke events/active-users/<file>`: the response and the summary line.
    fn invoke(&self, file: &str) -> (String, String) {
        let (stdout, stderr) = self.ok(&["invoke", &format!("events/active-users/{file}")]);
        let summary = stderr
            .lines()
            .find(|l| l.starts_with("active-users: "))
            .unwrap_or_else(|| panic!("a summary line in {stderr:?}"))
            .to_owned();
        (stdout, summary)
    }

    fn active(&self) -> BTreeMap<String, u64> {
        let (stdout, _) = self.ok(&["active"]);
        assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
        serde_json::from_str(&stdout).unwrap()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn users(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(u, t)| (u.to_string(), *t)).collect()
}

#[test]
fn a_batch_keeps_each_users_latest_heartbeat_and_a_rerun_is_checkpointed() {
    let local = Local::new("batch", Some(TEN_YEARS));
    let (response, summary) = local.invoke("batch.json");
    assert_eq!(response, SUCCESS);
    assert!(
        summary.starts_with("active-users: 6 records: 6 processed, 0 skipped"),
        "{summary}"
    );
    let expected = users(&[
        (ALICE, 1_763_790_060_000),
        (BOB, 1_763_790_005_000),
        (CAROL, 1_763_790_010_000),
    ]);
    assert_eq!(local.active(), expected);

    let (response, summary) = local.invoke("batch.json");
    assert_eq!(response, SUCCESS);
    assert!(
        summary.contains("0 processed, 6 skipped (6 checkpointed"),
        "{summary}"
    );
    assert_eq!(local.active(), expected);
}

#[test]
fn bad_payloads_are_quarantined_with_their_reason() {
    let local = Local::new("poison", Some(TEN_YEARS));
    let (response, summary) = local.invoke("poison.json");
    assert_eq!(response, SUCCESS);
    assert!(
        summary.contains(
            "6 records: 2 processed, 0 skipped (0 checkpointed, 0 stale, 0 duplicate), \
             4 quarantined (3 permanent, 0 exhausted, 1 undecodable)"
        ),
        "{summary}"
    );
    assert_eq!(
        local.active(),
        users(&[(DAVE, 1_763_790_100_000), (ERIN, 1_763_790_120_000)])
    );
    let (stdout, _) = local.ok(&["quarantine"]);
    let quarantined: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|q| {
            (
                q["partition_key"].as_str().unwrap(),
                q["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("bad-json", "permanent"),
            ("no-user", "permanent"),
            (ERIN, "permanent"),
            ("bad-base64", "undecodable")
        ]
    );
    assert!(
        quarantined[2]["detail"]
            .as_str()
            .unwrap()
            .contains("was it sent in seconds?"),
        "{}",
        quarantined[2]
    );
}

#[test]
fn stale_records_are_skipped_without_a_write() {
    let local = Local::new("stale", Some(TEN_YEARS));
    let (response, summary) = local.invoke("stale.json");
    assert_eq!(response, SUCCESS);
    assert!(
        summary.contains("4 records: 0 processed, 4 skipped (0 checkpointed, 4 stale"),
        "{summary}"
    );
    assert_eq!(local.active(), BTreeMap::new());
}

#[test]
fn with_the_default_window_the_fixed_sample_times_are_stale() {
    let local = Local::new("default-window", None);
    let (_, summary) = local.invoke("batch.json");
    assert!(
        summary.contains("0 processed, 6 skipped (0 checkpointed, 6 stale"),
        "{summary}"
    );
    assert_eq!(local.active(), BTreeMap::new());
}

#[test]
fn kpl_aggregates_and_child_shards_are_handled_like_any_batch() {
    let local = Local::new("kpl-child", Some(TEN_YEARS));
    let (_, summary) = local.invoke("kpl-aggregate.json");
    assert!(
        summary.contains("4 records: 4 processed")
            && summary.contains("KPL: 1 aggregates held 3 records"),
        "{summary}"
    );
    local.invoke("batch.json");
    // The guard is off: the child shard's batch runs at once, and its newer
    // heartbeats move Alice and Carol forward.
    let (_, summary) = local.invoke("child-shard.json");
    assert!(summary.contains("2 records: 2 processed"), "{summary}");
    assert_eq!(
        local.active(),
        users(&[
            (ALICE, 1_763_790_300_000),
            (BOB, 1_763_790_005_000),
            (CAROL, 1_763_790_290_000),
            (FRANK, 1_763_790_230_000),
            (GRACE, 1_763_790_240_000),
        ])
    );
}

#[test]
fn fresh_events_from_the_event_command_make_users_active() {
    let local = Local::new("fresh", None);
    let (event, _) = local.ok(&["event", "zoe", "yan"]);
    let file = local.dir.join("fresh.json");
    std::fs::write(&file, event).unwrap();
    let (stdout, _) = local.ok(&["invoke", file.to_str().unwrap()]);
    assert_eq!(stdout, SUCCESS);
    let (old, _) = local.ok(&["event", "--age", "600", "xia"]);
    std::fs::write(&file, old).unwrap();
    let (_, stderr) = local.ok(&["invoke", file.to_str().unwrap()]);
    assert!(stderr.contains("1 stale"), "{stderr}");
    let active = local.active();
    assert_eq!(active.keys().collect::<Vec<_>>(), ["yan", "zoe"]);
}

#[test]
fn an_invalid_window_stops_the_program_naming_the_variable() {
    let local = Local::new("bad-window", Some("2m"));
    let out = local.run(&["active"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("ACTIVE_WINDOW_SECONDS=\"2m\" is not valid"),
        "{stderr}"
    );
}

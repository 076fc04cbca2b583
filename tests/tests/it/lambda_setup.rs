//! Inside Lambda a function builds nothing before it asks for its first event
//! (`App::build`'s closure, SDK clients and the state store wait for the first
//! invocation), and one that cannot be set up then exits, so Lambda starts a
//! fresh sandbox, as after a failed init. Through `shardline-cli invoke`, which
//! serves the Lambda Runtime API.

use shardline_tests::TempDir;
use shardline_tests::source::{binaries, clean_command};

/// `shardline-cli invoke` of the ledger on its sample event with `state_dir` as its
/// state folder: the JSON line and the function's stderr.
fn invoke_ledger(state_dir: &std::path::Path) -> (serde_json::Value, String) {
    let event = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/ledger/batch.json");
    let out = clean_command(&binaries().shardline)
        .env("SHARDLINE_STATE_DIR", state_dir)
        .env("SHARDLINE_METRICS", "off")
        .args([
            "invoke",
            "--function-timeout",
            "60",
            "--event",
            event,
            "--event",
            event,
            "--",
        ])
        .arg(&binaries().ledger)
        .output()
        .expect("shardline-cli invoke runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    let line = serde_json::from_str(first).unwrap_or_else(|e| panic!("{stdout:?}: {e}"));
    (line, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_runtime_asks_for_its_first_event_before_the_store_is_opened() {
    let dir = TempDir::new("setup-ok");
    let (line, stderr) = invoke_ledger(&dir.path().join("state"));
    assert_eq!(line["outcome"], "response", "{line} {stderr}");
    assert!(
        line["init_ms"].as_f64().is_some(),
        "a cold start reports its init: {line}"
    );
    // The warning of the embedded store comes with the first invocation, after
    // `invocation/next`, not before it.
    assert!(
        stderr.contains("SHARDLINE_STATE_TABLE is not set"),
        "{stderr}"
    );
    assert!(
        dir.path().join("state").join("ledger.sqlite").exists(),
        "the ledger's store was opened"
    );
}

#[test]
fn a_function_that_cannot_be_set_up_exits_at_its_first_invocation() {
    let dir = TempDir::new("setup-fails");
    // A file where the state folder should be: the embedded stores cannot open.
    let not_a_folder = dir.path().join("state");
    std::fs::write(&not_a_folder, b"a file").unwrap();
    let (line, stderr) = invoke_ledger(&not_a_folder);
    assert_eq!(line["outcome"], "crashed", "{line} {stderr}");
    assert!(
        line["error"]
            .as_str()
            .unwrap_or_default()
            .contains("exited"),
        "the process exited: {line}"
    );
    assert!(
        stderr.contains("the function cannot be set up; exiting so Lambda starts a fresh sandbox"),
        "{stderr}"
    );
}

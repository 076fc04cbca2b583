//! The `key-counts` binary as a developer runs it on the sample events
//! (`events/key-counts/`), with the embedded store, each test in its own state
//! folder: the state each invocation returns is the state the next sample
//! carries, the final invocation writes the window's counts once, an
//! early-terminated window's parts add up, and a bad record is quarantined
//! inside the window.
//!
//! Expected counts (payload bytes in brackets), window 19:00 to 19:01:
//! - shard 0: sensor-a 3 records (10 + 10 + 10), sensor-b 2 (17 + 17),
//!   sensor-c 1 (10);
//! - shard 1 (ended early): the carried state (sensor-x 1,200 records of
//!   14,400 bytes, sensor-y 800 of 9,600) plus one sensor-x record of 10 bytes.

use crate::common;

use common::{Run, rows, sample, sample_json};
use serde_json::{Value, json};

fn response_state(stdout: &str) -> Value {
    let response: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{stdout}");
    response["state"].clone()
}

#[test]
fn each_invocation_returns_the_state_the_next_one_carries_and_the_final_writes_once() {
    let run = Run::embedded("chain");
    let (first, stderr) = run.ok(&["invoke", &sample("window-first")]);
    assert!(stderr.contains("3 processed"), "{stderr}");
    assert_eq!(
        response_state(&first),
        sample_json("window-middle")["state"]
    );
    assert_eq!(
        run.ok(&["counts"]).0,
        "",
        "nothing written before the window ends"
    );

    let (middle, _) = run.ok(&["invoke", &sample("window-middle")]);
    assert_eq!(
        response_state(&middle),
        sample_json("window-final")["state"]
    );

    let (last, _) = run.ok(&["invoke", &sample("window-final")]);
    let expected: [(&str, u64, u64); 3] = [
        ("sensor-a", 3, 30),
        ("sensor-b", 2, 34),
        ("sensor-c", 1, 10),
    ];
    assert_eq!(
        response_state(&last)["keys"],
        json!({"sensor-a": [3, 30], "sensor-b": [2, 34], "sensor-c": [1, 10]})
    );
    assert_eq!(
        rows(&run.ok(&["counts"]).0),
        expected.map(|(k, r, b)| ("shardId-000000000000".to_owned(), k.to_owned(), r, b))
    );
    // Lambda retries a final invocation whose response was lost: the same
    // part of the window is not added twice.
    run.ok(&["invoke", &sample("window-final")]);
    assert_eq!(rows(&run.ok(&["counts"]).0).len(), 3);
    assert_eq!(rows(&run.ok(&["counts"]).0)[0].2, 3);
}

#[test]
fn the_parts_of_a_window_ended_early_add_up() {
    let run = Run::embedded("early");
    let (cut, _) = run.ok(&["invoke", &sample("window-terminated-early")]);
    assert_eq!(
        response_state(&cut)["keys"],
        json!({"sensor-x": [1201, 14410], "sensor-y": [800, 9600]})
    );
    let shard = "shardId-000000000001".to_owned();
    assert_eq!(
        rows(&run.ok(&["counts"]).0),
        [
            (shard.clone(), "sensor-x".to_owned(), 1201, 14410),
            (shard.clone(), "sensor-y".to_owned(), 800, 9600)
        ]
    );
    // The same window goes on with a fresh state and closes at its end.
    let mut rest = sample_json("window-terminated-early");
    rest["state"] = json!({});
    rest["isWindowTerminatedEarly"] = false.into();
    let record = &mut rest["Records"][0];
    let sequence = "49590338271490256608559692538361571095921575989136000103";
    record["kinesis"]["sequenceNumber"] = sequence.into();
    record["eventID"] = format!("shardId-000000000001:{sequence}").into();
    let file = run.write("rest.json", &rest);
    run.ok(&["invoke", &file]);
    assert_eq!(
        rows(&run.ok(&["counts"]).0),
        [
            (shard.clone(), "sensor-x".to_owned(), 1202, 14420),
            (shard, "sensor-y".to_owned(), 800, 9600)
        ]
    );
}

#[test]
fn a_bad_record_is_quarantined_inside_the_window_and_counts_nowhere() {
    let run = Run::embedded("poison");
    let mut event = sample_json("window-first");
    event["Records"][1]["kinesis"]["data"] = "%% not base64".into();
    let file = run.write("poison.json", &event);
    let (stdout, stderr) = run.ok(&["invoke", &file]);
    assert!(stderr.contains("1 quarantined"), "{stderr}");
    assert_eq!(
        response_state(&stdout)["keys"],
        json!({"sensor-a": [2, 20]}),
        "sensor-b's record is not counted"
    );
    let (listed, _) = run.ok(&["quarantine"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("undecodable"), "{listed}");
    // A windowed record cannot rejoin its window: replay says what to do instead.
    let out = run.output(&["quarantine", "replay"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redrive"));
}

#[test]
fn an_event_without_a_window_fails_and_names_the_setting() {
    let run = Run::embedded("plain");
    let out = run.output(&["invoke", "events/ledger/batch.json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TumblingWindowInSeconds"), "{stderr}");
}

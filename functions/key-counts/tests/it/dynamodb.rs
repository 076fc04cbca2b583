//! The `key-counts` binary on DynamoDB (moto): `setup` makes both tables, the
//! sample window's final invocation adds its counts with conditional updates
//! (a retried final invocation adds nothing), and an early-terminated window's
//! parts add up in the same items.

use crate::common;

use common::{Run, rows, sample, sample_json};
use serde_json::json;

#[test]
fn the_final_invocation_adds_the_window_to_dynamodb_once() {
    let run = Run::dynamodb("dynamodb-chain");
    let (_, stderr) = run.ok(&["setup"]);
    for table in [
        run.var("SHARDLINE_STATE_TABLE"),
        run.var("KEY_COUNTS_TABLE"),
    ] {
        assert!(stderr.contains(table), "{table} in {stderr}");
    }
    for name in ["window-first", "window-middle"] {
        run.ok(&["invoke", &sample(name)]);
    }
    assert_eq!(
        run.ok(&["counts"]).0,
        "",
        "nothing written before the window ends"
    );
    let (stdout, _) = run.ok(&["invoke", &sample("window-final")]);
    assert!(stdout.contains(r#""batchItemFailures":[]"#), "{stdout}");
    let shard = "shardId-000000000000".to_owned();
    let expected = vec![
        (shard.clone(), "sensor-a".to_owned(), 3, 30),
        (shard.clone(), "sensor-b".to_owned(), 2, 34),
        (shard, "sensor-c".to_owned(), 1, 10),
    ];
    assert_eq!(rows(&run.ok(&["counts"]).0), expected);
    // The same final invocation again (its response lost): every item
    // refuses the part it already holds.
    run.ok(&["invoke", &sample("window-final")]);
    assert_eq!(rows(&run.ok(&["counts"]).0), expected);
}

#[test]
fn the_parts_of_a_window_ended_early_add_up_in_dynamodb() {
    let run = Run::dynamodb("dynamodb-early");
    run.ok(&["setup"]);
    run.ok(&["invoke", &sample("window-terminated-early")]);
    let mut rest = sample_json("window-terminated-early");
    rest["state"] = json!({});
    rest["isWindowTerminatedEarly"] = false.into();
    let sequence = "49590338271490256608559692538361571095921575989136000103";
    rest["Records"][0]["kinesis"]["sequenceNumber"] = sequence.into();
    rest["Records"][0]["eventID"] = format!("shardId-000000000001:{sequence}").into();
    let file = run.write("rest.json", &rest);
    for _ in 0..2 {
        run.ok(&["invoke", &file]);
    }
    let shard = "shardId-000000000001".to_owned();
    assert_eq!(
        rows(&run.ok(&["counts"]).0),
        [
            (shard.clone(), "sensor-x".to_owned(), 1202, 14420),
            (shard, "sensor-y".to_owned(), 800, 9600)
        ]
    );
}

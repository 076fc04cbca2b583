use std::time::{Duration, UNIX_EPOCH};

use clap::Parser as _;
use shardline::window::decode_window_event;
use shardline_event::decode::decode_event;

use super::*;
use crate::args::{Cli, Command};

/// A scratch file holding `text`.
fn input(name: &str, text: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shardline-event-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn parse(args: &[&str]) -> EventArgs {
    let mut all = vec!["shardline-cli", "event"];
    all.extend_from_slice(args);
    match Cli::try_parse_from(all).unwrap().command {
        Command::Event(args) => *args,
        _ => unreachable!("parsed as event"),
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn bytes(event: &Value) -> Vec<u8> {
    event.to_string().into_bytes()
}

#[test]
fn each_line_is_a_record_keyed_by_its_field_in_order() {
    let file = input(
        "lines.jsonl",
        b"{\"id\":\"a\",\"n\":1}\n\n{\"id\":7,\"n\":2}\r\n{\"id\":\"a\",\"n\":3}",
    );
    let args = parse(&[
        "--key-field",
        "id",
        "--shard",
        "shardId-000000000004",
        file.to_str().unwrap(),
    ]);
    let event = decode_event(&bytes(&make(&args, now()).unwrap())).unwrap();
    let records: Vec<_> = event
        .items
        .iter()
        .map(|item| item.record().clone())
        .collect();
    let keys: Vec<&str> = records.iter().map(|r| r.partition_key.as_str()).collect();
    assert_eq!(keys, ["a", "7", "a"]);
    assert_eq!(&records[1].data[..], b"{\"id\":7,\"n\":2}");
    assert!(records.windows(2).all(|w| w[0].position < w[1].position));
    assert!(
        records
            .iter()
            .all(|r| &*r.shard.shard_id == "shardId-000000000004")
    );
    assert_eq!(records[0].approximate_arrival, Some(now()));
    // A later event comes after this one, so its checkpoint does not skip it.
    let later = decode_event(&bytes(
        &make(&args, now() + Duration::from_millis(1)).unwrap(),
    ))
    .unwrap();
    assert!(later.items[0].record().position > records[2].position);
}

#[test]
fn a_payload_without_its_key_is_named_by_file_and_line() {
    let file = input("missing.jsonl", b"{\"id\":\"a\"}\n{\"other\":1}\n");
    let args = parse(&["--key-field", "id", file.to_str().unwrap()]);
    let err = make(&args, now()).unwrap_err().to_string();
    assert!(
        err.contains("missing.jsonl line 2") && err.contains("no field \"id\""),
        "{err}"
    );
    let text = input("text.jsonl", b"plain text\n");
    let args = parse(&["--key-field", "id", text.to_str().unwrap()]);
    let err = make(&args, now()).unwrap_err().to_string();
    assert!(
        err.contains("text.jsonl line 1") && err.contains("not JSON"),
        "{err}"
    );
    let empty = input("empty.jsonl", b"\n\n");
    assert!(matches!(
        make(&parse(&[empty.to_str().unwrap()]), now()),
        Err(EventError::Empty)
    ));
}

#[test]
fn whole_files_are_one_record_each_with_fixed_sequence_numbers() {
    let a = input("a.bin", &[0, 159, 146, 150, b'\n', 1]);
    let b = input("b.bin", b"second\nfile");
    let args = parse(&[
        "--whole-files",
        "--partition-key",
        "k",
        "--first-sequence",
        "40",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    let event = make(&args, now()).unwrap();
    assert_eq!(
        event["Records"][1]["kinesis"]["sequenceNumber"],
        sequence_number(41)
    );
    let event = decode_event(&bytes(&event)).unwrap();
    assert_eq!(
        &event.items[0].record().data[..],
        &[0, 159, 146, 150, b'\n', 1]
    );
    assert_eq!(&event.items[1].record().data[..], b"second\nfile");
}

#[test]
fn aggregates_hold_the_user_records_in_order_with_their_keys() {
    let file = input(
        "agg.jsonl",
        b"{\"k\":\"a\"}\n{\"k\":\"b\"}\n{\"k\":\"c\"}\n{\"k\":\"d\"}\n{\"k\":\"e\"}\n",
    );
    let args = parse(&[
        "--key-field",
        "k",
        "--aggregate",
        "2",
        file.to_str().unwrap(),
    ]);
    let event = make(&args, now()).unwrap();
    assert_eq!(event["Records"].as_array().unwrap().len(), 3);
    let decoded = decode_event(&bytes(&event)).unwrap();
    let keys: Vec<String> = decoded
        .items
        .iter()
        .map(|i| i.record().partition_key.clone())
        .collect();
    assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    assert_eq!(decoded.items[1].record().position.subsequence, 1);
}

#[test]
fn window_fields_make_a_tumbling_window_event() {
    let file = input("window.jsonl", b"{\"n\":1}\n");
    let args = parse(&[
        "--window-start",
        "2026-12-02T07:00:00Z",
        "--window-end",
        "2026-12-02T07:01:00Z",
        "--window-state",
        "{\"sum\":4}",
        "--final-invoke",
        file.to_str().unwrap(),
    ]);
    let event = decode_window_event(&bytes(&make(&args, now()).unwrap())).unwrap();
    assert_eq!(event.info.end, "2026-12-02T07:01:00Z");
    assert!(event.info.is_final && !event.info.terminated_early);
    assert_eq!(event.state, Some(serde_json::json!({"sum": 4})));
    assert_eq!(event.records.items.len(), 1);
    let bad = parse(&[
        "--window-start",
        "a",
        "--window-end",
        "b",
        "--window-state",
        "{",
        file.to_str().unwrap(),
    ]);
    assert!(matches!(make(&bad, now()), Err(EventError::WindowState(_))));
}

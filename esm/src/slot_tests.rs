//! The slot's rules, one test each, on records made by hand.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

use super::*;

const ARN: &str = "arn:aws:kinesis:us-east-1:1:stream/s";
const SHARD: &str = "shardId-000000000000";

fn record(n: u64, arrival: f64) -> StreamRecord {
    StreamRecord {
        sequence: n.to_string().parse().unwrap(),
        partition_key: format!("k{n}"),
        data: Bytes::from_static(b"x"),
        arrival,
    }
}

fn slot(n: u64) -> SlotModel {
    let mut slot = SlotModel::default();
    slot.push((1..=n).map(|n| record(n, 1_000.0 + n as f64)));
    slot
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn sequences(invocation: &Invocation) -> Vec<String> {
    invocation
        .records()
        .iter()
        .map(|r| r.sequence.to_string())
        .collect()
}

fn invoke(slot: &mut SlotModel, config: &MappingConfig) -> Invocation {
    if !slot.in_flight() {
        assert!(slot.take_batch(config, ARN, SHARD));
    }
    match slot.next_step(config, at(2_000)) {
        Step::Invoke(invocation) => invocation,
        other => panic!("expected an invocation, got {other:?}"),
    }
}

fn retry_from(n: u64) -> Answer {
    Answer::Response(Bytes::from(format!(
        r#"{{"batchItemFailures":[{{"itemIdentifier":"{n}"}}]}}"#
    )))
}

fn ok() -> Answer {
    Answer::Response(Bytes::from_static(b"{}"))
}

#[test]
fn a_partial_failure_retries_from_the_reported_record_with_newer_records_behind() {
    let config = MappingConfig {
        batch_size: 3,
        ..MappingConfig::default()
    };
    let mut slot = slot(5);
    let first = invoke(&mut slot, &config);
    assert_eq!(sequences(&first), ["1", "2", "3"]);
    let answered = slot.answered(&first, retry_from(2), &config);
    assert_eq!((answered.done, answered.retried), (1, true));
    let second = invoke(&mut slot, &config);
    assert_eq!(sequences(&second), ["2", "3", "4"]);
    assert!(matches!(second, Invocation::Records { retries: 1, .. }));
    slot.answered(&second, ok(), &config);
    let third = invoke(&mut slot, &config);
    assert_eq!(sequences(&third), ["5"]);
    assert!(matches!(third, Invocation::Records { retries: 0, .. }));
    slot.answered(&third, ok(), &config);
    assert!(slot.is_idle());
}

#[test]
fn bisect_splits_at_the_reported_record_without_a_retry_and_halves_on_errors() {
    let config = MappingConfig {
        batch_size: 4,
        bisect: true,
        retry_limit: Some(1),
        ..MappingConfig::default()
    };
    let mut slot = slot(4);
    let first = invoke(&mut slot, &config);
    let answered = slot.answered(&first, retry_from(3), &config);
    assert!(answered.bisected && !answered.retried);
    let rest = invoke(&mut slot, &config);
    assert_eq!(sequences(&rest), ["3", "4"]);
    let answered = slot.answered(&rest, Answer::Failed("crash".into()), &config);
    assert!(answered.bisected);
    let half = invoke(&mut slot, &config);
    assert_eq!(sequences(&half), ["3"]);
    assert!(
        slot.answered(&half, Answer::Failed("crash".into()), &config)
            .retried
    );
    let again = invoke(&mut slot, &config);
    assert_eq!(sequences(&again), ["3"]);
    let answered = slot.answered(&again, Answer::Failed("crash".into()), &config);
    assert_eq!(answered.discards.len(), 1, "past the retry limit");
    assert_eq!(answered.discards[0].condition, "RetryAttemptsExhausted");
    assert_eq!(answered.discards[0].invokes, 2);
    let last = invoke(&mut slot, &config);
    assert_eq!(sequences(&last), ["4"]);
}

#[test]
fn with_bisect_a_partial_failure_at_the_first_record_is_retried_whole_not_halved() {
    let config = MappingConfig {
        bisect: true,
        retry_limit: Some(0),
        ..MappingConfig::default()
    };
    let mut slot = slot(4);
    let first = invoke(&mut slot, &config);
    slot.answered(&first, retry_from(3), &config);
    let rest = invoke(&mut slot, &config);
    let answered = slot.answered(&rest, retry_from(3), &config);
    assert!(!answered.bisected);
    assert_eq!(answered.discards[0].records.len(), 2, "3 and 4 go together");
    assert!(matches!(slot.next_step(&config, at(2_000)), Step::Idle));
}

#[test]
fn records_past_the_age_limit_are_discarded_unsent() {
    let config = MappingConfig {
        max_record_age: Some(Duration::from_secs(60)),
        ..MappingConfig::default()
    };
    let mut slot = SlotModel::default();
    slot.push([record(1, 100.0), record(2, 1_990.0)]);
    assert!(slot.take_batch(&config, ARN, SHARD));
    let Step::Discard(discard) = slot.next_step(&config, at(2_000)) else {
        panic!("the old record is discarded first");
    };
    assert_eq!(discard.condition, "RecordAgeExceeded");
    assert_eq!(discard.records.len(), 1);
    let Step::Invoke(invocation) = slot.next_step(&config, at(2_000)) else {
        panic!("then the fresh one is sent");
    };
    assert_eq!(sequences(&invocation), ["2"]);
}

#[test]
fn a_window_threads_its_state_and_closes_with_a_final_invocation() {
    let config = MappingConfig {
        tumbling_window: Some(60),
        ..MappingConfig::default()
    };
    let mut slot = SlotModel::default();
    slot.push([record(1, 1_000.0), record(2, 1_010.0), record(3, 1_090.0)]);
    let first = invoke(&mut slot, &config);
    assert_eq!(sequences(&first), ["1", "2"], "one window's records");
    let with_state = |state: serde_json::Value| {
        Answer::Response(Bytes::from(json!({"state": state}).to_string()))
    };
    let answered = slot.answered(&first, Answer::Response(Bytes::from_static(b"{}")), &config);
    assert!(answered.retried, "an answer without a state failed");
    let again = invoke(&mut slot, &config);
    slot.answered(&again, with_state(json!({"n": 2})), &config);
    // A record of the next window: the open one gets its final invocation.
    assert!(slot.take_batch(&config, ARN, SHARD));
    let Step::Invoke(Invocation::Final { window, early }) = slot.next_step(&config, at(2_000))
    else {
        panic!("a final invocation first");
    };
    assert_eq!(
        (window.start, early, window.state.clone()),
        (960, false, json!({"n": 2}))
    );
    let last = Invocation::Final { window, early };
    slot.answered(&last, with_state(json!({})), &config);
    let next = invoke(&mut slot, &config);
    let Invocation::Records {
        window: Some(window),
        ..
    } = &next
    else {
        panic!("the next window");
    };
    assert_eq!((window.start, window.state.clone()), (1_080, json!({})));
    slot.answered(&next, with_state(json!({"n": 1})), &config);
    assert!(
        slot.close_if_over(at(1_142), &config),
        "past its end and a second"
    );
    assert!(matches!(
        slot.next_step(&config, at(1_142)),
        Step::Invoke(Invocation::Final { .. })
    ));
}

#[test]
fn routing_keeps_a_key_on_one_slot() {
    for slots in 1..=10 {
        let slot = slot_of("user-7", slots);
        assert!(slot < slots);
        assert_eq!(slot, slot_of("user-7", slots));
    }
}

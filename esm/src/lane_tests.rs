//! The lane's rules, one test each, on records made by hand.

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

fn lane(n: u64) -> LaneModel {
    let mut lane = LaneModel::default();
    lane.push((1..=n).map(|n| record(n, 1_000.0 + n as f64)));
    lane
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

fn invoke(lane: &mut LaneModel, config: &MappingConfig) -> Invocation {
    if !lane.in_flight() {
        assert!(lane.take_batch(config, ARN, SHARD));
    }
    match lane.next_step(config, at(2_000)) {
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
    let mut lane = lane(5);
    let first = invoke(&mut lane, &config);
    assert_eq!(sequences(&first), ["1", "2", "3"]);
    let answered = lane.answered(&first, retry_from(2), &config);
    assert_eq!((answered.done, answered.retried), (1, true));
    let second = invoke(&mut lane, &config);
    assert_eq!(sequences(&second), ["2", "3", "4"]);
    assert!(matches!(second, Invocation::Records { retries: 1, .. }));
    lane.answered(&second, ok(), &config);
    let third = invoke(&mut lane, &config);
    assert_eq!(sequences(&third), ["5"]);
    assert!(matches!(third, Invocation::Records { retries: 0, .. }));
    lane.answered(&third, ok(), &config);
    assert!(lane.is_idle());
}

#[test]
fn bisect_splits_at_the_reported_record_without_a_retry_and_halves_on_errors() {
    let config = MappingConfig {
        batch_size: 4,
        bisect: true,
        retry_limit: Some(1),
        ..MappingConfig::default()
    };
    let mut lane = lane(4);
    let first = invoke(&mut lane, &config);
    let answered = lane.answered(&first, retry_from(3), &config);
    assert!(answered.bisected && !answered.retried);
    let rest = invoke(&mut lane, &config);
    assert_eq!(sequences(&rest), ["3", "4"]);
    let answered = lane.answered(&rest, Answer::Failed("crash".into()), &config);
    assert!(answered.bisected);
    let half = invoke(&mut lane, &config);
    assert_eq!(sequences(&half), ["3"]);
    assert!(
        lane.answered(&half, Answer::Failed("crash".into()), &config)
            .retried
    );
    let again = invoke(&mut lane, &config);
    assert_eq!(sequences(&again), ["3"]);
    let answered = lane.answered(&again, Answer::Failed("crash".into()), &config);
    assert_eq!(answered.discards.len(), 1, "past the retry limit");
    assert_eq!(answered.discards[0].condition, "RetryAttemptsExhausted");
    assert_eq!(answered.discards[0].invokes, 2);
    let last = invoke(&mut lane, &config);
    assert_eq!(sequences(&last), ["4"]);
}

#[test]
fn with_bisect_a_partial_failure_at_the_first_record_is_retried_whole_not_halved() {
    let config = MappingConfig {
        bisect: true,
        retry_limit: Some(0),
        ..MappingConfig::default()
    };
    let mut lane = lane(4);
    let first = invoke(&mut lane, &config);
    lane.answered(&first, retry_from(3), &config);
    let rest = invoke(&mut lane, &config);
    let answered = lane.answered(&rest, retry_from(3), &config);
    assert!(!answered.bisected);
    assert_eq!(answered.discards[0].records.len(), 2, "3 and 4 go together");
    assert!(matches!(lane.next_step(&config, at(2_000)), Step::Idle));
}

#[test]
fn records_past_the_age_limit_are_discarded_unsent() {
    let config = MappingConfig {
        max_record_age: Some(Duration::from_secs(60)),
        ..MappingConfig::default()
    };
    let mut lane = LaneModel::default();
    lane.push([record(1, 100.0), record(2, 1_990.0)]);
    assert!(lane.take_batch(&config, ARN, SHARD));
    let Step::Discard(discard) = lane.next_step(&config, at(2_000)) else {
        panic!("the old record is discarded first");
    };
    assert_eq!(discard.condition, "RecordAgeExceeded");
    assert_eq!(discard.records.len(), 1);
    let Step::Invoke(invocation) = lane.next_step(&config, at(2_000)) else {
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
    let mut lane = LaneModel::default();
    lane.push([record(1, 1_000.0), record(2, 1_010.0), record(3, 1_090.0)]);
    let first = invoke(&mut lane, &config);
    assert_eq!(sequences(&first), ["1", "2"], "one window's records");
    let with_state = |state: serde_json::Value| {
        Answer::Response(Bytes::from(json!({"state": state}).to_string()))
    };
    let answered = lane.answered(&first, Answer::Response(Bytes::from_static(b"{}")), &config);
    assert!(answered.retried, "an answer without a state failed");
    let again = invoke(&mut lane, &config);
    lane.answered(&again, with_state(json!({"n": 2})), &config);
    // A record of the next window: the open one gets its final invocation.
    assert!(lane.take_batch(&config, ARN, SHARD));
    let Step::Invoke(Invocation::Final { window, early }) = lane.next_step(&config, at(2_000))
    else {
        panic!("a final invocation first");
    };
    assert_eq!(
        (window.start, early, window.state.clone()),
        (960, false, json!({"n": 2}))
    );
    let last = Invocation::Final { window, early };
    lane.answered(&last, with_state(json!({})), &config);
    let next = invoke(&mut lane, &config);
    let Invocation::Records {
        window: Some(window),
        ..
    } = &next
    else {
        panic!("the next window");
    };
    assert_eq!((window.start, window.state.clone()), (1_080, json!({})));
    lane.answered(&next, with_state(json!({"n": 1})), &config);
    assert!(
        lane.close_if_over(at(1_142), &config),
        "past its end and a second"
    );
    assert!(matches!(
        lane.next_step(&config, at(1_142)),
        Step::Invoke(Invocation::Final { .. })
    ));
}

#[test]
fn routing_keeps_a_key_on_one_lane() {
    for lanes in 1..=10 {
        let lane = lane_of("user-7", lanes);
        assert!(lane < lanes);
        assert_eq!(lane, lane_of("user-7", lanes));
    }
}

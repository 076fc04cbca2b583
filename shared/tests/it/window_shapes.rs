//! The tumbling-window shapes the AWS documentation shows
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>),
//! read and written by Shardline and checked against `aws_lambda_events`'
//! `KinesisTimeWindowEvent` and `KinesisTimeWindowEventResponse`.
//!
//! `aws_lambda_events` types the state as string to string (as the guide
//! recommends for Java), while the guide's own example holds numbers:
//! Shardline takes any JSON object, so the round trips with
//! `aws_lambda_events` use a state of strings.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::event::kinesis::{KinesisTimeWindowEvent, KinesisTimeWindowEventResponse};
use common::*;
use serde_json::json;
use shardline::decode::Item;
use shardline::response::BatchItemFailure;
use shardline::window::{
    WindowEventError, WindowHandler, WindowInfo, WindowResponse, decode_window_event,
    process_window_event,
};
use shardline::{Deadline, HandlerError, Record};

const TIME_WINDOW: &str = include_str!("../fixtures/kinesis-time-window-event.json");
const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream";

#[test]
fn the_documented_window_event_decodes_field_for_field() {
    let event = decode_window_event(TIME_WINDOW.as_bytes()).unwrap();
    assert_eq!(
        event.info,
        WindowInfo {
            start: "2020-12-09T07:04:00Z".into(),
            end: "2020-12-09T07:06:00Z".into(),
            shard_id: "shardId-000000000006".into(),
            stream_arn: ARN.into(),
            is_final: false,
            terminated_early: false,
        }
    );
    assert_eq!(event.state, Some(json!({"1": 282, "2": 715})));
    assert_eq!(event.records.items.len(), 1);
    let Item::Ready(record) = &event.records.items[0] else {
        panic!("the documented record decodes")
    };
    assert_eq!(record.text(), Some("Hello, this is a test."));
    assert_eq!(record.partition_key, "1");
}

#[test]
fn aws_lambda_events_reads_the_documented_event_only_with_a_state_of_strings() {
    assert!(
        serde_json::from_str::<KinesisTimeWindowEvent>(TIME_WINDOW).is_err(),
        "aws_lambda_events types the state as string to string; the guide's example has numbers"
    );
    let mut strings: serde_json::Value = serde_json::from_str(TIME_WINDOW).unwrap();
    strings["state"] = json!({"1": "282", "2": "715"});
    let theirs: KinesisTimeWindowEvent = serde_json::from_value(strings.clone()).unwrap();
    // What aws_lambda_events writes back, Shardline reads to the same window.
    // (aws_lambda_events 1.2 writes approximateArrivalTimestamp as a string,
    // "1607497475", which Lambda never sends and Shardline's decoder takes for
    // a malformed event: put the number back before reading it.)
    let mut written = serde_json::to_value(&theirs).unwrap();
    let arrival = &mut written["Records"][0]["kinesis"]["approximateArrivalTimestamp"];
    assert_eq!(*arrival, json!("1607497475"));
    *arrival = json!(1_607_497_475.0);
    let ours = decode_window_event(written.to_string().as_bytes()).unwrap();
    let props = &theirs.time_window_properties;
    assert_eq!(ours.info.start, "2020-12-09T07:04:00Z");
    assert_eq!(ours.info.end, "2020-12-09T07:06:00Z");
    assert_eq!(props.window.start.to_rfc3339(), "2020-12-09T07:04:00+00:00");
    assert_eq!(Some(ours.info.shard_id.clone()), props.shard_id);
    assert_eq!(Some(ours.info.stream_arn.clone()), props.event_source_arn);
    assert_eq!(ours.info.is_final, props.is_final_invoke_for_window);
    assert_eq!(ours.info.terminated_early, props.is_window_terminated_early);
    let state: HashMap<String, String> = serde_json::from_value(ours.state.unwrap()).unwrap();
    assert_eq!(state, props.state);
    assert_eq!(ours.records.items.len(), theirs.kinesis_event.records.len());
}

#[test]
fn the_documented_response_is_what_shardline_writes() {
    let mut response = WindowResponse::default();
    response.state.insert("1".into(), 282.into());
    response.state.insert("2".into(), 715.into());
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"state": {"1": 282, "2": 715}, "batchItemFailures": []})
    );
    let back: WindowResponse =
        serde_json::from_str(r#"{"state":{"1":282,"2":715},"batchItemFailures":[]}"#).unwrap();
    assert_eq!(back, response);
}

#[test]
fn aws_lambda_events_reads_a_response_state_of_strings() {
    let mut response = WindowResponse::default();
    response.state.insert("1".into(), "282".into());
    response.batch_item_failures.push(BatchItemFailure {
        item_identifier: "49590338271490256608559692538361571095921575989136588898".into(),
    });
    let json = serde_json::to_string(&response).unwrap();
    let theirs: KinesisTimeWindowEventResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(
        theirs.time_window_event_response_properties.state,
        HashMap::from([("1".to_owned(), "282".to_owned())])
    );
    // aws_lambda_events' response type has no batchItemFailures (1.2): what it
    // writes has a state and nothing else, which Shardline reads back.
    let their_json = serde_json::to_value(&theirs).unwrap();
    assert_eq!(their_json, json!({"state": {"1": "282"}}));
    let back: WindowResponse = serde_json::from_value(json!({
        "state": their_json["state"].clone(), "batchItemFailures": []
    }))
    .unwrap();
    assert_eq!(back.state, response.state);
}

/// Counts records per partition key, the guide's Python example in Rust.
struct PerKey;

impl WindowHandler for PerKey {
    type State = BTreeMap<String, u64>;

    fn add(&self, state: &mut Self::State, record: &Record) -> Result<(), HandlerError> {
        *state.entry(record.partition_key.clone()).or_default() += 1;
        Ok(())
    }

    async fn close(&self, _: &WindowInfo, _: &Self::State) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_documented_event_runs_like_the_guides_python_example() {
    let env = Env::new("window-doc");
    let event = decode_window_event(TIME_WINDOW.as_bytes()).unwrap();
    let outcome = process_window_event(
        event,
        &Arc::new(PerKey),
        &env.store,
        &env.config,
        Deadline::none(),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_string(&outcome.response).unwrap(),
        r#"{"state":{"1":283,"2":715},"batchItemFailures":[]}"#
    );
    assert!(!outcome.closed, "not the final invocation");
}

#[test]
fn an_event_without_a_window_names_the_missing_setting() {
    let plain = include_str!("../fixtures/kinesis-event.json");
    let err = decode_window_event(plain.as_bytes()).unwrap_err();
    assert!(matches!(err, WindowEventError::NotWindowed { .. }), "{err}");
    assert!(err.to_string().contains("TumblingWindowInSeconds"), "{err}");
    let mut odd: serde_json::Value = serde_json::from_str(TIME_WINDOW).unwrap();
    odd["window"] = json!({"start": 5});
    let err = decode_window_event(odd.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("window is an object"), "{err}");
}

#[test]
fn a_bad_record_in_a_window_event_is_one_undecodable_item() {
    let mut event: serde_json::Value = serde_json::from_str(TIME_WINDOW).unwrap();
    event["Records"][0]["kinesis"]["data"] = "%% not base64".into();
    event["isFinalInvokeForWindow"] = "yes".into();
    let decoded = decode_window_event(event.to_string().as_bytes()).unwrap();
    assert!(matches!(
        &decoded.records.items[0],
        Item::Undecodable { record, .. } if &record.data[..] == b"%% not base64"
    ));
    assert!(
        !decoded.info.is_final,
        "a flag that is not a boolean is false"
    );
}

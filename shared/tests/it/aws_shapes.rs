//! The JSON shapes AWS documents, read by Shardline and by `aws_lambda_events`
//! (the Rust runtime's own event types): both must see the same records, and
//! Shardline's response must be what Lambda's response type reads.

use crate::common;

use std::time::UNIX_EPOCH;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use common::*;
use shardline::decode::{EventError, Item, KinesisEventEnvelope, decode_envelope, decode_event};
use shardline::{BatchResponse, RecordOrigin};

const DOCUMENTED: &str = include_str!("../fixtures/kinesis-event.json");
const TIME_WINDOW: &str = include_str!("../fixtures/kinesis-time-window-event.json");

/// (sequence number, partition key, data, arrival in epoch ms, shard id, stream ARN)
type Seen = (String, String, Vec<u8>, i64, String, String);

fn shardline_view(json: &str) -> Vec<Seen> {
    let decoded = decode_event(json.as_bytes()).expect("a documented event decodes");
    decoded
        .items
        .iter()
        .map(|item| {
            let Item::Ready(r) = item else {
                panic!("every documented record is decodable: {item:?}")
            };
            assert_eq!(r.origin, RecordOrigin::Plain);
            assert_eq!(r.position.subsequence, 0);
            let arrival = r
                .approximate_arrival
                .expect("an arrival time")
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis();
            (
                r.position.sequence.to_string(),
                r.partition_key.clone(),
                r.data.to_vec(),
                i64::try_from(arrival).unwrap(),
                r.shard.shard_id.to_string(),
                r.shard.stream_arn.to_string(),
            )
        })
        .collect()
}

fn aws_view(json: &str) -> Vec<Seen> {
    let event: KinesisEvent = serde_json::from_str(json).expect("aws_lambda_events reads it");
    event
        .records
        .iter()
        .map(|r| {
            let event_id = r.event_id.clone().unwrap();
            let (shard_id, sequence_in_id) = event_id.split_once(':').unwrap();
            assert_eq!(sequence_in_id, r.kinesis.sequence_number);
            (
                r.kinesis.sequence_number.clone(),
                r.kinesis.partition_key.clone(),
                r.kinesis.data.0.clone(),
                r.kinesis.approximate_arrival_timestamp.0.timestamp_millis(),
                shard_id.to_owned(),
                r.event_source_arn.clone().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_documented_kinesis_event_reads_the_same_in_shardline_and_aws_lambda_events() {
    let ours = shardline_view(DOCUMENTED);
    assert_eq!(ours, aws_view(DOCUMENTED));
    assert_eq!(ours.len(), 2);
    let (sequence, key, data, arrival, shard, arn) = &ours[0];
    assert_eq!(
        sequence,
        "49590338271490256608559692538361571095921575989136588898"
    );
    assert_eq!(key, "1");
    assert_eq!(data, b"Hello, this is a test.");
    assert_eq!(*arrival, 1_545_084_650_987);
    assert_eq!(shard, "shardId-000000000006");
    assert_eq!(
        arn,
        "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
    );
    assert_eq!(ours[1].2, b"This is only a test.");
    assert_eq!(ours[1].3, 1_545_084_711_166);
}

#[test]
fn the_documented_time_window_event_reads_as_a_kinesis_event_too() {
    let ours = shardline_view(TIME_WINDOW);
    assert_eq!(ours, aws_view(TIME_WINDOW));
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].2, b"Hello, this is a test.");
    assert_eq!(ours[0].3, 1_607_497_475_000);
    assert_eq!(ours[0].4, "shardId-000000000006");
}

#[test]
fn the_runtime_path_reads_the_documented_event_like_the_local_path() {
    // Inside Lambda the runtime deserializes the envelope, then decodes it.
    let envelope: KinesisEventEnvelope = serde_json::from_str(DOCUMENTED).unwrap();
    let via_runtime: Vec<String> = decode_envelope(envelope)
        .unwrap()
        .items
        .iter()
        .map(|i| i.record().position.to_string())
        .collect();
    let via_file: Vec<String> = decode_event(DOCUMENTED.as_bytes())
        .unwrap()
        .items
        .iter()
        .map(|i| i.record().position.to_string())
        .collect();
    assert_eq!(via_runtime, via_file);
}

#[tokio::test]
async fn the_documented_event_runs_through_the_engine() {
    let env = Env::new("aws-doc");
    let handler = Scripted::ok();
    let outcome = env.run(DOCUMENTED.as_bytes(), &handler).await;
    assert!(outcome.response.is_success());
    assert_eq!(
        handler.seen_texts(),
        ["Hello, this is a test.", "This is only a test."]
    );
    assert_eq!(
        serde_json::to_string(&outcome.response).unwrap(),
        r#"{"batchItemFailures":[]}"#
    );
}

#[test]
fn an_empty_response_is_an_empty_list() {
    let empty = BatchResponse::default();
    assert!(empty.is_success());
    assert_eq!(
        serde_json::to_string(&empty).unwrap(),
        r#"{"batchItemFailures":[]}"#
    );
    assert_eq!(
        serde_json::to_string(&KinesisEventResponse::default()).unwrap(),
        r#"{"batchItemFailures":[]}"#,
        "the same text as aws_lambda_events' empty response"
    );
    let back: KinesisEventResponse = serde_json::from_str(r#"{"batchItemFailures":[]}"#).unwrap();
    assert!(back.batch_item_failures.is_empty());
}

#[test]
fn batch_response_round_trips_through_kinesis_event_response() {
    let ids = [
        "49590338271490256608559692540925702759324208523137515618",
        "49590338271490256608559692538361571095921575989136588898",
    ];
    let mut ours = BatchResponse::default();
    for id in ids {
        ours.retry_from(id);
    }
    let json = serde_json::to_string(&ours).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}},{{"itemIdentifier":"{}"}}]}}"#,
            ids[0], ids[1]
        )
    );
    let theirs: KinesisEventResponse = serde_json::from_str(&json).unwrap();
    let their_ids: Vec<Option<String>> = theirs
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(their_ids, ids.map(|id| Some(id.to_owned())));

    // And back: what aws_lambda_events writes, Shardline reads to the same identifiers.
    let mut theirs = KinesisEventResponse::default();
    for id in ids {
        theirs.add_failure(id);
    }
    let their_json = serde_json::to_value(&theirs).unwrap();
    assert_eq!(their_json, serde_json::to_value(&ours).unwrap());
    let back: BatchResponse = serde_json::from_value(their_json).unwrap();
    assert_eq!(back, ours);
}

#[test]
fn one_bad_payload_fails_aws_lambda_events_whole_but_only_its_record_in_shardline() {
    let mut event: serde_json::Value = serde_json::from_str(DOCUMENTED).unwrap();
    event["Records"][0]["kinesis"]["data"] = "%% not base64 %%".into();
    let json = event.to_string();
    assert!(
        serde_json::from_str::<KinesisEvent>(&json).is_err(),
        "aws_lambda_events decodes data while deserializing: the event fails"
    );
    let decoded = decode_event(json.as_bytes()).unwrap();
    assert!(matches!(&decoded.items[0], Item::Undecodable { record, .. }
        if &record.data[..] == b"%% not base64 %%"));
    assert!(
        matches!(&decoded.items[1], Item::Ready(r) if r.text() == Some("This is only a test."))
    );
}

#[test]
fn events_of_other_sources_are_whole_invocation_errors() {
    let sqs = r#"{"Records":[{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","body":"test",
        "attributes":{},"messageAttributes":{},"md5OfBody":"098f6bcd4621d373cade4e832627b4f6",
        "eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-2:123456789012:my-queue",
        "awsRegion":"us-east-2"}]}"#;
    let err = decode_event(sqs.as_bytes()).unwrap_err();
    assert!(
        matches!(err, EventError::NotKinesis { index: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("aws:sqs"), "{err}");

    let dynamodb = r#"{"Records":[{"eventID":"1","eventName":"INSERT","eventVersion":"1.0",
        "eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"Keys":{}}}]}"#;
    let err = decode_event(dynamodb.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("aws:dynamodb"), "{err}");

    let s3_like = r#"{"detail-type":"Object Created","source":"aws.s3"}"#;
    assert!(matches!(
        decode_event(s3_like.as_bytes()),
        Err(EventError::NoRecords)
    ));
}

#[test]
fn an_absurd_arrival_timestamp_is_dropped_not_a_panic() {
    let mut event: serde_json::Value = serde_json::from_str(DOCUMENTED).unwrap();
    event["Records"][0]["kinesis"]["approximateArrivalTimestamp"] = 1e300.into();
    let decoded = decode_event(event.to_string().as_bytes()).unwrap();
    assert_eq!(decoded.items[0].record().approximate_arrival, None);
    assert!(decoded.items[1].record().approximate_arrival.is_some());
}

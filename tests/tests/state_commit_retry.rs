//! The commit is the write that makes a batch's work stick (checkpoint,
//! delivery progress, quarantine). When DynamoDB refuses it more times in a row
//! than the SDK retries (throttling comes in bursts), the engine retries it
//! with backoff while the invocation has time, instead of handing the whole
//! batch back to Lambda: a retried batch would send a fan-out's records again.
//! Against moto behind the fault proxy, which fails the first 4 commit requests.

use std::time::Duration;

use shardline::decode::decode_event;
use shardline::state::DynamoDbStore;
use shardline::{Deadline, EngineConfig, ProgressMode, process_event};
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::lambda::{EventRecord, event, stream_arn};
use shardline_tests::recorder::{Recorder, text};
use shardline_tests::{Emulators, unique_name};

fn records() -> Vec<EventRecord> {
    (1..=5)
        .map(|i| EventRecord {
            sequence_number: format!("4959033827149025660855969253836157109592157598913658{i:04}"),
            partition_key: format!("k{i}"),
            data: text(i),
        })
        .collect()
}

/// Runs the batch with the commit's operation failed 4 times first; then runs
/// it again on a store without faults, which must skip every record.
async fn commit_survives_a_burst(mode: ProgressMode, operation: &str) {
    let emulators = Emulators::from_env();
    let table = unique_name("commit-retry");
    let direct = DynamoDbStore::new(emulators.dynamodb(), &table);
    direct.create_table().await.unwrap();
    let faults = Faults {
        dynamodb_fail_first: vec![(operation.to_owned(), 4)],
        ..Faults::default()
    };
    let proxy = FaultProxy::start(&emulators.dynamodb_endpoint, &faults);
    let client = aws_sdk_dynamodb::Client::from_conf(
        emulators
            .dynamodb_config()
            .endpoint_url(&proxy.endpoint)
            .build(),
    );
    let faulty = DynamoDbStore::new(client, &table);
    let mut config = EngineConfig::new("orders");
    config.progress = mode;
    let json = event(&stream_arn("orders"), "shardId-000000000000", &records());
    let handler = Recorder::default();

    let outcome = process_event(
        decode_event(&json).unwrap(),
        &handler,
        &faulty,
        &config,
        Deadline::after(Duration::from_secs(30)),
    )
    .await;
    let outcome =
        outcome.unwrap_or_else(|e| panic!("{mode:?}: the batch was handed back to Lambda: {e}"));
    assert!(
        outcome.response.is_success(),
        "{mode:?}: {:?}",
        outcome.response
    );
    assert_eq!(proxy.stats()["injected_dynamodb_failures"], 4, "{mode:?}");

    let again = Recorder::default();
    let replay = process_event(
        decode_event(&json).unwrap(),
        &again,
        &direct,
        &config,
        Deadline::none(),
    )
    .await
    .unwrap();
    assert!(
        again.seen().is_empty(),
        "{mode:?}: the commit landed, so nothing runs twice: {:?}",
        again.seen()
    );
    assert_eq!(replay.report.skipped_checkpointed, 5, "{mode:?}");
}

#[tokio::test]
async fn a_checkpoint_commit_refused_four_times_is_retried_within_the_invocation() {
    commit_survives_a_burst(ProgressMode::Shard, "UpdateItem").await;
}

#[tokio::test]
async fn a_per_key_commit_refused_four_times_is_retried_within_the_invocation() {
    commit_survives_a_burst(ProgressMode::PartitionKey, "TransactWriteItems").await;
}

//! The commit is the write that makes a batch's work stick (checkpoint,
//! delivery progress, quarantine). When DynamoDB refuses it more times in a row
//! than the SDK retries (throttling comes in bursts), the engine retries it
//! with backoff while the invocation has time, instead of handing the whole
//! batch back to Lambda: a retried batch would send a fan-out's records again.
//! Against moto behind the fault proxy, which fails the first 4 commit requests.

use std::time::Duration;

use shardline::decode::decode_event;
use shardline::state::{DynamoDbStore, StateStore};
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

/// A fresh state table, a store on it directly and one behind the fault
/// proxy with `faults` (the proxy stops when dropped).
async fn stores_behind(name: &str, faults: &Faults) -> (DynamoDbStore, DynamoDbStore, FaultProxy) {
    let emulators = Emulators::from_env();
    let table = unique_name(name);
    let direct = DynamoDbStore::new(emulators.dynamodb(), &table);
    direct.create_table().await.unwrap();
    let proxy = FaultProxy::start(&emulators.dynamodb_endpoint, faults);
    let client = aws_sdk_dynamodb::Client::from_conf(
        emulators
            .dynamodb_config()
            .endpoint_url(&proxy.endpoint)
            .build(),
    );
    (direct, DynamoDbStore::new(client, &table), proxy)
}

/// Runs the batch with the commit's operation failed 4 times first; then runs
/// it again on a store without faults, which must skip every record.
async fn commit_survives_a_burst(mode: ProgressMode, operation: &str) {
    let faults = Faults {
        dynamodb_fail_first: vec![(operation.to_owned(), 4)],
        ..Faults::default()
    };
    let (direct, faulty, proxy) = stores_behind("commit-retry", &faults).await;
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

/// Runs `json` as Lambda would: again while the invocation fails or reports a
/// failed record (at most 6 times). Returns the last outcome.
async fn until_done(
    json: &[u8],
    handler: &Recorder,
    store: &DynamoDbStore,
    config: &EngineConfig,
) -> shardline::BatchOutcome {
    let mut last = None;
    for _ in 0..6 {
        let outcome = process_event(
            decode_event(json).unwrap(),
            handler,
            store,
            config,
            Deadline::after(Duration::from_secs(30)),
        )
        .await;
        match outcome {
            Ok(outcome) if outcome.response.is_success() => return outcome,
            Ok(outcome) => last = Some(outcome),
            Err(error) => eprintln!("invocation failed, Lambda retries: {error}"),
        }
    }
    panic!("the batch never succeeded: {last:?}");
}

/// A quarantined record gives its dedup claim back, so that the record put
/// back on the stream (redrive) runs instead of being skipped as a duplicate
/// of itself. DynamoDB gave the claim back in a request after the commit:
/// when that request failed (here three times: the SDK's own tries), the
/// engine tried the commit again, which read as superseded (its first try
/// had landed), and the claim stayed; the redriven copy was skipped after
/// redrive had deleted the record from the quarantine: lost. The claim now
/// goes back in the commit's own transaction.
#[tokio::test]
async fn a_quarantined_records_claim_goes_back_with_its_commit_whatever_fails_after() {
    // The claims are the 1st TransactWriteItems, the commit the 2nd; the
    // 3rd to 5th fail.
    let faults = Faults {
        dynamodb_fail_nth: (3..=5)
            .map(|n| ("TransactWriteItems".to_owned(), n))
            .collect(),
        ..Faults::default()
    };
    let (direct, faulty, _proxy) = stores_behind("claim-release", &faults).await;
    let mut config = EngineConfig::new("orders");
    config.max_attempts = 1;
    config.skip.dedup = Some(shardline::skip::DedupRule {
        key: std::sync::Arc::new(|record| record.text().map(str::to_owned)),
        window: Duration::from_secs(3600),
    });
    let handler = Recorder::default();
    handler.permanent.lock().unwrap().push("order-1".to_owned());
    let record = |n: u64, data: &str| EventRecord {
        sequence_number: format!("4959033827149025660855969253836157109592157598913658{n:04}"),
        partition_key: "k".into(),
        data: data.as_bytes().to_vec(),
    };
    let arn = stream_arn("orders");
    let first = event(
        &arn,
        "shardId-000000000000",
        &[record(1, "order-1"), record(2, "order-2")],
    );
    until_done(&first, &handler, &faulty, &config).await;
    let quarantined = direct.quarantined("orders").await.unwrap();
    assert_eq!(quarantined.len(), 1, "order-1 is quarantined");

    // The handler is mended; redrive puts order-1 back under a new number.
    handler.permanent.lock().unwrap().clear();
    let redriven = event(&arn, "shardId-000000000000", &[record(3, "order-1")]);
    let outcome = until_done(&redriven, &handler, &faulty, &config).await;
    assert_eq!(
        outcome.report.skipped_duplicate, 0,
        "the redriven record was skipped as a duplicate of itself: lost ({:?})",
        outcome.report
    );
    assert_eq!(outcome.report.processed, 1, "{:?}", outcome.report);
}

/// A transaction DynamoDB cancels because one of its items was throttled
/// (here the quarantine entry, first in the commit) is tried again. Read by
/// its last reason only (the fence's `None`), it was a permanent error that
/// handed the whole batch back to Lambda.
#[tokio::test]
async fn a_commit_cancelled_for_a_throttled_quarantine_entry_is_tried_again() {
    let faults = Faults {
        dynamodb_cancel_nth: vec![(1, "ThrottlingError".to_owned())],
        ..Faults::default()
    };
    let (direct, faulty, proxy) = stores_behind("cancelled", &faults).await;
    let handler = Recorder::default();
    handler
        .permanent
        .lock()
        .unwrap()
        .push(String::from_utf8(text(2)).unwrap());
    let json = event(&stream_arn("orders"), "shardId-000000000000", &records());
    let outcome = process_event(
        decode_event(&json).unwrap(),
        &handler,
        &faulty,
        &EngineConfig::new("orders"),
        Deadline::after(Duration::from_secs(30)),
    )
    .await
    .unwrap_or_else(|e| panic!("the batch was handed back to Lambda: {e}"));
    assert!(outcome.response.is_success(), "{:?}", outcome.response);
    assert_eq!(proxy.stats()["injected_dynamodb_failures"], 1);
    assert_eq!(direct.quarantined("orders").await.unwrap().len(), 1);
}

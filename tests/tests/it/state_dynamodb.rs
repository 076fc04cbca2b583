//! Shardline's DynamoDB state against moto: checkpoints, fencing, per-key
//! progress, dedup races and large quarantined records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shardline::state::StateStore;
use shardline::{EngineConfig, ProgressMode, Record};
use shardline_tests::lambda::{EventRecord, made_up};
use shardline_tests::recorder::{Recorder, counts, fresh_store, run, text};

#[tokio::test]
async fn checkpoint_mode_costs_two_requests_per_batch_and_replays_nothing() {
    let (store, counter) = fresh_store().await;
    let config = EngineConfig::new("orders");
    for n in [100u64, 1_000] {
        let shard = format!("shardId-{n:012}");
        let records = made_up(0, n, |i| format!("k{}", i % 7), text);
        let handler = Recorder::default();
        let first = run(&records, &shard, &handler, &store, &config).await;
        assert!(first.response.is_success());
        assert_eq!(first.report.processed, n);
        assert_eq!(handler.seen().len() as u64, n);
        assert_eq!(
            counts(&counter),
            BTreeMap::from([("GetItem".into(), 1), ("UpdateItem".into(), 1)]),
            "first pass of {n} records"
        );

        let replay = run(&records, &shard, &handler, &store, &config).await;
        assert!(replay.response.is_success());
        assert_eq!(replay.report.skipped_checkpointed, n);
        assert_eq!(
            handler.seen().len() as u64,
            n,
            "a replay applies nothing twice"
        );
        assert_eq!(
            counts(&counter),
            BTreeMap::from([("GetItem".into(), 1)]),
            "a replay of {n} records only reads the checkpoint"
        );
    }
}

#[tokio::test]
async fn quarantine_goes_in_the_same_transaction_as_the_checkpoint() {
    let (store, counter) = fresh_store().await;
    let config = EngineConfig::new("orders");
    let handler = Recorder::default();
    handler.permanent.lock().unwrap().push("r3".into());
    let records = made_up(0, 10, |_| "k".into(), text);
    let outcome = run(&records, "shardId-000000000001", &handler, &store, &config).await;
    assert!(outcome.response.is_success());
    assert_eq!(outcome.report.quarantined_permanent, 1);
    assert_eq!(
        counts(&counter),
        BTreeMap::from([("GetItem".into(), 1), ("TransactWriteItems".into(), 1)])
    );
    let quarantined = store.quarantined("orders").await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(&quarantined[0].data[..], b"r3");
    assert_eq!(quarantined[0].sequence_number, records[3].sequence_number);
}

#[tokio::test]
async fn retryable_failures_resume_and_exhaust_into_the_quarantine() {
    let (store, _counter) = fresh_store().await;
    let mut config = EngineConfig::new("orders");
    config.max_attempts = 2;
    let handler = Recorder::default();
    handler.retry.lock().unwrap().push("r2".into());
    let records = made_up(0, 5, |_| "k".into(), text);
    let shard = "shardId-000000000002";

    let first = run(&records, shard, &handler, &store, &config).await;
    assert_eq!(
        first.response.batch_item_failures[0].item_identifier,
        records[2].sequence_number
    );
    assert_eq!(handler.seen(), ["r0", "r1"]);

    let second = run(&records, shard, &handler, &store, &config).await;
    assert!(
        second.response.is_success(),
        "attempt 2 of 2 quarantines r2"
    );
    assert_eq!(second.report.skipped_checkpointed, 2);
    assert_eq!(second.report.quarantined_exhausted, 1);
    assert_eq!(handler.seen(), ["r0", "r1", "r3", "r4"]);
    let quarantined = store.quarantined("orders").await.unwrap();
    assert_eq!(quarantined[0].attempts, 2);
}

#[tokio::test]
async fn a_stale_invocation_loses_its_commit_and_stops_cleanly() {
    let (store, _counter) = fresh_store().await;
    let config = EngineConfig::new("orders");
    let records = made_up(0, 3, |_| "k".into(), text);
    let shard = "shardId-000000000003";

    // The stale invocation reads the shard, then hangs in its handler.
    let gate = Arc::new(tokio::sync::Notify::new());
    let stale = Recorder {
        gate: Some(gate.clone()),
        ..Recorder::default()
    };
    let stale_run = {
        let (records, stale, store, config) = (
            records.clone(),
            stale.clone(),
            store.clone(),
            config.clone(),
        );
        tokio::spawn(async move { run(&records, shard, &stale, &store, &config).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Lambda gave up on it and a newer invocation did the batch.
    let fresh = Recorder::default();
    let newer = run(&records, shard, &fresh, &store, &config).await;
    assert!(newer.response.is_success());
    assert_eq!(fresh.seen(), ["r0", "r1", "r2"]);

    for _ in 0..3 {
        gate.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stale_outcome = stale_run.await.unwrap();
    assert_eq!(stale_outcome.report.superseded, 1);
    assert_eq!(
        stale_outcome.response.batch_item_failures[0].item_identifier, records[0].sequence_number,
        "the stale invocation asks for a retry instead of claiming success"
    );
    // Its retry finds everything done.
    let retry = run(&records, shard, &Recorder::default(), &store, &config).await;
    assert_eq!(retry.report.skipped_checkpointed, 3);
}

#[tokio::test]
async fn partition_key_mode_lets_concurrent_batches_of_one_shard_progress() {
    let (store, counter) = fresh_store().await;
    let mut config = EngineConfig::new("orders");
    config.progress = ProgressMode::PartitionKey;
    let shard = "shardId-000000000004";
    // One shard's records; ParallelizationFactor 2 hands keys a* and b* to two batches.
    let all = made_up(
        0,
        40,
        |i| format!("{}{}", if i % 2 == 0 { "a" } else { "b" }, i % 6),
        text,
    );
    let (a, b): (Vec<EventRecord>, Vec<EventRecord>) = all
        .iter()
        .cloned()
        .partition(|r| r.partition_key.starts_with('a'));

    let handler = Recorder::default();
    handler.retry.lock().unwrap().push("r10".into()); // key a4
    let (out_a, out_b) = tokio::join!(
        run(&a, shard, &handler, &store, &config),
        run(&b, shard, &handler, &store, &config)
    );
    assert!(
        out_b.response.is_success(),
        "batch b does not wait for batch a"
    );
    assert_eq!(out_b.report.processed, 20);
    assert_eq!(
        out_a.response.batch_item_failures[0].item_identifier,
        all[10].sequence_number
    );
    // Key a4 (records 4, 10, 16, 22, 28, 34) stops at r10; other a-keys go on.
    assert_eq!(out_a.report.processed, 20 - 5);
    assert_eq!(out_a.report.not_started, 4);
    let seen = handler.seen();
    assert!(seen.contains(&"r4".to_string()) && !seen.contains(&"r16".to_string()));
    assert!(
        seen.contains(&"r38".to_string()),
        "another key after the failure went on"
    );
    let requests = counts(&counter);
    assert_eq!(requests.get("BatchGetItem"), Some(&2), "{requests:?}");
    assert_eq!(requests.get("TransactWriteItems"), Some(&2), "{requests:?}");

    // Lambda redelivers batch a from r10: only key a4's records run again.
    handler.retry.lock().unwrap().clear();
    let before = handler.seen().len();
    let retry = run(&a, shard, &handler, &store, &config).await;
    assert!(retry.response.is_success());
    let again: Vec<String> = handler.seen()[before..].to_vec();
    assert_eq!(again, ["r10", "r16", "r22", "r28", "r34"]);
    assert_eq!(retry.report.skipped_checkpointed, 15);
}

#[tokio::test]
async fn dedup_keys_racing_on_two_shards_have_exactly_one_winner() {
    let (store, _counter) = fresh_store().await;
    let mut config = EngineConfig::new("orders");
    config.skip.dedup = Some(shardline::skip::DedupRule {
        key: Arc::new(|r: &Record| Some(String::from_utf8_lossy(&r.data).into_owned())),
        window: Duration::from_secs(3600),
    });
    // 30 order ids, each produced twice: once on each shard.
    let payload = |i: u64| format!("order-{}", i % 30).into_bytes();
    let on_a = made_up(0, 30, |_| "a".into(), payload);
    let on_b = made_up(100, 30, |_| "b".into(), payload);
    let handler = Recorder::default();
    let (out_a, out_b) = tokio::join!(
        run(&on_a, "shardId-000000000010", &handler, &store, &config),
        run(&on_b, "shardId-000000000011", &handler, &store, &config)
    );
    // A copy met while the other shard's copy is in flight waits for
    // Lambda's retry (its shard stops there); once that copy is done, the
    // retry skips it as a duplicate.
    let mut outcomes = [out_a, out_b];
    for (records, shard, at) in [
        (&on_a, "shardId-000000000010", 0),
        (&on_b, "shardId-000000000011", 1),
    ] {
        for _ in 0..30 {
            let Some(from) = outcomes[at].response.batch_item_failures.first() else {
                break;
            };
            let from = from.item_identifier.clone();
            let rest: Vec<_> = records
                .iter()
                .filter(|r| r.sequence_number.as_str() >= from.as_str())
                .cloned()
                .collect();
            let retry = run(&rest, shard, &handler, &store, &config).await;
            outcomes[at].report.processed += retry.report.processed;
            outcomes[at].report.skipped_duplicate += retry.report.skipped_duplicate;
            outcomes[at].response = retry.response;
        }
        assert!(outcomes[at].response.is_success(), "{shard} drained");
    }
    let mut seen = handler.seen();
    seen.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "every order handled exactly once");
    let report =
        |f: fn(&shardline::BatchReport) -> u64| outcomes.iter().map(|o| f(&o.report)).sum::<u64>();
    assert_eq!(report(|r| r.skipped_duplicate), 30);
    assert_eq!(report(|r| r.processed), 30);
}

#[tokio::test]
async fn a_record_larger_than_a_dynamodb_item_is_quarantined_whole() {
    let (store, _counter) = fresh_store().await;
    let config = EngineConfig::new("orders");
    let big: Vec<u8> = (0..900 * 1024).map(|i| (i % 251) as u8).collect();
    let records = vec![EventRecord {
        sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
        partition_key: "k".into(),
        data: big.clone(),
    }];
    let handler = Recorder::default();
    handler
        .permanent
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&big).into_owned());
    let outcome = run(&records, "shardId-000000000005", &handler, &store, &config).await;
    assert_eq!(outcome.report.quarantined_permanent, 1);
    let quarantined = store.quarantined("orders").await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].data.len(), big.len());
    assert!(
        quarantined[0].data == big,
        "the payload comes back byte for byte"
    );
}

//! What Shardline's DynamoDB state costs, in requests per batch, counted
//! against moto: the figures the README gives are asserted here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shardline::decode::decode_event;
use shardline::state::{DynamoDbStore, StateStore};
use shardline::{Deadline, EngineConfig, ProgressMode, Record, process_event};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::recorder::{Recorder, counts, fresh_store, run, text};
use shardline_tests::{Emulators, unique_name};

/// Requests per batch for each mode, printed for the record and asserted:
/// checkpoint mode is constant; per-key progress grows by one request per 100
/// keys, dedup claims by two (claimed in flight, then marked done). Each mode and size gets a fresh table: moto's
/// TransactWriteItems copies the whole table once per item, so its time grows
/// with items x table size. That keeps the batched modes at 100 and 1,000
/// records here; checkpoint mode also runs at 10,000.
#[tokio::test]
async fn requests_per_batch_by_mode() {
    let mut table = Vec::new();
    for n in [100u64, 1_000, 10_000] {
        let records = made_up(0, n, |i| format!("key-{i}"), text);
        let handler = Recorder::default();

        let (store, counter) = fresh_store().await;
        let config = EngineConfig::new("shard-mode");
        run(&records, "shardId-000000000000", &handler, &store, &config).await;
        let shard_mode = counter.take().values().sum::<u64>();
        assert_eq!(shard_mode, 2, "checkpoint mode at {n}");
        if n > 1_000 {
            table.push((n, shard_mode, None));
            continue;
        }

        let (store, counter) = fresh_store().await;
        let mut config = EngineConfig::new("key-mode");
        config.progress = ProgressMode::PartitionKey;
        run(&records, "shardId-000000000000", &handler, &store, &config).await;
        let key_mode = counter.take().values().sum::<u64>();

        let (store, counter) = fresh_store().await;
        let mut config = EngineConfig::new("dedup");
        config.skip.dedup = Some(shardline::skip::DedupRule {
            key: Arc::new(|r: &Record| Some(String::from_utf8_lossy(&r.data).into_owned())),
            window: Duration::from_secs(60),
        });
        run(&records, "shardId-000000000000", &handler, &store, &config).await;
        let dedup_mode = counter.take().values().sum::<u64>();

        let hundreds = n.div_ceil(100);
        assert_eq!(
            key_mode,
            1 + 2 * hundreds,
            "per-key mode at {n} (all keys distinct)"
        );
        // GetItem, the in-flight claims, and the commit whose transactions
        // carry the claims marked done with the checkpoint.
        assert_eq!(
            dedup_mode,
            1 + hundreds + (n + 1).div_ceil(100),
            "dedup at {n}"
        );
        table.push((n, shard_mode, Some((key_mode, dedup_mode))));
    }
    eprintln!("records  checkpoint  per-key  checkpoint+dedup");
    for (n, a, rest) in table {
        match rest {
            Some((b, c)) => eprintln!("{n:>7}  {a:>10}  {b:>7}  {c:>16}"),
            None => eprintln!("{n:>7}  {a:>10}  {:>7}  {:>16}", "-", "-"),
        }
    }
}

/// Requests of one batch, by operation.
fn ops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

/// Runs `records` as Lambda does until the batch succeeds: each retry from
/// the record the response names, with the records after it. Returns the
/// requests of each invocation.
async fn run_until_done(
    records: &[shardline_tests::lambda::EventRecord],
    handler: &Recorder,
    store: &DynamoDbStore,
    counter: &shardline_tests::RequestCounter,
    config: &EngineConfig,
) -> Vec<BTreeMap<String, u64>> {
    let mut left = records.to_vec();
    let mut invocations = Vec::new();
    while !left.is_empty() {
        assert!(invocations.len() < 20, "the batch never finishes");
        counter.reset();
        let outcome = run(&left, "shardId-000000000000", handler, store, config).await;
        invocations.push(counts(counter));
        let Some(failure) = outcome.response.batch_item_failures.first() else {
            break;
        };
        let from = &failure.item_identifier;
        left.retain(|r| r.sequence_number.as_str() >= from.as_str());
    }
    invocations
}

#[tokio::test]
async fn quarantines_cost_what_the_readme_says() {
    let handler = Recorder::default();
    let config = EngineConfig::new("orders");

    // Up to 32 records and 3 MiB: one transaction with the checkpoint.
    let (store, counter) = fresh_store().await;
    let records = made_up(0, 200, |_| "k".into(), text);
    for i in 0..32 {
        handler
            .permanent
            .lock()
            .unwrap()
            .push(format!("r{}", i * 4));
    }
    run(&records, "shardId-000000000000", &handler, &store, &config).await;
    assert_eq!(
        counts(&counter),
        ops(&[("GetItem", 1), ("TransactWriteItems", 1)])
    );

    // 150 quarantined records: 32 a commit, the rest left for Lambda's retry,
    // which quarantines them in turn (same records, same sequence numbers:
    // the per-commit bound keeps each commit one all-or-nothing transaction).
    let (store, counter) = fresh_store().await;
    handler.permanent.lock().unwrap().clear();
    for i in 0..150 {
        handler.permanent.lock().unwrap().push(format!("r{i}"));
    }
    let invocations = run_until_done(&records, &handler, &store, &counter, &config).await;
    assert_eq!(invocations.len(), 5, "150 = 4 x 32 + 22: {invocations:?}");
    for requests in &invocations {
        assert_eq!(*requests, ops(&[("GetItem", 1), ("TransactWriteItems", 1)]));
    }
    assert_eq!(store.quarantined("orders").await.unwrap().len(), 150);

    // Payloads of 1 MiB (300 KiB a part, written first): 3 MiB a commit.
    let (store, counter) = fresh_store().await;
    handler.permanent.lock().unwrap().clear();
    let mut big = made_up(0, 6, |_| "k".into(), text);
    for record in big.iter_mut().take(4) {
        record.data = vec![b'x'; 1024 * 1024];
    }
    handler
        .permanent
        .lock()
        .unwrap()
        .push("x".repeat(1024 * 1024));
    let invocations = run_until_done(&big, &handler, &store, &counter, &config).await;
    let each = ops(&[
        ("GetItem", 1),
        ("BatchWriteItem", 1),
        ("TransactWriteItems", 1),
    ]);
    assert_eq!(invocations, [each.clone(), each], "3 records, then 1");
    let quarantined = store.quarantined("orders").await.unwrap();
    assert_eq!(quarantined.len(), 4);
    assert!(quarantined.iter().all(|q| q.data.len() == 1024 * 1024));
}

#[tokio::test]
async fn replays_and_fan_out_cost_what_the_readme_says() {
    let handler = Recorder::default();
    // Per-key replay: the shard item, then the keys 100 a request.
    for n in [100u64, 1_000] {
        let (store, counter) = fresh_store().await;
        let mut config = EngineConfig::new("keys");
        config.progress = ProgressMode::PartitionKey;
        let records = made_up(0, n, |i| format!("key-{i}"), text);
        run(&records, "shardId-000000000000", &handler, &store, &config).await;
        counter.reset();
        let replay = run(&records, "shardId-000000000000", &handler, &store, &config).await;
        assert_eq!(replay.report.skipped_checkpointed, n);
        assert_eq!(
            counts(&counter),
            ops(&[("GetItem", 1), ("BatchGetItem", n.div_ceil(100))]),
            "per-key replay of {n} keys"
        );
    }

    // The fan-out's delivery progress rides on the checkpoint: no request of its own.
    let dir = std::env::temp_dir().join(unique_name("fanout-costs"));
    let sinks: Vec<Arc<dyn shardline::sink::Sink>> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            Arc::new(shardline::sink::file::FileSink::new(
                *name,
                dir.join(format!("{name}.jsonl")),
            )) as Arc<dyn shardline::sink::Sink>
        })
        .collect();
    let fanout = shardline::sink::FanOut::new(shardline::sink::StaticDestinations(sinks), 1 << 20);
    let (store, counter) = fresh_store().await;
    let config = EngineConfig::new("fanout");
    let records = made_up(0, 1_000, |i| format!("k{}", i % 50), text);
    let json = event(&stream_arn("orders"), "shardId-000000000000", &records);
    let outcome = process_event(
        decode_event(&json).unwrap(),
        &fanout,
        &store,
        &config,
        Deadline::none(),
    )
    .await
    .unwrap();
    assert!(outcome.response.is_success());
    assert_eq!(counts(&counter), ops(&[("GetItem", 1), ("UpdateItem", 1)]));
}

#[tokio::test]
async fn a_quarantined_record_gives_its_dedup_claim_back_in_its_commit() {
    let (store, counter) = fresh_store().await;
    let mut config = EngineConfig::new("dedup-release");
    config.skip.dedup = Some(shardline::skip::DedupRule {
        key: Arc::new(|r: &Record| Some(String::from_utf8_lossy(&r.data).into_owned())),
        window: Duration::from_secs(3600),
    });
    let handler = Recorder::default();
    handler.permanent.lock().unwrap().push("r1".into());
    let records = made_up(0, 3, |_| "k".into(), text);
    run(&records, "shardId-000000000000", &handler, &store, &config).await;
    assert_eq!(
        counts(&counter),
        ops(&[("GetItem", 1), ("TransactWriteItems", 2)]),
        "claims, then the commit with the quarantine and the claim given back"
    );
    // The record is put back (a new sequence number): it runs.
    handler.permanent.lock().unwrap().clear();
    let again = made_up(10, 1, |_| "k".into(), |_| b"r1".to_vec());
    let replay = run(&again, "shardId-000000000000", &handler, &store, &config).await;
    assert_eq!(replay.report.processed, 1, "{:?}", replay.report);
}

#[tokio::test]
async fn key_progress_expires_after_its_ttl() {
    let emulators = Emulators::from_env();
    let table = unique_name("ttl");
    let store = DynamoDbStore::new(emulators.dynamodb(), &table)
        .with_key_progress_ttl(Duration::from_secs(3_600));
    store.create_table().await.unwrap();
    let mut config = EngineConfig::new("ttl");
    config.progress = ProgressMode::PartitionKey;
    let records = made_up(0, 2, |i| format!("key-{i}"), text);
    run(
        &records,
        "shardId-000000000000",
        &Recorder::default(),
        &store,
        &config,
    )
    .await;
    let items = emulators
        .dynamodb()
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut keys = 0;
    for item in items.items() {
        let pk = item["pk"].as_s().unwrap();
        if pk.contains("#key#") {
            keys += 1;
            let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
            assert!(
                (now + 3_590..=now + 3_610).contains(&expires),
                "{expires} vs {now}"
            );
        }
    }
    assert_eq!(keys, 2);
}

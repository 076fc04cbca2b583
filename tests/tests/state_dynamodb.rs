//! Shardline's DynamoDB state against moto: checkpoints, request counts,
//! fencing, per-key progress, dedup races and large quarantined records.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline::decode::decode_event;
use shardline::state::{DynamoDbStore, StateStore};
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, ProgressMode, Record,
    process_event,
};
use shardline_tests::lambda::{EventRecord, event, made_up, stream_arn};
use shardline_tests::{Emulators, RequestCounter, unique_name};

/// A handler that records what it saw and fails as told.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
    /// Payloads that fail with a retryable error.
    retry: Arc<Mutex<Vec<String>>>,
    /// Payloads that fail permanently.
    permanent: Arc<Mutex<Vec<String>>>,
    /// Payloads whose handling waits on this notify first.
    gate: Option<Arc<tokio::sync::Notify>>,
}

impl Recorder {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let text = String::from_utf8_lossy(&record.data).into_owned();
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        if self.retry.lock().unwrap().contains(&text) {
            return Err(HandlerError::retryable(format!("{text} not yet")));
        }
        if self.permanent.lock().unwrap().contains(&text) {
            return Err(HandlerError::permanent(format!("{text} is poison")));
        }
        self.seen.lock().unwrap().push(text);
        Ok(())
    }
}

async fn fresh_store() -> (DynamoDbStore, RequestCounter) {
    let emulators = Emulators::from_env();
    let (client, counter) = emulators.dynamodb_counted();
    let store = DynamoDbStore::new(client, unique_name("state"));
    store.create_table().await.unwrap();
    counter.reset();
    (store, counter)
}

async fn run(
    records: &[EventRecord],
    shard: &str,
    handler: &Recorder,
    store: &DynamoDbStore,
    config: &EngineConfig,
) -> BatchOutcome {
    let json = event(&stream_arn("orders"), shard, records);
    process_event(
        decode_event(&json).unwrap(),
        handler,
        store,
        config,
        Deadline::none(),
    )
    .await
    .unwrap()
}

fn text(i: u64) -> Vec<u8> {
    format!("r{i}").into_bytes()
}

fn counts(counter: &RequestCounter) -> BTreeMap<String, u64> {
    counter.take()
}

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
    let mut seen = handler.seen();
    seen.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "every order handled exactly once");
    assert_eq!(
        out_a.report.skipped_duplicate + out_b.report.skipped_duplicate,
        30
    );
    assert_eq!(out_a.report.processed + out_b.report.processed, 30);
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

/// Requests per batch for each mode, printed for the record and asserted:
/// checkpoint mode is constant; per-key progress and dedup claims grow by one
/// request per 100 keys. Each mode and size gets a fresh table: moto's
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
        assert_eq!(dedup_mode, 2 + hundreds, "dedup at {n}");
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

#[tokio::test]
async fn quarantines_cost_what_the_readme_says() {
    let handler = Recorder::default();
    let config = EngineConfig::new("orders");

    // Up to 99 items and 3 MB of payload: one transaction with the checkpoint.
    let (store, counter) = fresh_store().await;
    let records = made_up(0, 200, |_| "k".into(), text);
    for i in 0..50 {
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

    // 150 quarantined records: written first, 25 a request, then the checkpoint.
    let (store, counter) = fresh_store().await;
    handler.permanent.lock().unwrap().clear();
    for i in 0..150 {
        handler.permanent.lock().unwrap().push(format!("r{i}"));
    }
    run(&records, "shardId-000000000000", &handler, &store, &config).await;
    assert_eq!(
        counts(&counter),
        ops(&[("GetItem", 1), ("BatchWriteItem", 6), ("UpdateItem", 1)])
    );

    // Payloads over 3 MB (4 records of 1 MB: 4 items each, 300 KiB a part).
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
    run(&big, "shardId-000000000000", &handler, &store, &config).await;
    assert_eq!(
        counts(&counter),
        ops(&[("GetItem", 1), ("BatchWriteItem", 1), ("UpdateItem", 1)])
    );
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
async fn a_quarantined_record_gives_its_dedup_claim_back_in_one_more_request() {
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
        ops(&[("GetItem", 1), ("TransactWriteItems", 3)]),
        "claims, commit with the quarantine, release"
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

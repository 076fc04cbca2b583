//! In-batch concurrency (`EngineConfig::concurrency`), on both state stores
//! (the embedded store and DynamoDB on moto, with the same assertions) where
//! state is what is tested, on the embedded store for pure engine rules (the
//! KPL lane, charging cut-off calls, a whole flush failing). Records of
//! one key run one after another in order while keys overlap; a retryable
//! failure stops only its key, the response names the lowest failure, and the
//! retry runs only what was not done; the state costs the same requests as a
//! batch without failures.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardline::decode::decode_event;
use shardline::decode::kpl::{UserRecord, aggregate};
use shardline::state::{ConsumerShard, EmbeddedStore, StateStore};
use shardline::{
    Deadline, EngineConfig, Handler, HandlerError, Position, Record, ShardRef, process_event,
};
use shardline_tests::lambda::{EventRecord, event, made_up, stream_arn};
use shardline_tests::overlap::{Probe, assert_in_order_per_key, jitter};
use shardline_tests::recorder::fresh_store;
use shardline_tests::{RequestCounter, TempDir};

const SHARD: &str = "shardId-000000000000";

fn config(name: &str, concurrency: usize) -> EngineConfig {
    let mut config = EngineConfig::new(name);
    config.concurrency = concurrency;
    config
}

/// Both stores: the embedded one (no counter) and DynamoDB on moto.
async fn stores() -> Vec<(Box<dyn StateStore>, Option<RequestCounter>, TempDir)> {
    let dir = TempDir::new("concurrency");
    let embedded = EmbeddedStore::open(dir.path()).unwrap();
    let (dynamodb, counter) = fresh_store().await;
    vec![
        (Box::new(embedded), None, dir),
        (
            Box::new(dynamodb),
            Some(counter),
            TempDir::new("concurrency"),
        ),
    ]
}

async fn run(
    records: &[EventRecord],
    handler: &Probe,
    store: &dyn StateStore,
    config: &EngineConfig,
    deadline: Deadline,
) -> shardline::BatchOutcome {
    let json = event(&stream_arn("orders"), SHARD, records);
    process_event(
        decode_event(&json).unwrap(),
        handler,
        store,
        config,
        deadline,
    )
    .await
    .unwrap()
}

fn failures(outcome: &shardline::BatchOutcome) -> Vec<String> {
    outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn seq(i: u64) -> String {
    shardline::sample::sequence_number(i)
}

fn position(i: u64) -> Position {
    Position::new(seq(i).parse().unwrap(), 0)
}

#[tokio::test]
async fn records_of_a_key_run_in_order_while_keys_overlap() {
    for (store, counter, _dir) in stores().await {
        let records = made_up(
            0,
            2_000,
            |i| format!("k-{}", i % 50),
            |i| i.to_string().into(),
        );
        let probe = Probe::new(jitter);
        let config = config("order", 16);
        let out = run(&records, &probe, &*store, &config, Deadline::none()).await;
        assert!(out.response.is_success(), "{:?}", out.report);
        assert_in_order_per_key(&probe.steps.lock().unwrap(), |n| n % 50);
        let mut done = probe.done();
        done.sort_unstable();
        assert_eq!(done, (0..2_000).collect::<Vec<_>>(), "every record once");
        assert_eq!(probe.most.load(Ordering::SeqCst), 16, "16 calls at once");
        if let Some(counter) = counter {
            let sent = counter.snapshot();
            assert_eq!(counter.total(), 2, "GetItem and UpdateItem: {sent:?}");
        }
        let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
        assert_eq!(progress.checkpoint, Some(position(1_999)));
        assert!(progress.done.is_empty() && progress.heads.is_empty());
        assert_eq!(progress.version, 1, "one commit");
    }
}

fn key_for(config: &EngineConfig) -> ConsumerShard {
    ConsumerShard {
        consumer: config.consumer.clone(),
        shard: ShardRef {
            stream_arn: stream_arn("orders").into(),
            shard_id: SHARD.into(),
        },
    }
}

#[tokio::test]
async fn one_key_failing_stops_only_that_key_and_the_retry_runs_only_it() {
    for (store, counter, _dir) in stores().await {
        // 1,000 records over 100 keys; key 42 fails at its third record (242).
        let records = made_up(
            0,
            1_000,
            |i| format!("k-{}", i % 100),
            |i| i.to_string().into(),
        );
        let probe = Probe::new(jitter).failing(|text| text == "242");
        let config = config("one-key", 32);
        let out = run(&records, &probe, &*store, &config, Deadline::none()).await;
        assert_eq!(failures(&out), [seq(242)], "the lowest failure is reported");
        let key_42_after: Vec<u64> = (242..1_000).step_by(100).collect();
        let mut done = probe.done();
        done.sort_unstable();
        let expected: Vec<u64> = (0..1_000).filter(|i| !key_42_after.contains(i)).collect();
        assert_eq!(done, expected, "the 99 other keys finished");
        assert!(
            !probe.started().contains(&342),
            "key 42 stopped at its failure"
        );
        if let Some(counter) = &counter {
            let sent = counter.take();
            assert_eq!(sent.values().sum::<u64>(), 2, "a failing batch: {sent:?}");
        }
        let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
        assert_eq!(progress.checkpoint, Some(position(241)));
        assert_eq!(
            progress.done.ranges().len(),
            key_42_after.len(),
            "{:?}",
            progress.done
        );
        assert!(progress.done.contains(&position(243)) && !progress.done.contains(&position(342)));
        assert_eq!(
            progress
                .heads
                .iter()
                .map(|h| (h.position.clone(), h.attempts))
                .collect::<Vec<_>>(),
            [(position(242), 1)]
        );
        if let Some(counter) = &counter {
            counter.reset();
        }

        // Lambda's retry starts at the reported record; only key 42's records run.
        probe.reset();
        let retry = made_up(
            242,
            758,
            |i| format!("k-{}", i % 100),
            |i| i.to_string().into(),
        );
        let ok = Probe::new(jitter);
        let out = run(&retry, &ok, &*store, &config, Deadline::none()).await;
        assert!(out.response.is_success(), "{:?}", out.report);
        assert_eq!(ok.done(), key_42_after, "only what was not done, in order");
        if let Some(counter) = &counter {
            assert_eq!(
                counter.take().values().sum::<u64>(),
                2,
                "the retry: 2 requests"
            );
        }
        let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
        assert_eq!(progress.checkpoint, Some(position(999)));
        assert!(
            progress.done.is_empty() && progress.heads.is_empty(),
            "{progress:?}"
        );
    }
}

#[tokio::test]
async fn a_key_that_keeps_failing_is_quarantined_while_a_second_keeps_its_own_count() {
    for (store, _counter, _dir) in stores().await {
        let mut config = config("two-heads", 8);
        config.max_attempts = 3;
        let records = made_up(0, 40, |i| format!("k-{}", i % 10), |i| i.to_string().into());
        let probe = Probe::new(|_| Duration::ZERO).failing(|t| t == "13" || t == "27");
        let mut from = 0;
        for attempt in 1..=3u32 {
            let out = run(&records[from..], &probe, &*store, &config, Deadline::none()).await;
            let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
            if attempt < 3 {
                assert_eq!(failures(&out), [seq(13)]);
                assert_eq!(
                    heads(&progress),
                    [(position(13), attempt), (position(27), attempt)]
                );
                from = 13;
            } else {
                assert!(out.response.is_success(), "{:?}", out.report);
                assert_eq!(out.report.quarantined_exhausted, 2, "{:?}", out.report);
                assert_eq!(progress.checkpoint, Some(position(39)));
            }
        }
        let quarantined = store.quarantined(&config.consumer).await.unwrap();
        let numbers: Vec<&str> = quarantined
            .iter()
            .map(|q| std::str::from_utf8(&q.data[..]).unwrap())
            .collect();
        assert_eq!(numbers, ["13", "27"]);
    }
}

fn heads(progress: &shardline::state::Progress) -> Vec<(Position, u32)> {
    progress
        .heads
        .iter()
        .map(|h| (h.position.clone(), h.attempts))
        .collect()
}

#[tokio::test]
async fn calls_cut_off_together_charge_one_attempt_to_the_longest() {
    let dir = TempDir::new("concurrency");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // Records 5 and 30 hang; the rest take 20 ms. 4 at once, a 600 ms budget.
    let records = made_up(0, 40, |i| format!("k-{i}"), |i| i.to_string().into());
    let hangs = |n: u64| n == 5 || n == 30;
    let probe = Probe::new(move |n| Duration::from_millis(if hangs(n) { 60_000 } else { 20 }));
    let mut config = config("overrun", 4);
    config.time_reserve = Duration::from_millis(300);
    let out = run(
        &records,
        &probe,
        &store,
        &config,
        Deadline::after(Duration::from_millis(900)),
    )
    .await;
    assert_eq!(failures(&out), [seq(5)]);
    assert_eq!(out.report.failed, 1, "{:?}", out.report);
    let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
    assert_eq!(
        heads(&progress),
        [(position(5), 1)],
        "only the longest call is charged"
    );
}

#[tokio::test]
async fn a_whole_flush_failing_charges_one_attempt_per_shard() {
    struct FlushFails;
    impl Handler for FlushFails {
        async fn handle(&self, _record: &Record) -> Result<(), HandlerError> {
            Ok(())
        }
        async fn flush(&self, _batch: &shardline::Batch<'_>) -> Result<(), shardline::FlushError> {
            Err(HandlerError::retryable("the sink is down").into())
        }
    }
    let dir = TempDir::new("concurrency");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let records = made_up(
        0,
        100,
        |i| format!("k-{}", i % 10),
        |i| i.to_string().into(),
    );
    let config = config("flush", 8);
    let json = event(&stream_arn("orders"), SHARD, &records);
    for attempt in 1..=2u32 {
        let out = process_event(
            decode_event(&json).unwrap(),
            &FlushFails,
            &store,
            &config,
            Deadline::none(),
        )
        .await
        .unwrap();
        assert_eq!(failures(&out), [seq(0)]);
        let progress = store.load_shard(&key_for(&config)).await.unwrap().progress;
        assert_eq!(
            heads(&progress),
            [(position(0), attempt)],
            "one attempt, not one per key"
        );
        assert!(progress.checkpoint.is_none() && progress.done.is_empty());
    }
}

#[tokio::test]
async fn a_kpl_aggregate_keeps_its_user_records_in_order_in_its_lane() {
    let dir = TempDir::new("concurrency");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // 20 aggregates with 5 outer keys; each holds 4 user records of 4 user keys.
    let aggregates: Vec<EventRecord> = (0..20u64)
        .map(|a| {
            let users: Vec<UserRecord> = (0..4u64)
                .map(|u| UserRecord {
                    partition_key: format!("user-{u}"),
                    explicit_hash_key: None,
                    data: Bytes::from(format!("{a}.{u}")),
                })
                .collect();
            EventRecord {
                sequence_number: seq(a),
                partition_key: format!("outer-{}", a % 5),
                data: aggregate(&users),
            }
        })
        .collect();
    let probe = Probe::new(jitter).failing(|t| t == "7.1");
    let config = config("kpl", 8);
    let out = run(&aggregates, &probe, &store, &config, Deadline::none()).await;
    assert_eq!(
        failures(&out),
        [seq(7)],
        "Lambda retries from the aggregate"
    );
    assert_in_order_per_key(&probe.steps.lock().unwrap(), |n| (n / 100) % 5);
    let started = probe.started();
    for later in [702, 703, 1200, 1700] {
        assert!(
            !started.contains(&later),
            "{later} is after the failure in its lane"
        );
    }
    // 7.1 failed; 7.2, 7.3 and aggregates 12 and 17 wait behind it.
    assert_eq!(probe.done().len(), 80 - 1 - 2 - 8, "{:?}", probe.done());
    // The retry redelivers aggregates 7 to 19; user record 7.0 and the other
    // lanes' aggregates are skipped.
    let ok = Probe::new(jitter);
    let out = run(&aggregates[7..], &ok, &store, &config, Deadline::none()).await;
    assert!(out.response.is_success(), "{:?}", out.report);
    let mut expected = vec![701, 702, 703];
    expected.extend([1200, 1201, 1202, 1203, 1700, 1701, 1702, 1703]);
    assert_eq!(ok.done(), expected);
}

#[tokio::test]
async fn the_cut_off_starts_nothing_new_and_lets_calls_in_flight_finish() {
    for (store, _counter, _dir) in stores().await {
        // 40 keys; calls take 100 or 200 ms, 4 at a time, in a 1.05 s budget.
        let records = made_up(0, 40, |i| format!("k-{i}"), |i| i.to_string().into());
        let probe = Probe::new(|n| Duration::from_millis(100 + 100 * (n % 2)));
        let mut config = config("cut-off", 4);
        config.time_reserve = Duration::from_millis(300);
        let started_at = Instant::now();
        let deadline = Deadline::after(Duration::from_millis(1_350));
        let out = run(&records, &probe, &*store, &config, deadline).await;
        assert!(
            started_at.elapsed() < Duration::from_millis(1_350),
            "returned in time"
        );
        assert_eq!(out.report.cut_off, 1, "{:?}", out.report);
        assert_eq!(
            out.report.failed, 0,
            "no call in flight was cut short: {:?}",
            out.report
        );
        let done = probe.done();
        assert_eq!(
            probe.started().len(),
            done.len(),
            "every call started finished"
        );
        assert!(done.len() >= 8 && done.len() < 40, "{done:?}");
        let first_left = (0..40).find(|i| !done.contains(i)).unwrap();
        assert_eq!(failures(&out), [seq(first_left)]);
        // The retry from the first record left runs each remaining record once.
        let ok = Probe::new(|_| Duration::ZERO);
        let rest = made_up(
            first_left,
            40 - first_left,
            |i| format!("k-{i}"),
            |i| i.to_string().into(),
        );
        let out = run(&rest, &ok, &*store, &config, Deadline::none()).await;
        assert!(out.response.is_success());
        let mut all: Vec<u64> = done.iter().chain(ok.done().iter()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>(), "each record exactly once");
    }
}

#[tokio::test]
async fn a_crash_before_the_commit_runs_the_batch_again_at_least_once() {
    for (store, _counter, _dir) in stores().await {
        let records = made_up(
            0,
            200,
            |i| format!("k-{}", i % 20),
            |i| i.to_string().into(),
        );
        // Key 7's second record never ends: the invocation dies with the
        // other keys' records done and nothing committed.
        let stuck = Probe::new(|n| {
            if n == 27 {
                Duration::from_secs(3600)
            } else {
                jitter(n)
            }
        });
        let config = config("crash", 16);
        let json = event(&stream_arn("orders"), SHARD, &records);
        let crashed = tokio::time::timeout(
            Duration::from_millis(500),
            process_event(
                decode_event(&json).unwrap(),
                &stuck,
                &*store,
                &config,
                Deadline::none(),
            ),
        )
        .await;
        assert!(crashed.is_err(), "the invocation was cut off");
        let before = stuck.done();
        assert!(
            before.len() > 100,
            "other keys finished first: {}",
            before.len()
        );
        let state = store.load_shard(&key_for(&config)).await.unwrap();
        assert_eq!(state.progress.version, 0, "nothing was committed");
        // Lambda retries the whole batch: every record runs again, the ones
        // done before the crash included (at-least-once), each key in order.
        let again = Probe::new(jitter);
        let out = run(&records, &again, &*store, &config, Deadline::none()).await;
        assert!(out.response.is_success());
        assert_in_order_per_key(&again.steps.lock().unwrap(), |n| n % 20);
        let mut redone = again.done();
        redone.sort_unstable();
        assert_eq!(redone, (0..200).collect::<Vec<_>>());
    }
}

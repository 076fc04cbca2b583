//! The engine at its limits: the time cut-off, stale and duplicate records,
//! a newer invocation that commits first, and handlers that panic or hang.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardline::skip::DedupRule;
use shardline::{Deadline, HandlerError, QuarantineReason};

fn texts(n: u64) -> Vec<Rec> {
    (1..=n)
        .map(|i| Rec::new(seq(i), format!("r{i}").as_bytes()))
        .collect()
}

#[tokio::test]
async fn short_remaining_time_stops_before_a_record_and_does_not_count_an_attempt() {
    let mut env = Env::new("deadline");
    env.config.time_reserve = Duration::from_millis(100);
    env.config.max_attempts = 2;
    let records = texts(12);
    let event = event(&records);
    // 150 ms per record, 1200 ms left: the engine keeps back the reserve plus the
    // slowest call seen, so it starts at most 7 records (fewer on a slow machine)
    // and stops well before the end.
    let slow = Scripted::ok().slow(Duration::from_millis(150));
    let outcome = env
        .run_until(&event, &slow, Deadline::after(Duration::from_millis(1200)))
        .await;
    let started = slow.seen().len();
    assert!(
        (1..records.len()).contains(&started),
        "started {started} of {} records",
        records.len()
    );
    let first_unstarted = seq(started as u64 + 1);
    assert_eq!(failures(&outcome), [first_unstarted.as_str()]);
    assert_eq!(outcome.report.cut_off, 1);
    assert_eq!(outcome.report.processed, started as u64);
    assert_eq!(
        outcome.report.failed, 0,
        "a record cut off is not a failure"
    );
    assert_eq!(outcome.report.not_started, (records.len() - started) as u64);
    assert_eq!(env.checkpoint().await, Some((seq(started as u64), 0)));
    assert_eq!(
        env.state().await.progress.head().cloned(),
        None,
        "no attempt was counted for the cut-off record"
    );

    // Without a deadline the cut-off record comes first, on its first attempt:
    // with max_attempts = 2 a retryable failure is retried, not quarantined.
    let failing = Scripted::new(|_| Err(retryable("first try fails")));
    let retry = env.run(&event, &failing).await;
    assert_eq!(failing.seen_sequences(), [first_unstarted.as_str()]);
    assert_eq!(failures(&retry), [first_unstarted.as_str()]);
    assert!(env.quarantined().await.is_empty());
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(1)
    );
}

#[tokio::test]
async fn a_cut_off_before_the_head_record_keeps_its_attempt_count() {
    let mut env = Env::new("deadline-head");
    env.config.max_attempts = 3;
    env.config.time_reserve = Duration::from_millis(200);
    let event = event(&texts(2));
    let failing = Scripted::new(|r| match r.text() {
        Some("r1") => Err(retryable("no")),
        _ => Ok(()),
    });
    env.run(&event, &failing).await;
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(1)
    );

    // Less time left than the reserve: nothing starts, r1 is reported, nothing is written.
    let untouched = Scripted::ok();
    let cut = env
        .run_until(
            &event,
            &untouched,
            Deadline::after(Duration::from_millis(50)),
        )
        .await;
    assert!(untouched.seen().is_empty());
    assert_eq!(failures(&cut), [seq(1)]);
    assert_eq!(cut.report.cut_off, 1);
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(1)
    );

    // The next failure is attempt 2 of 3, still retried.
    failing.clear();
    let again = env.run(&event, &failing).await;
    assert_eq!(failures(&again), [seq(1)]);
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(2)
    );
    assert!(env.quarantined().await.is_empty());
}

#[tokio::test]
async fn records_older_than_the_max_age_are_skipped_and_checkpointed() {
    let mut env = Env::new("stale");
    env.config.skip.max_record_age = Some(Duration::from_secs(60));
    let event = event(&[
        Rec::new(seq(1), b"an hour old").arrived(Some(seconds_ago(Duration::from_secs(3600)))),
        Rec::new(seq(2), b"fresh").arrived(Some(seconds_ago(Duration::from_secs(1)))),
        Rec::new(seq(3), b"two minutes old").arrived(Some(seconds_ago(Duration::from_secs(120)))),
        Rec::new(seq(4), b"no arrival time").arrived(None),
    ]);
    let handler = Scripted::ok();
    let outcome = env.run(&event, &handler).await;
    assert_eq!(handler.seen_texts(), ["fresh", "no arrival time"]);
    assert_eq!(outcome.report.skipped_stale, 2);
    assert_eq!(outcome.report.processed, 2);
    assert!(outcome.response.is_success());
    assert_eq!(env.checkpoint().await, Some((seq(4), 0)));
    let age = outcome.report.iterator_age.expect("an iterator age");
    assert!(age >= Duration::from_secs(3599), "{age:?}");
}

fn dedup_by_id(window: Duration) -> DedupRule {
    DedupRule {
        key: Arc::new(|r: &shardline::Record| {
            r.json::<serde_json::Value>()
                .ok()?
                .get("id")?
                .as_str()
                .map(String::from)
        }),
        window,
    }
}

#[tokio::test]
async fn dedup_keys_skip_duplicates_within_a_batch_and_across_batches() {
    let mut env = Env::new("dedup");
    env.config.skip.dedup = Some(dedup_by_id(Duration::from_secs(3600)));
    let handler = Scripted::ok();

    let first = event(&[
        Rec::new(seq(1), br#"{"id":"a","n":1}"#),
        Rec::new(seq(2), br#"{"id":"b","n":2}"#),
        Rec::new(seq(3), br#"{"id":"a","n":3}"#),
        Rec::new(seq(4), b"no key: not deduplicated"),
    ]);
    let outcome = env.run(&first, &handler).await;
    assert_eq!(
        handler.seen_sequences(),
        [seq(1), seq(2), seq(4)],
        "the second \"a\" in the batch is skipped"
    );
    assert_eq!(outcome.report.skipped_duplicate, 1);

    handler.clear();
    let second = event(&[
        Rec::new(seq(5), br#"{"id":"a","n":5}"#),
        Rec::new(seq(6), br#"{"id":"c","n":6}"#),
    ]);
    let outcome = env.run(&second, &handler).await;
    assert_eq!(
        handler.seen_sequences(),
        [seq(6)],
        "\"a\" from an earlier batch is a duplicate"
    );
    assert_eq!(outcome.report.skipped_duplicate, 1);
    assert_eq!(outcome.report.processed, 1);
    assert_eq!(
        env.checkpoint().await,
        Some((seq(6), 0)),
        "duplicates are checkpointed"
    );
}

#[tokio::test]
async fn a_retried_record_keeps_its_own_dedup_claim() {
    let mut env = Env::new("dedup-retry");
    env.config.skip.dedup = Some(dedup_by_id(Duration::from_secs(3600)));
    let event = event(&[
        Rec::new(seq(1), br#"{"id":"x"}"#),
        Rec::new(seq(2), br#"{"id":"y"}"#),
    ]);
    let failing = Scripted::new(|r| match r.text() {
        Some(r#"{"id":"x"}"#) => Err(retryable("not yet")),
        _ => Ok(()),
    });
    assert_eq!(failures(&env.run(&event, &failing).await), [seq(1)]);

    // On Lambda's retry both records claim their keys again: same owners, not duplicates.
    let ok = Scripted::ok();
    let retry = env.run(&event, &ok).await;
    assert_eq!(ok.seen_sequences(), [seq(1), seq(2)]);
    assert_eq!(retry.report.skipped_duplicate, 0);
}

/// A handler that, on its first record, lets a "newer invocation" of the same
/// batch run to completion on the same store (what happens when an invocation
/// that Lambda gave up on keeps running while the retry is processed).
struct Overtaken {
    store: Arc<shardline::state::EmbeddedStore>,
    config: shardline::EngineConfig,
    event: Vec<u8>,
    seen: Scripted,
    newer: Scripted,
}

impl shardline::Handler for Overtaken {
    async fn handle(&self, record: &shardline::Record) -> Result<(), HandlerError> {
        if self.seen.seen().is_empty() {
            let decoded = shardline::decode::decode_event(&self.event).unwrap();
            let newer = shardline::process_event(
                decoded,
                &self.newer,
                &*self.store,
                &self.config,
                Deadline::none(),
            )
            .await
            .unwrap();
            assert!(newer.response.is_success());
        }
        self.seen.handle(record).await
    }
}

#[tokio::test]
async fn an_invocation_overtaken_by_a_newer_one_writes_nothing_and_asks_for_a_retry() {
    use shardline::state::StateStore as _;
    let dir = TempDir::new("superseded");
    let store = Arc::new(shardline::state::EmbeddedStore::open(dir.path()).unwrap());
    let config = shardline::EngineConfig::new("superseded");
    let event = event(&texts(3));
    let handler = Overtaken {
        store: store.clone(),
        config: config.clone(),
        event: event.clone(),
        seen: Scripted::ok(),
        newer: Scripted::ok(),
    };
    let decoded = shardline::decode::decode_event(&event).unwrap();
    let older = shardline::process_event(decoded, &handler, &*store, &config, Deadline::none())
        .await
        .unwrap();
    assert_eq!(handler.newer.seen_texts(), ["r1", "r2", "r3"]);
    assert_eq!(handler.seen.seen_texts(), ["r1", "r2", "r3"]);
    assert_eq!(older.report.superseded, 1);
    assert_eq!(
        failures(&older),
        [seq(1)],
        "the overtaken invocation asks Lambda to retry from its first record"
    );
    let key = shardline::state::ConsumerShard {
        consumer: config.consumer.clone(),
        shard: shardline::ShardRef {
            stream_arn: Arc::from(STREAM),
            shard_id: Arc::from(SHARD),
        },
    };
    let state = store.load_shard(&key).await.unwrap();
    assert_eq!(
        state.progress.version, 1,
        "only the newer invocation's commit is stored"
    );
    assert_eq!(state.progress.checkpoint, Some(pos(&seq(3), 0)));

    // Lambda's retry finds everything checkpointed by the newer invocation.
    let retry = Scripted::ok();
    let decoded = shardline::decode::decode_event(&event).unwrap();
    let outcome = shardline::process_event(decoded, &retry, &*store, &config, Deadline::none())
        .await
        .unwrap();
    assert!(retry.seen().is_empty());
    assert_eq!(outcome.report.skipped_checkpointed, 3);
}

#[tokio::test]
async fn a_quarantined_record_gives_its_dedup_key_back_so_a_replay_runs() {
    let mut env = Env::new("dedup-quarantine");
    env.config.skip.dedup = Some(dedup_by_id(Duration::from_secs(3600)));
    let poison = Scripted::new(|_| Err(HandlerError::permanent("bad amount")));
    let first = env
        .run(&event(&[Rec::new(seq(1), br#"{"id":"q"}"#)]), &poison)
        .await;
    assert_eq!(first.report.quarantined_permanent, 1);

    // The quarantined record is put back on the stream (a new sequence number)
    // after the bug is fixed: it must run, not be skipped as a duplicate of itself.
    let fixed = Scripted::ok();
    let replay = env
        .run(&event(&[Rec::new(seq(2), br#"{"id":"q"}"#)]), &fixed)
        .await;
    assert_eq!(replay.report.skipped_duplicate, 0, "{:?}", replay.report);
    assert_eq!(fixed.seen_sequences(), [seq(2)]);
}

#[tokio::test]
async fn a_panicking_handler_counts_attempts_until_the_record_is_quarantined() {
    let mut env = Env::new("panic");
    env.config.max_attempts = 2;
    let event = event(&[Rec::new(seq(1), b"boom"), Rec::new(seq(2), b"fine")]);
    let handler = Scripted::new(|r| {
        if r.text() == Some("boom") {
            panic!("index out of bounds in the handler");
        }
        Ok(())
    });
    let first = env.run(&event, &handler).await;
    assert_eq!(
        failures(&first),
        [seq(1)],
        "a panic is a failure of its record"
    );
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(1)
    );
    let second = env.run(&event, &handler).await;
    assert!(second.response.is_success(), "{:?}", second.report);
    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].reason, QuarantineReason::Exhausted);
    assert!(
        quarantined[0].detail.contains("panicked"),
        "{}",
        quarantined[0].detail
    );
    assert_eq!(env.checkpoint().await, Some((seq(2), 0)));
}

#[tokio::test]
async fn a_handler_that_hangs_is_cut_before_the_deadline_and_counted() {
    let mut env = Env::new("hang");
    env.config.time_reserve = Duration::from_millis(200);
    let event = event(&[Rec::new(seq(1), b"fine"), Rec::new(seq(2), b"hangs")]);
    let handler = Scripted::new(|_| Ok(())).slow(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let outcome = env
        .run_until(
            &event,
            &handler,
            Deadline::after(Duration::from_millis(800)),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(failures(&outcome), [seq(1)]);
    assert_eq!(
        env.state()
            .await
            .progress
            .head()
            .cloned()
            .map(|h| h.attempts),
        Some(1)
    );
}

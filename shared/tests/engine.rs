//! The batch engine against the real embedded SQLite store: ordering at the
//! first retryable failure, the checkpoint, quarantine, replay, 56-digit
//! sequence numbers, the remaining-time cut-off and the skip rules.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use shardline::skip::DedupRule;
use shardline::{Deadline, HandlerError, QuarantineReason, RecordOrigin};

fn texts(n: u64) -> Vec<Rec> {
    (1..=n)
        .map(|i| Rec::new(seq(i), format!("r{i}").as_bytes()))
        .collect()
}

#[tokio::test]
async fn first_retryable_failure_stops_the_shard_and_reports_only_that_record() {
    let env = Env::new("ordering");
    let event = event(&texts(5));
    let failing = Scripted::new(|r| match r.text() {
        Some("r3") => Err(retryable("downstream timeout")),
        _ => Ok(()),
    });

    let first = env.run(&event, &failing).await;
    assert_eq!(failures(&first), [seq(3)], "exactly the failed record");
    assert_eq!(
        failing.seen_texts(),
        ["r1", "r2", "r3"],
        "nothing after the failure reaches the handler"
    );
    assert_eq!(first.report.processed, 2);
    assert_eq!(first.report.failed, 1);
    assert_eq!(first.report.not_started, 2);
    assert_eq!(
        env.checkpoint().await,
        Some((seq(2), 0)),
        "checkpoint at the record before"
    );
    let head = env
        .state()
        .await
        .progress
        .head
        .expect("the failed record is the head");
    assert_eq!((head.position, head.attempts), (pos(&seq(3), 0), 1));
    assert_eq!(
        env.state().await.progress.version,
        1,
        "one commit for the batch"
    );

    // Lambda retries with the same batch: the failed record comes first, nothing before it.
    let fixed = Scripted::ok();
    let second = env.run(&event, &fixed).await;
    assert!(second.response.is_success());
    assert_eq!(fixed.seen_texts(), ["r3", "r4", "r5"]);
    assert_eq!(second.report.skipped_checkpointed, 2);
    assert_eq!(second.report.processed, 3);
    assert_eq!(env.checkpoint().await, Some((seq(5), 0)));
    assert_eq!(
        env.state().await.progress.head,
        None,
        "the head's attempt count is cleared once done"
    );
}

#[tokio::test]
async fn failure_of_the_first_record_reports_it_and_sets_no_checkpoint() {
    let env = Env::new("first-fails");
    let event = event(&texts(3));
    let failing = Scripted::new(|_| Err(retryable("down")));
    let outcome = env.run(&event, &failing).await;
    assert_eq!(failures(&outcome), [seq(1)]);
    assert_eq!(failing.seen_texts(), ["r1"]);
    assert_eq!(env.checkpoint().await, None);
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));
}

#[tokio::test]
async fn permanent_and_undecodable_records_are_quarantined_with_their_payload() {
    let env = Env::new("quarantine");
    let binary = b"\xff\x00not json \xfe";
    let event = event(&[
        Rec::new(seq(1), b"r1"),
        Rec::new(seq(2), binary).key("poison-key"),
        Rec::raw(seq(3), "this is %% not base64!"),
        Rec::new(seq(4), b"r4"),
    ]);
    let handler = Scripted::new(|r| {
        if r.text().is_none() {
            Err(HandlerError::permanent("payload is not UTF-8"))
        } else {
            Ok(())
        }
    });

    let outcome = env.run(&event, &handler).await;
    assert!(
        outcome.response.is_success(),
        "quarantined records are not retried"
    );
    assert_eq!(
        handler.seen_sequences(),
        [seq(1), seq(2), seq(4)],
        "the undecodable record never reaches the handler; processing goes on after both"
    );
    assert_eq!(outcome.report.processed, 2);
    assert_eq!(outcome.report.quarantined_permanent, 1);
    assert_eq!(outcome.report.quarantined_undecodable, 1);
    assert_eq!(env.checkpoint().await, Some((seq(4), 0)));

    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 2);
    let permanent = &quarantined[0];
    assert_eq!(permanent.sequence_number, seq(2));
    assert_eq!(permanent.subsequence_number, 0);
    assert_eq!(permanent.shard_id, SHARD);
    assert_eq!(permanent.stream_arn, STREAM);
    assert_eq!(permanent.partition_key, "poison-key");
    assert_eq!(permanent.reason, QuarantineReason::Permanent);
    assert_eq!(permanent.attempts, 1);
    assert_eq!(&permanent.data[..], binary, "the exact payload bytes");
    assert!(
        permanent.detail.contains("not UTF-8"),
        "{}",
        permanent.detail
    );
    let undecodable = &quarantined[1];
    assert_eq!(undecodable.sequence_number, seq(3));
    assert_eq!(undecodable.reason, QuarantineReason::Undecodable);
    assert_eq!(undecodable.attempts, 0);
    assert_eq!(
        &undecodable.data[..],
        b"this is %% not base64!",
        "the data field exactly as it came"
    );
    assert!(
        undecodable.detail.contains("base64"),
        "{}",
        undecodable.detail
    );

    // A replay quarantines nothing twice and hands nothing over.
    handler.clear();
    let replay = env.run(&event, &handler).await;
    assert!(handler.seen().is_empty());
    assert_eq!(replay.report.skipped_checkpointed, 4);
    assert_eq!(env.quarantined().await.len(), 2);
}

#[tokio::test]
async fn retryable_failures_are_counted_across_invocations_until_quarantined() {
    let mut env = Env::new("exhausted");
    env.config.max_attempts = 3;
    let event = event(&texts(3));
    let handler = Scripted::new(|r| match r.text() {
        Some("r2") => Err(retryable("account service unavailable")),
        _ => Ok(()),
    });

    for attempt in 1..=2u32 {
        handler.clear();
        let outcome = env.run(&event, &handler).await;
        assert_eq!(failures(&outcome), [seq(2)], "attempt {attempt}");
        let expected: &[&str] = if attempt == 1 { &["r1", "r2"] } else { &["r2"] };
        assert_eq!(handler.seen_texts(), expected, "attempt {attempt}");
        assert_eq!(
            env.state().await.progress.head.map(|h| h.attempts),
            Some(attempt)
        );
        assert!(env.quarantined().await.is_empty(), "attempt {attempt}");
    }

    handler.clear();
    let third = env.run(&event, &handler).await;
    assert!(
        third.response.is_success(),
        "the third failure quarantines instead of retrying"
    );
    assert_eq!(
        handler.seen_texts(),
        ["r2", "r3"],
        "processing continues after it"
    );
    assert_eq!(third.report.quarantined_exhausted, 1);
    assert_eq!(third.report.processed, 1);
    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].reason, QuarantineReason::Exhausted);
    assert_eq!(quarantined[0].attempts, 3);
    assert_eq!(quarantined[0].sequence_number, seq(2));
    assert_eq!(&quarantined[0].data[..], b"r2");
    assert!(
        quarantined[0]
            .detail
            .contains("account service unavailable")
    );
    assert_eq!(env.checkpoint().await, Some((seq(3), 0)));
    assert_eq!(env.state().await.progress.head, None);
}

#[tokio::test]
async fn attempts_belong_to_the_record_that_failed_not_to_the_shard() {
    let mut env = Env::new("attempts-reset");
    env.config.max_attempts = 2;
    let event = event(&texts(3));
    // r2 fails once, then r3 fails: r3 is on its first attempt, not its second.
    let first = Scripted::new(|r| match r.text() {
        Some("r2") => Err(retryable("once")),
        _ => Ok(()),
    });
    assert_eq!(failures(&env.run(&event, &first).await), [seq(2)]);
    let second = Scripted::new(|r| match r.text() {
        Some("r3") => Err(retryable("r3 now")),
        _ => Ok(()),
    });
    let outcome = env.run(&event, &second).await;
    assert_eq!(
        failures(&outcome),
        [seq(3)],
        "r3 has one attempt of 2: retried, not quarantined"
    );
    assert!(env.quarantined().await.is_empty());
    let head = env.state().await.progress.head.unwrap();
    assert_eq!((head.position, head.attempts), (pos(&seq(3), 0), 1));
}

#[tokio::test]
async fn replaying_a_done_event_processes_nothing_and_commits_nothing() {
    let env = Env::new("replay");
    let event = event(&texts(6));
    let handler = Scripted::ok();
    let first = env.run(&event, &handler).await;
    assert_eq!(first.report.processed, 6);
    let version = env.state().await.progress.version;
    assert_eq!(version, 1, "one commit for the whole batch");

    handler.clear();
    let replay = env.run(&event, &handler).await;
    assert!(handler.seen().is_empty(), "nothing is handed over again");
    assert!(replay.response.is_success());
    assert_eq!(replay.report.records, 6);
    assert_eq!(replay.report.skipped_checkpointed, 6);
    assert_eq!(replay.report.processed, 0);
    assert_eq!(
        env.state().await.progress.version,
        version,
        "a replay commits nothing"
    );
}

/// 55 nines: numerically below any 56-digit number, but above most as text.
fn nines_55() -> String {
    "9".repeat(55)
}

/// 1 followed by 55 zeros: the smallest 56-digit number, below "9..." as text.
fn ten_pow_55() -> String {
    format!("1{}", "0".repeat(55))
}

#[tokio::test]
async fn checkpoint_compares_sequence_numbers_as_numbers_not_text() {
    let env = Env::new("bignum-up");
    let handler = Scripted::ok();
    env.run(&event(&[Rec::new(nines_55(), b"55 digits")]), &handler)
        .await;
    assert_eq!(env.checkpoint().await, Some((nines_55(), 0)));

    // The next record is larger as a number, smaller as text: it must be processed.
    handler.clear();
    let outcome = env
        .run(
            &event(&[
                Rec::new(nines_55(), b"55 digits"),
                Rec::new(ten_pow_55(), b"56 digits"),
            ]),
            &handler,
        )
        .await;
    assert_eq!(handler.seen_sequences(), [ten_pow_55()]);
    assert_eq!(outcome.report.skipped_checkpointed, 1);
    assert_eq!(env.checkpoint().await, Some((ten_pow_55(), 0)));
}

#[tokio::test]
async fn a_56_digit_checkpoint_covers_larger_texts_with_fewer_digits() {
    let env = Env::new("bignum-down");
    let handler = Scripted::ok();
    let documented = "49590338271490256608559692538361571095921575989136588898";
    env.run(&event(&[Rec::new(documented, b"a")]), &handler)
        .await;
    handler.clear();
    // 55 nines are above "4959..." as text but below it as a number: already done.
    let later = "49590338271490256608559692540925702759324208523137515618";
    let outcome = env
        .run(
            &event(&[Rec::new(nines_55(), b"old"), Rec::new(later, b"b")]),
            &handler,
        )
        .await;
    assert_eq!(handler.seen_sequences(), [later]);
    assert_eq!(outcome.report.skipped_checkpointed, 1);
    assert_eq!(env.checkpoint().await, Some((later.to_owned(), 0)));
}

#[tokio::test]
async fn a_failure_at_a_56_digit_record_reports_its_exact_sequence_number() {
    let env = Env::new("bignum-fail");
    let first = "49590338271490256608559692538361571095921575989136588898";
    let second = "49590338271490256608559692540925702759324208523137515618";
    let handler = Scripted::new(|r| match r.text() {
        Some("b") => Err(retryable("no")),
        _ => Ok(()),
    });
    let outcome = env
        .run(
            &event(&[Rec::new(first, b"a"), Rec::new(second, b"b")]),
            &handler,
        )
        .await;
    assert_eq!(failures(&outcome), [second]);
    assert_eq!(env.checkpoint().await, Some((first.to_owned(), 0)));
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
        env.state().await.progress.head,
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
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));
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
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));

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
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));

    // The next failure is attempt 2 of 3, still retried.
    failing.clear();
    let again = env.run(&event, &failing).await;
    assert_eq!(failures(&again), [seq(1)]);
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(2));
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

#[tokio::test]
async fn records_of_a_plain_event_are_plain() {
    let env = Env::new("plain");
    let handler = Scripted::ok();
    env.run(&event(&[Rec::new(seq(1), b"x").key("k-1")]), &handler)
        .await;
    let seen = handler.seen();
    assert_eq!(seen[0].origin, RecordOrigin::Plain);
    assert_eq!(seen[0].partition_key, "k-1");
    assert_eq!(seen[0].explicit_hash_key, None);
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
    let key = shardline::state::ShardKey {
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
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));
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
    assert_eq!(env.state().await.progress.head.map(|h| h.attempts), Some(1));
}

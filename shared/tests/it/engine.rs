//! The batch engine against the real embedded SQLite store: ordering at the
//! first retryable failure, the checkpoint, quarantine, replay, 56-digit
//! sequence numbers, the remaining-time cut-off and the skip rules.

use crate::common;

use common::*;
use shardline::{HandlerError, QuarantineReason, RecordOrigin};

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
        .head()
        .cloned()
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
        env.state().await.progress.head().cloned(),
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
            env.state()
                .await
                .progress
                .head()
                .cloned()
                .map(|h| h.attempts),
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
    assert_eq!(env.state().await.progress.head().cloned(), None);
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
    let head = env.state().await.progress.head().cloned().unwrap();
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

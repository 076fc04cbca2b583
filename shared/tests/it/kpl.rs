//! KPL aggregates through the engine: sub-records at (sequence, subsequence)
//! granularity, a retry in the middle of an aggregate, quarantine of one
//! sub-record, and a corrupted aggregate handed over as one plain record.

use crate::common;

use bytes::Bytes;
use common::*;
use shardline::RecordOrigin;
use shardline::decode::kpl::{KPL_MAGIC, UserRecord, aggregate};
use shardline::{QuarantineReason, Record};

fn users(n: usize) -> Vec<UserRecord> {
    (0..n)
        .map(|i| UserRecord {
            partition_key: format!("user-{}", i % 2),
            explicit_hash_key: (i == 1).then(|| "170141183460469231731687303715884105728".into()),
            data: Bytes::from(format!("u{i}")),
        })
        .collect()
}

fn agg_rec(sequence: &str, users: &[UserRecord]) -> Rec {
    Rec::new(sequence, aggregate(users)).key("outer-key")
}

fn fail_on(text: &'static str) -> impl Fn(&Record) -> Result<(), shardline::HandlerError> {
    move |r| {
        if r.text() == Some(text) {
            Err(retryable("not now"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn sub_records_reach_the_handler_with_their_own_keys_and_subsequence_numbers() {
    let env = Env::new("kpl-expand");
    let event = event(&[
        Rec::new(seq(1), b"plain-1"),
        agg_rec(&seq(2), &users(3)),
        Rec::new(seq(3), b"plain-3"),
    ]);
    let handler = Scripted::ok();
    let outcome = env.run(&event, &handler).await;
    assert!(outcome.response.is_success());
    let seen = handler.seen();
    let positions: Vec<(String, u64)> = seen.iter().map(Seen::position).collect();
    assert_eq!(
        positions,
        [
            (seq(1), 0),
            (seq(2), 0),
            (seq(2), 1),
            (seq(2), 2),
            (seq(3), 0)
        ]
    );
    assert_eq!(
        handler.seen_texts(),
        ["plain-1", "u0", "u1", "u2", "plain-3"]
    );
    assert_eq!(seen[1].partition_key, "user-0");
    assert_eq!(seen[2].partition_key, "user-1");
    assert_eq!(
        seen[2].explicit_hash_key.as_deref(),
        Some("170141183460469231731687303715884105728")
    );
    assert_eq!(seen[3].explicit_hash_key, None);
    assert_eq!(seen[1].origin, RecordOrigin::Aggregated { count: 3 });
    assert_eq!(seen[0].origin, RecordOrigin::Plain);
    assert_eq!(outcome.report.records, 5, "user records are counted");
    assert_eq!(outcome.report.kpl.aggregates, 1);
    assert_eq!(outcome.report.kpl.user_records, 3);
    assert_eq!(outcome.report.kpl.fallbacks, 0);
    assert_eq!(env.checkpoint().await, Some((seq(3), 0)));
}

#[tokio::test]
async fn a_retry_in_the_middle_of_an_aggregate_skips_the_sub_records_already_done() {
    let env = Env::new("kpl-retry");
    let event = event(&[
        Rec::new(seq(1), b"plain-1"),
        agg_rec(&seq(2), &users(5)),
        Rec::new(seq(3), b"plain-3"),
    ]);

    let failing = Scripted::new(fail_on("u2"));
    let first = env.run(&event, &failing).await;
    assert_eq!(
        failures(&first),
        [seq(2)],
        "Lambda only knows the outer sequence number"
    );
    assert_eq!(failing.seen_texts(), ["plain-1", "u0", "u1", "u2"]);
    assert_eq!(
        env.checkpoint().await,
        Some((seq(2), 1)),
        "checkpoint inside the aggregate"
    );
    let head = env.state().await.progress.head().cloned().unwrap();
    assert_eq!((head.position, head.attempts), (pos(&seq(2), 2), 1));

    // Lambda re-delivers the whole aggregate; only sub-records 2.. are handed over.
    let ok = Scripted::ok();
    let second = env.run(&event, &ok).await;
    assert!(second.response.is_success());
    let positions: Vec<(String, u64)> = ok.seen().iter().map(Seen::position).collect();
    assert_eq!(
        positions,
        [(seq(2), 2), (seq(2), 3), (seq(2), 4), (seq(3), 0)]
    );
    assert_eq!(ok.seen_texts(), ["u2", "u3", "u4", "plain-3"]);
    assert_eq!(second.report.skipped_checkpointed, 3);
    assert_eq!(env.checkpoint().await, Some((seq(3), 0)));

    // A batch that starts at the aggregate again skips all of it.
    ok.clear();
    let replay = env.run(&event, &ok).await;
    assert!(ok.seen().is_empty());
    assert_eq!(replay.report.skipped_checkpointed, 7);
}

#[tokio::test]
async fn an_exhausted_sub_record_is_quarantined_alone_and_the_aggregate_goes_on() {
    let mut env = Env::new("kpl-exhausted");
    env.config.max_attempts = 2;
    let aggregate_users = users(5);
    let event = event(&[agg_rec(&seq(1), &aggregate_users)]);
    let failing = Scripted::new(fail_on("u3"));

    assert_eq!(failures(&env.run(&event, &failing).await), [seq(1)]);
    failing.clear();
    let second = env.run(&event, &failing).await;
    assert!(second.response.is_success());
    assert_eq!(
        failing.seen_texts(),
        ["u3", "u4"],
        "second attempt: u3 is quarantined, u4 follows"
    );
    let quarantined = env.quarantined().await;
    assert_eq!(quarantined.len(), 1);
    let q = &quarantined[0];
    assert_eq!(q.reason, QuarantineReason::Exhausted);
    assert_eq!(q.attempts, 2);
    assert_eq!(
        (q.sequence_number.clone(), q.subsequence_number),
        (seq(1), 3)
    );
    assert_eq!(
        q.data, aggregate_users[3].data,
        "the user record's own bytes"
    );
    assert_eq!(q.partition_key, "user-1");
    assert_eq!(env.checkpoint().await, Some((seq(1), 4)));
}

#[tokio::test]
async fn a_cut_off_inside_an_aggregate_resumes_at_the_next_sub_record() {
    let mut env = Env::new("kpl-deadline");
    env.config.time_reserve = std::time::Duration::from_millis(100);
    let event = event(&[agg_rec(&seq(1), &users(12))]);
    let slow = Scripted::ok().slow(std::time::Duration::from_millis(120));
    let outcome = env
        .run_until(
            &event,
            &slow,
            shardline::Deadline::after(std::time::Duration::from_millis(1200)),
        )
        .await;
    let started = slow.seen().len() as u64;
    // At most 9 of 12 can start (reserve plus the slowest call is kept back).
    assert!((1..12).contains(&started), "started {started}");
    assert_eq!(failures(&outcome), [seq(1)]);
    assert_eq!(outcome.report.cut_off, 1);
    assert_eq!(env.checkpoint().await, Some((seq(1), started - 1)));

    let ok = Scripted::ok();
    env.run(&event, &ok).await;
    let subsequences: Vec<u64> = ok.seen().iter().map(|s| s.subsequence).collect();
    assert_eq!(subsequences, (started..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_corrupted_aggregate_is_handed_over_as_one_plain_record_and_counted() {
    let env = Env::new("kpl-corrupt");
    let mut bytes = aggregate(&users(3));
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55; // break the MD5 digest
    assert_eq!(bytes[..4], KPL_MAGIC);
    let event = event(&[
        Rec::new(seq(1), &bytes).key("outer-key"),
        agg_rec(&seq(2), &users(2)),
    ]);
    let handler = Scripted::ok();
    let outcome = env.run(&event, &handler).await;
    assert!(outcome.response.is_success());
    let seen = handler.seen();
    assert_eq!(seen.len(), 3, "one fallback record and two user records");
    assert_eq!(seen[0].position(), (seq(1), 0));
    assert_eq!(
        seen[0].data, bytes,
        "the whole record, magic and digest included"
    );
    assert_eq!(seen[0].origin, RecordOrigin::AggregateFallback);
    assert_eq!(seen[0].partition_key, "outer-key");
    assert_eq!(outcome.report.kpl.fallbacks, 1);
    assert_eq!(outcome.report.kpl.aggregates, 1);
    assert_eq!(outcome.report.kpl.user_records, 2);
    assert_eq!(outcome.report.records, 3);
}

//! Each fault kind as the store sees it.

use std::time::Duration;

use shardline::state::{
    ClaimOutcome, CommitOutcome, KeyCommit, Progress, Settled, ShardState, StateError, StateStore,
};
use shardline_sim::dynamodb::{Attr, Fault, first_requests};
use tokio::time::Instant;

use super::{CONSUMER, TABLE, checkpoint, claim, count, counts, key, quarantined, setup, start};

fn transient(error: &StateError) -> bool {
    error.is_transient()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_throttled_commit_is_a_transient_error_and_writes_nothing() {
    let (sim, store, _clock) = setup().await;
    sim.set_fault_hook(first_requests("UpdateItem", u64::MAX, Fault::throttling()));
    let k = key("throttled");
    let error = store
        .commit(&k, 0, &checkpoint(1), &Settled::default())
        .await
        .unwrap_err();
    assert!(transient(&error), "{error}");
    assert!(error.to_string().contains("ThrottlingException"), "{error}");
    assert_eq!(
        counts(&sim),
        [count("UpdateItem", 3)],
        "the SDK tried 3 times"
    );
    assert_eq!(store.load_shard(&k).await.unwrap(), ShardState::default());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_lost_answer_after_a_landed_commit_reads_as_superseded_on_the_retry() {
    let (sim, store, _clock) = setup().await;
    sim.set_fault_hook(first_requests("UpdateItem", 1, Fault::LoseAnswer));
    let k = key("lost");
    let outcome = store
        .commit(&k, 0, &checkpoint(1), &Settled::default())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        CommitOutcome::Superseded,
        "the SDK's retry meets its own write"
    );
    assert_eq!(counts(&sim), [count("UpdateItem", 2)]);
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.progress,
        Progress {
            version: 1,
            ..checkpoint(1)
        },
        "yet it landed"
    );

    // A transaction carries a client request token, the same on the SDK's
    // retry: DynamoDB answers it as done, so the commit reads as committed.
    sim.set_fault_hook(first_requests("TransactWriteItems", 1, Fault::LoseAnswer));
    let settled = Settled {
        quarantine: vec![quarantined(3, 10)],
        released: vec![],
        ..Settled::default()
    };
    let outcome = store.commit(&k, 1, &checkpoint(3), &settled).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 2 });
    assert_eq!(
        counts(&sim),
        [count("GetItem", 1), count("TransactWriteItems", 2)]
    );
    assert_eq!(
        store.quarantined(CONSUMER).await.unwrap(),
        settled.quarantine
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failure_after_the_write_is_retried_like_a_lost_answer() {
    let (sim, store, _clock) = setup().await;
    let fault = Fault::FailAfter {
        status: 500,
        code: "InternalServerError".into(),
    };
    sim.set_fault_hook(first_requests("UpdateItem", 1, fault));
    let outcome = store
        .commit(&key("500"), 0, &checkpoint(1), &Settled::default())
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Superseded);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelled_transactions_are_retried_or_reported_as_transient() {
    let (sim, store, _clock) = setup().await;
    sim.set_fault_hook(first_requests("TransactWriteItems", 1, Fault::conflict(0)));
    let won = store
        .claim_dedup_keys(CONSUMER, &[claim("order", "a", 60)], start())
        .await
        .unwrap();
    assert_eq!(won, [ClaimOutcome::Won], "sent again after the conflict");
    assert_eq!(counts(&sim), [count("TransactWriteItems", 2)]);

    sim.set_fault_hook(first_requests(
        "TransactWriteItems",
        u64::MAX,
        Fault::conflict(0),
    ));
    let error = store
        .claim_dedup_keys(CONSUMER, &[claim("other", "a", 60)], start())
        .await
        .unwrap_err();
    assert!(
        transient(&error) && error.to_string().contains("kept conflicting"),
        "{error}"
    );
    assert_eq!(
        counts(&sim),
        [count("TransactWriteItems", 8)],
        "shardline's MAX_TRIES"
    );

    // The commit's transaction throttled on its fence: sent again after a pause.
    let throttle = Fault::CancelTransaction {
        item: usize::MAX,
        code: "ThrottlingError".into(),
    };
    sim.set_fault_hook(first_requests("TransactWriteItems", 1, throttle.clone()));
    let settled = Settled {
        quarantine: vec![quarantined(1, 10)],
        released: vec![],
        ..Settled::default()
    };
    let k = key("cancelled");
    let outcome = store.commit(&k, 0, &checkpoint(1), &settled).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 1 });
    assert_eq!(counts(&sim), [count("TransactWriteItems", 2)]);

    // Throttled every time: a transient error, and nothing applied.
    sim.set_fault_hook(first_requests("TransactWriteItems", u64::MAX, throttle));
    let k = key("throttled");
    let error = store
        .commit(&k, 0, &checkpoint(1), &settled)
        .await
        .unwrap_err();
    assert!(
        transient(&error) && error.to_string().contains("kept conflicting"),
        "{error}"
    );
    sim.clear_fault_hook();
    assert_eq!(
        store.load_shard(&k).await.unwrap(),
        ShardState::default(),
        "nothing applied"
    );

    // A reason no retry mends is an error at once.
    let odd = Fault::CancelTransaction {
        item: 0,
        code: "ValidationError".into(),
    };
    sim.set_fault_hook(first_requests("TransactWriteItems", u64::MAX, odd));
    let error = store
        .commit(&key("odd"), 0, &checkpoint(1), &settled)
        .await
        .unwrap_err();
    assert!(
        !transient(&error) && error.to_string().contains("ValidationError"),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn unprocessed_keys_and_items_are_sent_again() {
    let (sim, store, _clock) = setup().await;
    let k = key("unprocessed");
    let commits: Vec<KeyCommit> = (0..150)
        .map(|i| KeyCommit {
            partition_key: format!("u{i}"),
            read_version: 0,
            progress: checkpoint(i),
            settled: Settled::default(),
        })
        .collect();
    store.commit_key_progress(&k, &commits).await.unwrap();
    sim.take_request_counts();
    sim.set_fault_hook(first_requests(
        "BatchGetItem",
        1,
        Fault::Unprocessed { share: 0.5 },
    ));
    let names: Vec<String> = commits.iter().map(|c| c.partition_key.clone()).collect();
    let read = store.load_key_progress(&k, &names).await.unwrap();
    assert_eq!(read.len(), 150);
    assert_eq!(
        counts(&sim),
        [count("BatchGetItem", 3)],
        "50 keys asked again"
    );

    sim.set_fault_hook(first_requests(
        "BatchWriteItem",
        2,
        Fault::Unprocessed { share: 0.5 },
    ));
    let large = Settled {
        quarantine: vec![quarantined(7, 3 * 1024 * 1024)],
        released: vec![],
        ..Settled::default()
    };
    store
        .commit(&key("large"), 0, &checkpoint(7), &large)
        .await
        .unwrap();
    assert_eq!(
        counts(&sim),
        [count("BatchWriteItem", 3), count("TransactWriteItems", 1)],
        "10 parts: 5 left, then 3 left, then done"
    );
    assert_eq!(store.quarantined(CONSUMER).await.unwrap(), large.quarantine);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_concurrent_writer_supersedes_the_commit() {
    let (sim, store, _clock) = setup().await;
    let k = key("raced");
    let read = store.load_shard(&k).await.unwrap();
    sim.on_request(|request, tables| {
        if request.operation == "UpdateItem" {
            let pk = format!("{CONSUMER}#shard#arn:aws:kinesis:us-east-1:1:stream/sim#raced");
            let rival = [
                ("pk", Attr::s(pk)),
                ("sk", Attr::s("state")),
                ("version", Attr::n(1)),
            ];
            let rival = rival.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            tables.put(TABLE, rival).unwrap();
        }
        Fault::None
    });
    let outcome = store
        .commit(
            &k,
            read.progress.version,
            &checkpoint(5),
            &Settled::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Superseded);
    sim.clear_fault_hook();
    assert_eq!(
        store.load_shard(&k).await.unwrap().progress.checkpoint,
        None,
        "the rival's item"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_delayed_answer_takes_its_time_on_tokios_clock() {
    let (sim, store, _clock) = setup().await;
    sim.set_fault_hook(first_requests(
        "UpdateItem",
        1,
        Fault::Delay(Duration::from_millis(750)),
    ));
    let started = Instant::now();
    let outcome = store
        .commit(&key("slow"), 0, &checkpoint(1), &Settled::default())
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 1 });
    assert_eq!(started.elapsed(), Duration::from_millis(750));
}

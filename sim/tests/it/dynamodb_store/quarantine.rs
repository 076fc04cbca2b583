//! Quarantined records: written with the commit, read back whole, and
//! worked on through the `QuarantineStore`.

use shardline::quarantine::{QuarantineKey, QuarantineReason, QuarantinedRecord};
use shardline::state::{CommitOutcome, QuarantineStore, Settled, StateStore};

use super::{CONSUMER, TABLE, checkpoint, count, counts, key, quarantined, setup};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn quarantined_records_go_with_the_commit_and_come_back_whole() {
    let (sim, store, _clock) = setup().await;
    let k = key("quarantine");
    let settled = Settled {
        quarantine: vec![quarantined(1, 10), quarantined(2, 1500 * 1024)],
        released: vec![],
        ..Settled::default()
    };
    let committed = store.commit(&k, 0, &checkpoint(2), &settled).await.unwrap();
    assert_eq!(committed, CommitOutcome::Committed { version: 1 });
    assert_eq!(
        counts(&sim),
        [count("BatchWriteItem", 1), count("TransactWriteItems", 1)],
        "the parts past 300 KB first, then one transaction"
    );
    let pk = format!("{CONSUMER}#quarantine");
    let parts: Vec<_> = sim
        .items(TABLE)
        .into_iter()
        .filter(|i| i["pk"].as_s() == Some(pk.as_str()))
        .collect();
    assert_eq!(
        parts.len(),
        6,
        "two entries, and four parts for the 1.5 MB payload"
    );
    let stored = store.quarantined(CONSUMER).await.unwrap();
    assert_eq!(stored, settled.quarantine);
    let queries = counts(&sim);
    assert_eq!(
        queries,
        [count("Query", 2)],
        "about 1 MB a page: {queries:?}"
    );

    // A superseded commit writes nothing of what it settled.
    let late = Settled {
        quarantine: vec![quarantined(3, 10)],
        released: vec![],
        ..Settled::default()
    };
    let stale = store.commit(&k, 0, &checkpoint(3), &late).await.unwrap();
    assert_eq!(stale, CommitOutcome::Superseded);
    assert_eq!(store.quarantined(CONSUMER).await.unwrap().len(), 2);

    // The engine's bound (32 records) goes in one transaction; 100 items do not fit one.
    let bounded = Settled {
        quarantine: (10..10 + shardline::state::MAX_QUARANTINED_PER_COMMIT as u64)
            .map(|n| quarantined(n, 100))
            .collect(),
        released: vec![],
        ..Settled::default()
    };
    sim.take_request_counts();
    store
        .commit(&key("bounded"), 0, &checkpoint(50), &bounded)
        .await
        .unwrap();
    assert_eq!(counts(&sim), [count("TransactWriteItems", 1)]);
    let too_many = Settled {
        quarantine: (100..200).map(|n| quarantined(n, 1)).collect(),
        released: vec![],
        ..Settled::default()
    };
    let error = store
        .commit(&key("huge"), 0, &checkpoint(200), &too_many)
        .await
        .unwrap_err();
    assert!(
        !error.is_transient() && error.to_string().contains("too large"),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_quarantine_store_claims_requeues_and_removes() {
    let (sim, store, _clock) = setup().await;
    let big = quarantined(5, 700 * 1024);
    let settled = Settled {
        quarantine: vec![big.clone()],
        released: vec![],
        ..Settled::default()
    };
    store
        .commit(&key("ops"), 0, &checkpoint(5), &settled)
        .await
        .unwrap();
    let record = big.key();
    assert!(
        store
            .claim_replay(CONSUMER, &record, 10, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_replay(CONSUMER, &record, 11, None)
            .await
            .unwrap(),
        "held"
    );
    assert!(
        store
            .claim_replay(CONSUMER, &record, 12, Some(u64::MAX))
            .await
            .unwrap(),
        "taken over"
    );
    let stored = store.quarantined(CONSUMER).await.unwrap();
    assert_eq!(stored[0].replay_started_at, Some(12));
    assert_eq!(stored[0].data, big.data, "a 700 KB payload in three items");
    store
        .requeue(CONSUMER, &record, QuarantineReason::Exhausted, "again", 3)
        .await
        .unwrap();
    let stored = store.quarantined(CONSUMER).await.unwrap();
    let requeued = &stored[0];
    assert_eq!(
        (requeued.reason, requeued.detail.as_str(), requeued.attempts),
        (QuarantineReason::Exhausted, "again", 3)
    );
    assert_eq!(requeued.replay_started_at, None, "the claim is released");
    sim.take_request_counts();
    assert!(store.remove_quarantined(CONSUMER, &record).await.unwrap());
    assert_eq!(
        counts(&sim),
        [count("DeleteItem", 3)],
        "the entry, then its two parts"
    );
    assert!(
        sim.items(TABLE)
            .iter()
            .all(|i| i["pk"].as_s() != Some("sim#quarantine"))
    );
    assert!(!store.remove_quarantined(CONSUMER, &record).await.unwrap());
    let gone = QuarantineKey {
        sequence_number: "1".into(),
        ..record
    };
    assert!(
        !store
            .claim_replay(CONSUMER, &gone, 13, Some(u64::MAX))
            .await
            .unwrap(),
        "no such record"
    );
    store
        .requeue(CONSUMER, &gone, QuarantineReason::Permanent, "x", 1)
        .await
        .unwrap();
    assert!(
        sim.items(TABLE)
            .iter()
            .all(|i| i["pk"].as_s() != Some("sim#quarantine")),
        "a purged record stays purged"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_superseded_commit_writes_none_of_what_it_settled() {
    let (_sim, store, _clock) = setup().await;
    let k = key("superseded");
    let none = Settled::default();
    store.commit(&k, 0, &checkpoint(60), &none).await.unwrap();
    let now = super::start();
    let held = [super::claim("order", "held", 60)];
    store.claim_dedup_keys(CONSUMER, &held, now).await.unwrap();
    let settled = Settled {
        quarantine: (61..65).map(|n| quarantined(n, 900_000)).collect(),
        released: held.to_vec(),
        ..Settled::default()
    };
    let outcome = store
        .commit(&k, 0, &checkpoint(64), &settled)
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Superseded);
    assert!(
        store.quarantined(CONSUMER).await.unwrap().is_empty(),
        "no entry landed"
    );
    let other = [super::claim("order", "other", 60)];
    let claimed = store.claim_dedup_keys(CONSUMER, &other, now).await.unwrap();
    assert_eq!(
        claimed,
        [shardline::state::ClaimOutcome::InFlight("held".into())]
    );
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(state.progress.checkpoint, checkpoint(60).checkpoint);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_record_quarantined_again_keeps_its_entry_and_replay_claim() {
    let (_sim, store, _clock) = setup().await;
    let k = key("again");
    let record = quarantined(70, 10);
    let first = Settled {
        quarantine: vec![record.clone()],
        released: vec![],
        ..Settled::default()
    };
    store.commit(&k, 0, &checkpoint(70), &first).await.unwrap();
    assert!(
        store
            .claim_replay(CONSUMER, &record.key(), 1_000, None)
            .await
            .unwrap()
    );
    let again = QuarantinedRecord {
        detail: "failed once more".into(),
        attempts: 9,
        ..record.clone()
    };
    let second = Settled {
        quarantine: vec![again],
        released: vec![],
        ..Settled::default()
    };
    let outcome = store.commit(&k, 1, &checkpoint(70), &second).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 2 });
    assert!(
        !store
            .claim_replay(CONSUMER, &record.key(), 2_000, None)
            .await
            .unwrap()
    );
    let stored = store.quarantined(CONSUMER).await.unwrap();
    assert_eq!(
        (stored[0].detail.as_str(), stored[0].attempts),
        ("record 70 is bad", 1)
    );
    assert_eq!(stored[0].replay_started_at, Some(1_000));
}

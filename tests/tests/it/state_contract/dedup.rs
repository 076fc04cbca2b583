//! Dedup claims on both stores: owners, expiry, release with a quarantine,
//! and the two lives of a claim (in flight, then done with the commit).

use super::*;

pub(super) async fn dedup_claims_respect_owners_expiry_and_release(store: &dyn StateStore) {
    let now = SystemTime::now();
    let name = unique_name("order");
    let won = store
        .claim_dedup_keys("contract", &[claim(&name, "a", 60)], now)
        .await
        .unwrap();
    assert_eq!(won, [ClaimOutcome::Won]);
    let again = store
        .claim_dedup_keys("contract", &[claim(&name, "a", 60)], now)
        .await
        .unwrap();
    assert_eq!(again, [ClaimOutcome::Won], "the same owner keeps its claim");
    let lost = store
        .claim_dedup_keys("contract", &[claim(&name, "b", 60)], now)
        .await
        .unwrap();
    assert_eq!(
        lost,
        [ClaimOutcome::InFlight("a".into())],
        "a's record has not finished"
    );
    let later = now + Duration::from_secs(61);
    let taken = store
        .claim_dedup_keys("contract", &[claim(&name, "b", 120)], later)
        .await
        .unwrap();
    assert_eq!(taken, [ClaimOutcome::Won], "an expired claim is taken over");

    // A quarantined record gives its claim back with the commit; a claim of
    // another owner is left alone.
    let k = key("dedup-release");
    let released = Settled {
        quarantine: vec![quarantined(40, 1)],
        released: vec![claim(&name, "b", 60)],
        ..Settled::default()
    };
    let progress = Progress {
        checkpoint: Some(pos(40, 0)),
        ..Progress::default()
    };
    store.commit(&k, 0, &progress, &released).await.unwrap();
    let fresh = store
        .claim_dedup_keys("contract", &[claim(&name, "c", 60)], now)
        .await
        .unwrap();
    assert_eq!(fresh, [ClaimOutcome::Won], "b's claim was given back");

    let other = unique_name("order");
    store
        .claim_dedup_keys("contract", &[claim(&other, "x", 60)], now)
        .await
        .unwrap();
    let wrong_owner = KeyCommit {
        partition_key: "y".into(),
        read_version: 0,
        progress: Progress {
            checkpoint: Some(pos(41, 0)),
            ..Progress::default()
        },
        settled: Settled {
            quarantine: vec![quarantined(41, 1)],
            released: vec![claim(&other, "y", 60)],
            ..Settled::default()
        },
    };
    store.commit_key_progress(&k, &[wrong_owner]).await.unwrap();
    store.commit_key_progress(&k, &[]).await.unwrap();
    let held = store
        .claim_dedup_keys("contract", &[claim(&other, "z", 60)], now)
        .await
        .unwrap();
    assert_eq!(
        held,
        [ClaimOutcome::InFlight("x".into())],
        "only the owner's claim is released"
    );
}

/// A claim made before handling is in flight: a copy met meanwhile is told
/// to wait, not skipped (the first copy may yet fail, or be discarded by
/// Lambda, and the copy would be lost). The commit of the handled record
/// marks it done, even when its fence fails (the effect landed): from then on
/// a copy is a duplicate. A done claim is re-entrant for its owner.
pub(super) async fn a_claim_is_in_flight_until_its_commit_marks_it_done(store: &dyn StateStore) {
    let now = SystemTime::now();
    let (name, other) = (unique_name("order"), unique_name("order"));
    store
        .claim_dedup_keys("contract", &[claim(&name, "first", 5)], now)
        .await
        .unwrap();
    let waiting = store
        .claim_dedup_keys("contract", &[claim(&name, "copy", 5)], now)
        .await
        .unwrap();
    assert_eq!(waiting, [ClaimOutcome::InFlight("first".into())]);

    let k = key("dedup-done");
    let progress = Progress {
        checkpoint: Some(pos(50, 0)),
        ..Progress::default()
    };
    let done = Settled {
        done: vec![claim(&name, "first", 3_600)],
        ..Settled::default()
    };
    let outcome = store.commit(&k, 0, &progress, &done).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 1 });
    let lease_over = now + Duration::from_secs(60);
    let skipped = store
        .claim_dedup_keys("contract", &[claim(&name, "copy", 5)], lease_over)
        .await
        .unwrap();
    assert_eq!(
        skipped,
        [ClaimOutcome::HeldBy("first".into())],
        "done for the dedup window, past the lease"
    );
    let own = store
        .claim_dedup_keys("contract", &[claim(&name, "first", 5)], now)
        .await
        .unwrap();
    assert_eq!(own, [ClaimOutcome::Won], "its own record's retry");

    // A stale commit (its fence fails) still marks its handled records done.
    store
        .claim_dedup_keys("contract", &[claim(&other, "stale", 5)], now)
        .await
        .unwrap();
    let stale = Settled {
        done: vec![claim(&other, "stale", 3_600)],
        ..Settled::default()
    };
    let outcome = store.commit(&k, 0, &progress, &stale).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Superseded);
    let after = store
        .claim_dedup_keys("contract", &[claim(&other, "copy", 5)], lease_over)
        .await
        .unwrap();
    assert_eq!(after, [ClaimOutcome::HeldBy("stale".into())]);
}

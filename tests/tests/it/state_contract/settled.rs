//! What a commit settled lands with it or not at all, on both stores.

use super::*;

/// A commit that loses its fence writes nothing: not its progress, not its
/// quarantined records (large payloads included), not its released claims.
/// DynamoDB wrote a large quarantine before the fence, so a stale invocation
/// left entries of records the newer one may have processed.
pub(super) async fn a_superseded_commit_writes_none_of_what_it_settled(store: &dyn StateStore) {
    let k = key("superseded-settled");
    let first = Progress {
        checkpoint: Some(pos(60, 0)),
        ..Progress::default()
    };
    store
        .commit(&k, 0, &first, &Settled::default())
        .await
        .unwrap();
    let name = unique_name("order");
    let now = SystemTime::now();
    store
        .claim_dedup_keys("contract", &[claim(&name, "held", 60)], now)
        .await
        .unwrap();
    // Over 3 MB of payload: what DynamoDB used to write before the fence.
    let settled = Settled {
        quarantine: (61..65).map(|n| quarantined(n, 900_000)).collect(),
        released: vec![claim(&name, "held", 60)],
        ..Settled::default()
    };
    let stale = Progress {
        checkpoint: Some(pos(64, 0)),
        ..Progress::default()
    };
    let outcome = store.commit(&k, 0, &stale, &settled).await.unwrap();
    assert_eq!(outcome, CommitOutcome::Superseded);
    let stored = store.quarantined("contract").await.unwrap();
    let leaked: Vec<&str> = stored
        .iter()
        .filter(|q| (61..65).any(|n| q.detail == format!("record {n} is bad")))
        .map(|q| q.sequence_number.as_str())
        .collect();
    assert!(
        leaked.is_empty(),
        "a superseded commit quarantined {leaked:?}"
    );
    let held = store
        .claim_dedup_keys("contract", &[claim(&name, "other", 60)], now)
        .await
        .unwrap();
    assert_eq!(
        held,
        [ClaimOutcome::InFlight("held".into())],
        "the claim stays"
    );
    assert_eq!(
        store.load_shard(&k).await.unwrap().progress.checkpoint,
        first.checkpoint
    );
}

/// A record quarantined again (a retried batch whose first commit landed
/// unanswered, a window folding checkpointed records again) keeps its entry
/// as it is: a replay that claimed it still holds it. DynamoDB's Put
/// overwrote the entry and cleared the claim, where SQLite kept it.
pub(super) async fn quarantining_a_record_again_keeps_its_entry_and_replay_claim(
    store: &dyn StateStore,
) {
    let k = key("quarantine-again");
    let record = quarantined(70, 10);
    let first = Settled {
        quarantine: vec![record.clone()],
        released: vec![],
        ..Settled::default()
    };
    let progress = Progress {
        checkpoint: Some(pos(70, 0)),
        ..Progress::default()
    };
    store.commit(&k, 0, &progress, &first).await.unwrap();
    let claimed = store
        .claim_replay("contract", &record.key(), 1_000, None)
        .await
        .unwrap();
    assert!(claimed, "a replay claims the record");
    let mut again = record.clone();
    again.detail = "failed once more".into();
    again.attempts = 9;
    let second = Settled {
        quarantine: vec![again],
        released: vec![],
        ..Settled::default()
    };
    store.commit(&k, 1, &progress, &second).await.unwrap();
    let stolen = store
        .claim_replay("contract", &record.key(), 2_000, None)
        .await
        .unwrap();
    assert!(!stolen, "the running replay's claim was cleared");
    let stored = store.quarantined("contract").await.unwrap();
    let entry = stored.iter().find(|q| q.key() == record.key()).unwrap();
    assert_eq!(
        (entry.detail.as_str(), entry.attempts),
        ("record 70 is bad", 1)
    );
}

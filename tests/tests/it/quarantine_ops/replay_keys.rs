//! Replay and a key's order, run on both stores by `quarantine_ops.rs`: a key
//! whose record is not applied (it fails again, or its handler does not
//! answer) waits, with its later records left in the quarantine, while other
//! keys go on; and `--include-interrupted` takes over only claims older than
//! a running replay can hold, never the record another replay is applying.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shardline::quarantine::{QuarantineReason, QuarantinedRecord};
use shardline::quarantine::{ReplayOptions, ReplayOutcome, replay};
use shardline::state::StateStore;

use super::{Applier, CONSUMER, entry, listed, payloads, seed, seq};

/// An entry as [`entry`] makes it, with partition key `key`.
fn keyed(shard: &str, n: u64, data: &str, key: &str) -> QuarantinedRecord {
    QuarantinedRecord {
        partition_key: key.into(),
        ..entry(shard, n, data, QuarantineReason::Exhausted, n)
    }
}

/// Each outcome as `quarantine replay` prints it (its `outcome` tag first).
fn printed(outcomes: &[ReplayOutcome]) -> Vec<serde_json::Value> {
    outcomes
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

fn tags(outcomes: &[ReplayOutcome]) -> Vec<String> {
    printed(outcomes)
        .iter()
        .map(|o| o["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

pub(super) async fn a_key_waits_behind_its_record_that_is_not_applied(store: &dyn StateStore) {
    seed(
        store,
        vec![
            keyed("shardId-a", 1, "bad-k1", "k1"),
            keyed("shardId-a", 2, "k2", "k2"),
            keyed("shardId-a", 3, "later-k1", "k1"),
            keyed("shardId-a", 4, "hang-k3", "k3"),
            keyed("shardId-a", 5, "later-k3", "k3"),
            // A later shard (a child's id is above its parents'): k1 waits there too.
            keyed("shardId-b", 1, "child-k1", "k1"),
            keyed("shardId-b", 2, "child-k2", "k2"),
        ],
    )
    .await;
    let handler = Applier::default();
    handler.hang.store(true, Ordering::SeqCst);
    let options = ReplayOptions {
        timeout: Duration::from_secs(1),
        ..ReplayOptions::default()
    };
    let outcomes = replay(
        store,
        &handler,
        CONSUMER,
        listed(store).await,
        &options,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(handler.applied(), ["k2", "hang-k3", "child-k2"]);
    assert_eq!(
        tags(&outcomes),
        [
            "failed",
            "replayed",
            "held",
            "unsettled",
            "held",
            "held",
            "replayed"
        ],
        "{outcomes:?}"
    );
    let printed = printed(&outcomes);
    let first_k1 = format!("shardId-a/{}/0", seq(1));
    assert_eq!(printed[2]["behind"], first_k1.as_str());
    assert_eq!(printed[5]["behind"], first_k1.as_str(), "behind the first");
    assert_eq!(printed[4]["behind"], format!("shardId-a/{}/0", seq(4)));
    let left = listed(store).await;
    assert_eq!(
        payloads(&left),
        ["bad-k1", "child-k1", "hang-k3", "later-k1", "later-k3"]
    );
    for waiting in left.iter().filter(|r| r.data.starts_with(b"later")) {
        assert_eq!(
            (waiting.attempts, waiting.detail.as_str()),
            (3, "first failure"),
            "a held record is not charged"
        );
        assert_eq!(waiting.replay_started_at, None, "nor claimed");
    }
}

pub(super) async fn include_interrupted_leaves_alone_a_record_another_replay_is_applying(
    store: &dyn StateStore,
) {
    seed(
        store,
        vec![
            keyed("shardId-a", 1, "gate-k1", "k1"),
            keyed("shardId-a", 2, "old-k2", "k2"),
        ],
    )
    .await;
    // A replay two hours ago claimed old-k2 and was killed.
    let old = listed(store).await[1].key();
    let two_hours_ago = now_ms() - 2 * 3_600_000;
    assert!(
        store
            .claim_replay(CONSUMER, &old, two_hours_ago, None)
            .await
            .unwrap()
    );
    let handler = Applier::default();
    handler.gated.store(true, Ordering::SeqCst);
    let defaults = ReplayOptions::default();
    let running = replay(
        store,
        &handler,
        CONSUMER,
        listed(store).await,
        &defaults,
        |_, _| {},
    );
    let operator = async {
        // While the running replay is inside gate-k1's handler.
        handler.inside.notified().await;
        let records = listed(store).await;
        assert!(records[0].replay_started_at.is_some(), "gate-k1 is claimed");
        let options = ReplayOptions {
            include_interrupted: true,
            ..ReplayOptions::default()
        };
        let outcomes = replay(store, &handler, CONSUMER, records, &options, |_, _| {}).await;
        handler.gate.notify_one();
        outcomes.unwrap()
    };
    let (running, operator) = tokio::join!(running, operator);
    let running = running.unwrap();
    assert_eq!(handler.applied(), ["old-k2", "gate-k1"], "each once");
    assert_eq!(tags(&operator), ["skipped", "replayed"], "{operator:?}");
    assert!(
        printed(&operator)[0]["why"]
            .as_str()
            .is_some_and(|why| why.contains("may still be running")),
        "{operator:?}"
    );
    assert_eq!(tags(&running), ["replayed", "skipped"], "{running:?}");
    assert!(listed(store).await.is_empty());
}

pub(super) async fn a_take_over_takes_only_claims_started_at_or_before_its_cut_off(
    store: &dyn StateStore,
) {
    seed(store, vec![keyed("shardId-a", 1, "r1", "k1")]).await;
    let key = listed(store).await[0].key();
    let claim = |now: u64, before: Option<u64>| {
        let key = key.clone();
        async move {
            store
                .claim_replay(CONSUMER, &key, now, before)
                .await
                .unwrap()
        }
    };
    assert!(claim(1_000, None).await, "unclaimed: claimed");
    assert!(!claim(2_000, None).await, "held");
    assert!(!claim(2_000, Some(999)).await, "claimed after the cut-off");
    assert!(claim(2_000, Some(1_000)).await, "claimed at the cut-off");
    assert_eq!(listed(store).await[0].replay_started_at, Some(2_000));
    assert!(!claim(3_000, Some(1_999)).await);
    store
        .requeue(CONSUMER, &key, QuarantineReason::Exhausted, "again", 4)
        .await
        .unwrap();
    assert!(claim(4_000, Some(0)).await, "released: claimed");
    assert!(store.remove_quarantined(CONSUMER, &key).await.unwrap());
    assert!(!claim(5_000, Some(u64::MAX)).await, "gone");
}

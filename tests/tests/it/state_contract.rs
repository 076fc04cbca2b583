//! One contract for both state stores: every case runs against the embedded
//! store (SQLite) and the DynamoDB store (moto), with the same assertions, so
//! the two cannot drift apart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use shardline::quarantine::{QuarantineReason, QuarantinedRecord};
use shardline::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Delivered, DynamoDbStore,
    EmbeddedStore, HeadAttempts, KeyCommit, Lineage, PositionRanges, Progress, Settled, ShardState,
    ShardStatus, StateStore,
};
use shardline::{Position, ShardRef};
use shardline_tests::{Emulators, unique_name};

#[path = "state_contract/dedup.rs"]
mod dedup;
#[path = "state_contract/settled.rs"]
mod settled;
use dedup::{
    a_claim_is_in_flight_until_its_commit_marks_it_done,
    dedup_claims_respect_owners_expiry_and_release,
};
use settled::{
    a_superseded_commit_writes_none_of_what_it_settled,
    quarantining_a_record_again_keeps_its_entry_and_replay_claim,
};

fn key(shard: &str) -> ConsumerShard {
    ConsumerShard {
        consumer: "contract".into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/contract"),
            shard_id: Arc::from(shard),
        },
    }
}

fn pos(n: u64, sub: u64) -> Position {
    Position::new(
        format!("4959033827149025660855969253836157109592157598{n:010}")
            .parse()
            .unwrap(),
        sub,
    )
}

fn delivered(ranges: &[(&str, u64, u64)]) -> Delivered {
    let mut delivered = Delivered::new();
    for (name, from, to) in ranges {
        let mut set = PositionRanges::new();
        set.insert(pos(*from, 0), pos(*to, 3));
        delivered.set(name, set);
    }
    delivered
}

fn quarantined(n: u64, bytes: usize) -> QuarantinedRecord {
    QuarantinedRecord {
        stream_arn: "arn:aws:kinesis:us-east-1:1:stream/contract".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: pos(n, 0).sequence.to_string(),
        subsequence_number: 0,
        partition_key: "k".into(),
        reason: QuarantineReason::Permanent,
        detail: format!("record {n} is bad"),
        attempts: 1,
        quarantined_at: 1_700_000_000_000 + n,
        data: Bytes::from((0..bytes).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
        explicit_hash_key: n.is_multiple_of(2).then(|| format!("{n}0000")),
        replay_started_at: None,
    }
}

fn claim(key: &str, owner: &str, ttl: u64) -> DedupClaim {
    DedupClaim {
        key: key.into(),
        owner: owner.into(),
        expires_at: SystemTime::now() + Duration::from_secs(ttl),
    }
}

async fn a_new_shard_reads_as_nothing(store: &dyn StateStore) {
    let state = store.load_shard(&key("fresh")).await.unwrap();
    assert_eq!(state, ShardState::default());
    assert_eq!(state.progress.version, 0);
}

async fn shard_progress_round_trips_and_is_fenced(store: &dyn StateStore) {
    let k = key("shard-fence");
    let progress = Progress {
        checkpoint: Some(pos(5, 2)),
        done: {
            let mut done = PositionRanges::new();
            done.insert(pos(7, 0), pos(7, 3));
            done.insert(pos(9, 0), pos(12, 1));
            done
        },
        heads: vec![
            HeadAttempts {
                position: pos(6, 0),
                attempts: 2,
            },
            HeadAttempts {
                position: pos(8, 1),
                attempts: 1,
            },
        ],
        delivered: delivered(&[
            ("stream-a", 7, 9),
            ("arn:aws:kinesis:us-east-1:1:stream/b", 8, 8),
        ]),
        version: 0,
    };
    let settled = Settled::default();
    assert_eq!(
        store.commit(&k, 0, &progress, &settled).await.unwrap(),
        CommitOutcome::Committed { version: 1 }
    );
    assert_eq!(
        store.commit(&k, 0, &progress, &settled).await.unwrap(),
        CommitOutcome::Superseded,
        "a writer that read version 0 is stale now"
    );
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.progress,
        Progress {
            version: 1,
            ..progress.clone()
        }
    );
    // Clearing the head and the deliveries writes them away.
    let cleared = Progress {
        checkpoint: Some(pos(9, 3)),
        ..Progress::default()
    };
    assert_eq!(
        store.commit(&k, 1, &cleared, &settled).await.unwrap(),
        CommitOutcome::Committed { version: 2 }
    );
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.progress,
        Progress {
            version: 2,
            ..cleared
        }
    );
}

async fn quarantine_goes_with_the_commit_and_keeps_payloads(store: &dyn StateStore) {
    let k = key("shard-quarantine");
    let settled = Settled {
        quarantine: vec![quarantined(1, 10), quarantined(2, 900 * 1024)],
        released: vec![],
        ..Settled::default()
    };
    let progress = Progress {
        checkpoint: Some(pos(2, 0)),
        ..Progress::default()
    };
    store.commit(&k, 0, &progress, &settled).await.unwrap();
    let stored = store.quarantined("contract").await.unwrap();
    let mine: Vec<&QuarantinedRecord> = stored
        .iter()
        .filter(|q| q.detail.starts_with("record 1 ") || q.detail.starts_with("record 2 "))
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(*mine[0], settled.quarantine[0]);
    assert_eq!(
        *mine[1], settled.quarantine[1],
        "a 900 KB payload comes back whole"
    );
}

async fn racing_key_commits_lose_no_attempt(store: &dyn StateStore) {
    let k = key("keys-race");
    let commit = |read_version: u64, attempts: u32| KeyCommit {
        partition_key: "k".into(),
        read_version,
        progress: Progress {
            checkpoint: Some(pos(1, 0)),
            heads: (attempts > 0)
                .then(|| HeadAttempts {
                    position: pos(2, 0),
                    attempts,
                })
                .into_iter()
                .collect(),
            ..Progress::default()
        },
        settled: Settled::default(),
    };
    assert!(
        store
            .commit_key_progress(&k, &[commit(0, 0)])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .commit_key_progress(&k, &[commit(1, 1)])
            .await
            .unwrap()
            .is_empty()
    );
    // A second invocation read version 1 too and failed the same record.
    let superseded = store
        .commit_key_progress(&k, &[commit(1, 1)])
        .await
        .unwrap();
    assert_eq!(superseded, ["k"], "a stale writer of a key is refused");
    let read = store.load_key_progress(&k, &["k".into()]).await.unwrap();
    assert_eq!(read["k"].version, 2);
    assert_eq!(read["k"].head().map(|h| h.attempts), Some(1));
}

async fn many_keys_round_trip_and_unknown_keys_are_left_out(store: &dyn StateStore) {
    let k = key("keys-many");
    let commits: Vec<KeyCommit> = (0..250)
        .map(|i| KeyCommit {
            partition_key: format!("user-{i}"),
            read_version: 0,
            progress: Progress {
                checkpoint: Some(pos(i, 0)),
                delivered: if i % 50 == 0 {
                    delivered(&[("d", i + 1, i + 2)])
                } else {
                    Delivered::new()
                },
                ..Progress::default()
            },
            settled: Settled::default(),
        })
        .collect();
    assert!(
        store
            .commit_key_progress(&k, &commits)
            .await
            .unwrap()
            .is_empty()
    );
    let mut wanted: Vec<String> = commits.iter().map(|c| c.partition_key.clone()).collect();
    wanted.push("never-seen".into());
    let read = store.load_key_progress(&k, &wanted).await.unwrap();
    assert_eq!(read.len(), 250);
    for commit in &commits {
        let got = &read[&commit.partition_key];
        assert_eq!(
            *got,
            Progress {
                version: 1,
                ..commit.progress.clone()
            }
        );
    }
}

async fn lineage_moves_forward_and_shard_ends_are_kept(store: &dyn StateStore) {
    let k = key("lineage");
    let parents = vec!["shardId-000000000001".to_owned()];
    store
        .save_lineage(
            &k,
            &Lineage::Pending {
                parents: parents.clone(),
            },
        )
        .await
        .unwrap();
    store
        .save_lineage(
            &k,
            &Lineage::Cleared {
                parents: parents.clone(),
            },
        )
        .await
        .unwrap();
    store
        .save_lineage(
            &k,
            &Lineage::Pending {
                parents: parents.clone(),
            },
        )
        .await
        .unwrap();
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.lineage,
        Lineage::Cleared {
            parents: parents.clone()
        },
        "never back"
    );
    assert_eq!(
        state.progress.version, 0,
        "lineage does not move the version"
    );
    store
        .mark_shard_end(&k, &["c1".into(), "c2".into()])
        .await
        .unwrap();
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.status,
        ShardStatus::Ended {
            children: vec!["c1".into(), "c2".into()]
        }
    );
    assert_eq!(state.lineage, Lineage::Cleared { parents });
}

async fn dynamodb() -> DynamoDbStore {
    let store = DynamoDbStore::new(Emulators::from_env().dynamodb(), unique_name("contract"));
    store.create_table().await.unwrap();
    store
}

fn embedded() -> EmbeddedStore {
    let dir = std::env::temp_dir().join(unique_name("contract"));
    EmbeddedStore::open(&dir).unwrap()
}

/// Each case, once per store.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::embedded()).await;
            })*
        }
        mod dynamodb_store {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::dynamodb().await).await;
            })*
        }
    };
}

contract!(
    a_new_shard_reads_as_nothing,
    shard_progress_round_trips_and_is_fenced,
    quarantine_goes_with_the_commit_and_keeps_payloads,
    racing_key_commits_lose_no_attempt,
    many_keys_round_trip_and_unknown_keys_are_left_out,
    dedup_claims_respect_owners_expiry_and_release,
    a_claim_is_in_flight_until_its_commit_marks_it_done,
    lineage_moves_forward_and_shard_ends_are_kept,
    a_superseded_commit_writes_none_of_what_it_settled,
    quarantining_a_record_again_keeps_its_entry_and_replay_claim,
);

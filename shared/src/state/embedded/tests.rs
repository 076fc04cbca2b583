//! The embedded store on its own (the contract both stores keep is in
//! `tests/tests/it/state_contract.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::record::{Position, ShardRef};
use crate::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Progress, Settled, ShardState,
    StateStore,
};

fn key() -> ConsumerShard {
    ConsumerShard {
        consumer: "c".into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:s"),
            shard_id: Arc::from("shardId-000000000000"),
        },
    }
}

fn pos(seq: &str, sub: u64) -> Position {
    Position::new(seq.parse().unwrap(), sub)
}

#[tokio::test]
async fn commit_is_fenced_by_version_and_survives_reopen() {
    let dir = tempdir();
    let store = EmbeddedStore::open(&dir).unwrap();
    let fresh = store.load_shard(&key()).await.unwrap();
    assert_eq!(fresh, ShardState::default());
    assert_eq!(fresh.progress.version, 0);
    let progress = Progress {
        checkpoint: Some(pos(
            "49590338271490256608559692538361571095921575989136588898",
            3,
        )),
        ..Default::default()
    };
    let settled = Settled::default();
    assert_eq!(
        store.commit(&key(), 0, &progress, &settled).await.unwrap(),
        CommitOutcome::Committed { version: 1 }
    );
    // A second writer that read the same (now stale) state loses.
    assert_eq!(
        store.commit(&key(), 0, &progress, &settled).await.unwrap(),
        CommitOutcome::Superseded
    );
    drop(store);
    let reopened = EmbeddedStore::open(&dir).unwrap();
    let state = reopened.load_shard(&key()).await.unwrap();
    assert_eq!(state.progress.version, 1);
    assert_eq!(state.progress.checkpoint, progress.checkpoint);
}

#[tokio::test]
async fn dedup_claims_respect_owner_and_expiry() {
    let dir = tempdir();
    let store = EmbeddedStore::open(&dir).unwrap();
    let now = SystemTime::now();
    let claim = |owner: &str, ttl: u64| DedupClaim {
        key: "order-1".into(),
        owner: owner.into(),
        expires_at: now + Duration::from_secs(ttl),
    };
    let won = store
        .claim_dedup_keys("c", &[claim("a", 60)], now)
        .await
        .unwrap();
    assert_eq!(won, [ClaimOutcome::Won]);
    let again = store
        .claim_dedup_keys("c", &[claim("a", 60)], now)
        .await
        .unwrap();
    assert_eq!(again, [ClaimOutcome::Won], "the same owner keeps its claim");
    let lost = store
        .claim_dedup_keys("c", &[claim("b", 60)], now)
        .await
        .unwrap();
    assert_eq!(lost, [ClaimOutcome::InFlight("a".into())]);
    let later = now + Duration::from_secs(61);
    let taken = store
        .claim_dedup_keys("c", &[claim("b", 120)], later)
        .await
        .unwrap();
    assert_eq!(taken, [ClaimOutcome::Won], "an expired claim is taken over");
}

#[tokio::test]
async fn a_database_of_the_first_schema_gets_the_new_columns() {
    let dir = tempdir();
    let conn = crate::sqlite::open(&dir, "shardline").unwrap();
    conn.execute_batch(
        "CREATE TABLE shard (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
            shard_id TEXT NOT NULL, checkpoint_seq TEXT, checkpoint_sub INTEGER,
            head_seq TEXT, head_sub INTEGER, head_attempts INTEGER, version INTEGER NOT NULL,
            lineage TEXT NOT NULL DEFAULT 'unknown', parents TEXT NOT NULL DEFAULT '[]',
            ended INTEGER NOT NULL DEFAULT 0, children TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (consumer, stream_arn, shard_id));
         CREATE TABLE key_progress (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
            shard_id TEXT NOT NULL, partition_key TEXT NOT NULL, checkpoint_seq TEXT,
            checkpoint_sub INTEGER, head_seq TEXT, head_sub INTEGER, head_attempts INTEGER,
            PRIMARY KEY (consumer, stream_arn, shard_id, partition_key));
         CREATE TABLE sink_progress (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
            shard_id TEXT NOT NULL, destination TEXT NOT NULL, delivered TEXT NOT NULL,
            PRIMARY KEY (consumer, stream_arn, shard_id, destination));
         INSERT INTO shard (consumer, stream_arn, shard_id, checkpoint_seq, checkpoint_sub, version)
            VALUES ('c', 'arn:s', 'shardId-000000000000', '42', 0, 3);",
    )
    .unwrap();
    drop(conn);
    let store = EmbeddedStore::open(&dir).unwrap();
    let state = store.load_shard(&key()).await.unwrap();
    assert_eq!(state.progress.checkpoint, Some(pos("42", 0)));
    assert_eq!(state.progress.version, 3);
    let progress = Progress {
        checkpoint: Some(pos("43", 0)),
        ..Progress::default()
    };
    let outcome = store
        .commit(&key(), 3, &progress, &Settled::default())
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Committed { version: 4 });
}

pub(crate) fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shardline-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

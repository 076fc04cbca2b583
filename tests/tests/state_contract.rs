//! One contract for both state stores: every case runs against the embedded
//! store (SQLite) and the DynamoDB store (moto), with the same assertions.

use std::sync::Arc;

use shardline::state::{
    DynamoDbStore, EmbeddedStore, HeadAttempts, KeyCommit, KeyProgress, ShardKey, StateStore,
};
use shardline::{Position, ShardRef};
use shardline_tests::{Emulators, unique_name};

fn key() -> ShardKey {
    ShardKey {
        consumer: "contract".into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/contract"),
            shard_id: Arc::from("shardId-000000000000"),
        },
    }
}

fn pos(n: u64) -> Position {
    Position::new(
        format!("4959033827149025660855969253836157109592157598{n:010}")
            .parse()
            .unwrap(),
        0,
    )
}

async fn racing_key_commits_lose_no_attempt(store: &dyn StateStore) {
    let read = KeyProgress {
        checkpoint: Some(pos(1)),
        head: None,
    };
    let first_failure = KeyProgress {
        checkpoint: Some(pos(1)),
        head: Some(HeadAttempts {
            position: pos(2),
            attempts: 1,
        }),
    };
    let start = KeyCommit {
        partition_key: "k".into(),
        read: KeyProgress::default(),
        progress: read.clone(),
    };
    assert!(
        store
            .commit_key_progress(&key(), &[start], &[])
            .await
            .unwrap()
            .is_empty()
    );
    let commit = KeyCommit {
        partition_key: "k".into(),
        read: read.clone(),
        progress: first_failure.clone(),
    };
    assert!(
        store
            .commit_key_progress(&key(), &[commit.clone()], &[])
            .await
            .unwrap()
            .is_empty()
    );
    // A second invocation read the same (now stale) progress and failed the same record.
    let superseded = store
        .commit_key_progress(&key(), &[commit], &[])
        .await
        .unwrap();
    assert_eq!(superseded, ["k"], "a stale writer of a key is refused");
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

#[tokio::test]
async fn embedded_racing_key_commits_lose_no_attempt() {
    racing_key_commits_lose_no_attempt(&embedded()).await;
}

#[tokio::test]
async fn dynamodb_racing_key_commits_lose_no_attempt() {
    racing_key_commits_lose_no_attempt(&dynamodb().await).await;
}

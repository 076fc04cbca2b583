//! The whole store: its three roles, and the calls by their names from before
//! the split.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, KeyCommit, Lineage, LineageStore,
    ProgressStore, Settled, ShardState, StateError, Unit, UnitCommit,
};
use crate::progress::Progress;
use crate::quarantine::{QuarantineStore, QuarantinedRecord};

/// Where Shardline keeps its state: [`super::EmbeddedStore`] locally,
/// [`super::DynamoDbStore`] in AWS. It is every store that plays the three
/// roles, [`ProgressStore`] (the engine's), [`LineageStore`] (the parent
/// guard's) and [`QuarantineStore`] (the quarantine commands'); implement
/// those, not this. Both stores keep the same contract
/// (`tests/tests/it/state_contract.rs` runs every case against each).
///
/// Its own methods are the calls by the names they had before the roles were
/// split, kept so code written against them still builds; each is one call of
/// a role.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), shardline::state::StateError> {
/// use std::sync::Arc;
/// use shardline::state::{CommitOutcome, EmbeddedStore, Progress, Settled, ConsumerShard, StateStore};
/// use shardline::{Position, ShardRef};
///
/// let store = EmbeddedStore::open(&std::env::temp_dir().join(format!("doc-state-{}", std::process::id())))?;
/// let key = ConsumerShard {
///     consumer: "orders".into(),
///     shard: ShardRef { stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"), shard_id: Arc::from("shardId-0") },
/// };
/// let read = store.load_shard(&key).await?;
/// let progress = Progress { checkpoint: Some(Position::new("42".parse().unwrap(), 0)), ..Progress::default() };
/// let first = store.commit(&key, read.progress.version, &progress, &Settled::default()).await?;
/// assert!(matches!(first, CommitOutcome::Committed { .. }));
/// // A writer that read the same version is stale now: nothing is written.
/// let stale = store.commit(&key, read.progress.version, &progress, &Settled::default()).await?;
/// assert_eq!(stale, CommitOutcome::Superseded);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait StateStore: ProgressStore + LineageStore + QuarantineStore {
    /// [`ProgressStore::read_shard`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn load_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        self.read_shard(key).await
    }

    /// [`ProgressStore::claim`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read or written.
    async fn claim_dedup_keys(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        self.claim(consumer, claims, now).await
    }

    /// [`ProgressStore::commit_batch`] of the shard alone.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn commit(
        &self,
        key: &ConsumerShard,
        read_version: u64,
        progress: &Progress,
        settled: &Settled,
    ) -> Result<CommitOutcome, StateError> {
        let commit = UnitCommit {
            unit: Unit::Shard,
            read_version,
            progress: progress.clone(),
            settled: settled.clone(),
        };
        let outcomes = self.commit_batch(key, &[commit]).await?;
        Ok(outcomes
            .into_iter()
            .next()
            .unwrap_or(CommitOutcome::Superseded))
    }

    /// [`LineageStore::write_lineage`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn save_lineage(&self, key: &ConsumerShard, lineage: &Lineage) -> Result<(), StateError> {
        self.write_lineage(key, lineage).await
    }

    /// [`LineageStore::write_shard_end`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn mark_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        self.write_shard_end(key, children).await
    }

    /// [`ProgressStore::read_keys`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn load_key_progress(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        self.read_keys(key, partition_keys).await
    }

    /// [`ProgressStore::commit_batch`] of partition keys; returns the keys
    /// another invocation moved first (nothing of theirs is written).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn commit_key_progress(
        &self,
        key: &ConsumerShard,
        commits: &[KeyCommit],
    ) -> Result<Vec<String>, StateError> {
        let commits: Vec<UnitCommit> = commits.iter().cloned().map(UnitCommit::from).collect();
        let outcomes = self.commit_batch(key, &commits).await?;
        Ok(commits
            .into_iter()
            .zip(outcomes)
            .filter(|(_, outcome)| *outcome == CommitOutcome::Superseded)
            .filter_map(|(commit, _)| commit.unit.partition_key().map(str::to_owned))
            .collect())
    }

    /// [`QuarantineStore::list_quarantined`].
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        self.list_quarantined(consumer).await
    }
}

impl<T: ProgressStore + LineageStore + QuarantineStore + ?Sized> StateStore for T {}

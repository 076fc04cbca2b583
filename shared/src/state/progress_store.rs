//! What the engine asks of a store for one batch: read the units' progress,
//! claim dedup keys, commit the batch's outcome.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, ShardState, StateError, UnitCommit,
};
use crate::progress::Progress;

/// A batch's progress: read once, dedup keys claimed once, committed once,
/// whatever the batch size (per-key reads and commits batched by 100 keys).
/// The engine's side of the state, as the KCL's `Checkpointer` is.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), shardline::state::StateError> {
/// use std::sync::Arc;
/// use shardline::state::{CommitOutcome, ConsumerShard, EmbeddedStore, Progress, ProgressStore, Unit, UnitCommit};
/// use shardline::{Position, ShardRef};
///
/// let store = EmbeddedStore::open(&std::env::temp_dir().join(format!("doc-progress-{}", std::process::id())))?;
/// let key = ConsumerShard {
///     consumer: "orders".into(),
///     shard: ShardRef { stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"), shard_id: Arc::from("shardId-0") },
/// };
/// let read = store.read_shard(&key).await?;
/// let commit = UnitCommit {
///     unit: Unit::Shard,
///     read_version: read.progress.version,
///     progress: Progress { checkpoint: Some(Position::new("42".parse().unwrap(), 0)), ..Progress::default() },
///     ..UnitCommit::default()
/// };
/// let first = store.commit_batch(&key, std::slice::from_ref(&commit)).await?;
/// assert!(matches!(first[..], [CommitOutcome::Committed { .. }]));
/// // A writer that read the same version is stale now: nothing is written.
/// let stale = store.commit_batch(&key, &[commit]).await?;
/// assert_eq!(stale, [CommitOutcome::Superseded]);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ProgressStore: Send + Sync {
    /// Reads one shard's state (one call per batch).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn read_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError>;

    /// Reads the progress of `partition_keys` of one shard (batched: at most
    /// one request per 100 keys). Keys with no progress are left out.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn read_keys(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError>;

    /// Claims dedup keys for records about to be handled, all in one call: each
    /// claim won is in flight until its `expires_at` (see [`DedupClaim`]). A key
    /// held by another owner and not expired at `now` is lost
    /// ([`ClaimOutcome::HeldBy`] when that claim is done,
    /// [`ClaimOutcome::InFlight`] when not); an expired one is taken over.
    /// Returns one outcome per claim, in order. The keys of one call are
    /// distinct (the engine settles repeats within a batch itself).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read or written.
    async fn claim(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError>;

    /// Writes one batch's outcome: each unit's new progress with what it
    /// settled, if that unit is still at its `read_version` (otherwise
    /// [`CommitOutcome::Superseded`], and nothing of that unit is written).
    /// Returns one outcome per commit, in order.
    ///
    /// A unit's progress, quarantined records and released claims land
    /// together or not at all; a record already in the quarantine is kept as
    /// it is (its replay claim too); claims marked done are written whatever
    /// the fence says. A unit's `settled` holds at most
    /// [`super::MAX_QUARANTINED_PER_COMMIT`] records and
    /// [`super::MAX_QUARANTINED_BYTES_PER_COMMIT`] of payload beyond its first record.
    /// A key's progress expires after the store's key progress TTL. Requests:
    /// one for the shard alone (an update when it settled nothing, else a
    /// transaction), about one per 100 items for keys.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError>;
}

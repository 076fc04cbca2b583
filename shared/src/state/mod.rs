//! State: checkpoints, attempt counts, dedup claims and the quarantine, behind
//! one trait so the engine runs the same on the embedded store (local runs) and
//! on DynamoDB (in AWS).
//!
//! The trait is shaped for few calls per batch: the engine calls
//! [`StateStore::load_shard`] once, [`StateStore::claim_dedup_keys`] once when
//! dedup is on, and [`StateStore::commit`] at most once, whatever the batch size.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;

use std::time::SystemTime;

use async_trait::async_trait;

use crate::handler::BoxError;
use crate::quarantine::QuarantinedRecord;
use crate::record::{Position, ShardRef};

#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;

/// Which consumer's state, for which shard. One store can hold many consumers
/// (functions) and many streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardKey {
    /// The consumer's name (by default the function's name).
    pub consumer: String,
    /// The stream and shard.
    pub shard: ShardRef,
}

/// A record that has failed and is at the head of its shard, with the number of
/// attempts made on it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadAttempts {
    /// The failing record.
    pub position: Position,
    /// Attempts made, across invocations.
    pub attempts: u32,
}

/// What is known of a shard's parents (after a split or a merge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lineage {
    /// Not looked up yet (the shard's first batch).
    #[default]
    Unknown,
    /// The parents are known, but not all were seen finished.
    Pending {
        /// Parent shard ids (one after a split, two after a merge).
        parents: Vec<String>,
    },
    /// Every parent is finished (or there are none): the shard may be processed.
    Cleared {
        /// Parent shard ids, for the record.
        parents: Vec<String>,
    },
}

/// Whether a shard still takes records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ShardStatus {
    /// Open, or not known to be closed.
    #[default]
    Active,
    /// Closed and read to its end: its children may go on.
    Ended {
        /// Its child shard ids.
        children: Vec<String>,
    },
}

/// What the store knows of one shard for one consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardState {
    /// The last position done (processed, skipped or quarantined); `None` before
    /// the first commit.
    pub checkpoint: Option<Position>,
    /// The record that last failed at the head of the shard, if any.
    pub head: Option<HeadAttempts>,
    /// Bumped by every commit; a commit names the version it read, so a stale
    /// writer cannot overwrite a newer one. 0 when nothing is stored.
    pub version: u64,
    /// What is known of the shard's parents.
    pub lineage: Lineage,
    /// Open, or read to its end.
    pub status: ShardStatus,
}

/// Progress of one partition key of a shard (the ParallelizationFactor mode,
/// where batches of one shard run at once, ordered per key only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyProgress {
    /// The last position of this key done.
    pub checkpoint: Option<Position>,
    /// This key's failing record, if any.
    pub head: Option<HeadAttempts>,
}

/// One key's change from one batch, written only if the key is still as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCommit {
    /// The partition key.
    pub partition_key: String,
    /// The progress the batch read (the fence).
    pub read: KeyProgress,
    /// The progress to write.
    pub progress: KeyProgress,
}

/// What one batch changes for one shard, written in one go.
#[derive(Debug, Clone, Default)]
pub struct ShardCommit {
    /// The new checkpoint (never below the stored one).
    pub checkpoint: Option<Position>,
    /// The failing record at the head after this batch, if any.
    pub head: Option<HeadAttempts>,
    /// Records quarantined by this batch, to store before the checkpoint moves past them.
    pub quarantine: Vec<QuarantinedRecord>,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written; the shard is now at this version.
    Committed {
        /// The new version.
        version: u64,
    },
    /// Another writer committed since this batch read the shard (this invocation
    /// is stale): nothing was written.
    Superseded,
}

/// A claim on a dedup key, made before the record is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupClaim {
    /// The key from the payload.
    pub key: String,
    /// The record claiming it (`shard/sequence/subsequence`), so a retry of the
    /// same record finds its own claim.
    pub owner: String,
    /// When the claim lapses.
    pub expires_at: SystemTime,
}

/// Whether a dedup claim was won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this record's (newly, or from an earlier attempt of it).
    Won,
    /// Another record holds the key: this one is a duplicate.
    HeldBy(String),
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The embedded SQLite store failed.
    #[error("embedded state store at {path}: {source}")]
    Embedded {
        /// The database file.
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Stored state could not be read back.
    #[error("stored state for {what} is corrupt: {detail}")]
    Corrupt {
        /// Which item.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A remote backend failed.
    #[error("{backend} state store failed to {operation}: {source}")]
    Backend {
        /// The backend, such as `DynamoDB`.
        backend: &'static str,
        /// What the store was doing.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// Where Shardline keeps its state.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Reads one shard's state (one call per batch).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn load_shard(&self, key: &ShardKey) -> Result<ShardState, StateError>;

    /// Claims dedup keys for records about to be handled, all in one call. A key
    /// held by another owner and not expired at `now` is lost; an expired one is
    /// taken over. Returns one outcome per claim, in order. The keys of one call
    /// are distinct (the engine settles repeats within a batch itself).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read or written.
    async fn claim_dedup_keys(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError>;

    /// Writes one batch's changes if the shard is still at `read.version`
    /// (otherwise [`CommitOutcome::Superseded`] and nothing is written).
    /// Quarantined records are stored no later than the checkpoint that passes them.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn commit(
        &self,
        key: &ShardKey,
        read: &ShardState,
        commit: &ShardCommit,
    ) -> Result<CommitOutcome, StateError>;

    /// Records what is known of a shard's parents. Lineage only moves forward
    /// (unknown, pending, cleared); it does not change the shard's version.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn save_lineage(&self, key: &ShardKey, lineage: &Lineage) -> Result<(), StateError>;

    /// Records that a shard was read to its end, with its children.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn mark_shard_end(&self, key: &ShardKey, children: &[String]) -> Result<(), StateError>;

    /// Reads the progress of `partition_keys` of one shard (batched: at most
    /// one request per 100 keys). Keys with no progress are left out.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn load_key_progress(
        &self,
        key: &ShardKey,
        partition_keys: &[String],
    ) -> Result<std::collections::HashMap<String, KeyProgress>, StateError>;

    /// Writes the quarantined records, then each key's progress if that key is
    /// still as it was read (batched: about one request per 100 keys). Returns
    /// the keys another invocation moved first (their changes are not written).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn commit_key_progress(
        &self,
        key: &ShardKey,
        commits: &[KeyCommit],
        quarantine: &[QuarantinedRecord],
    ) -> Result<Vec<String>, StateError>;

    /// Reads what each of `destinations` has received of a shard's records (an
    /// opaque text per destination, written by [`StateStore::save_sink_progress`];
    /// destinations with nothing stored are left out). One request for up to 100.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn load_sink_progress(
        &self,
        key: &ShardKey,
        destinations: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StateError>;

    /// Writes what each destination has received (batched, unconditional: a
    /// destination's progress only grows while a batch is retried).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn save_sink_progress(
        &self,
        key: &ShardKey,
        progress: &[(String, String)],
    ) -> Result<(), StateError>;

    /// Every quarantined record of `consumer`, oldest first.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError>;
}

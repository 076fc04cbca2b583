//! State: checkpoints, attempt counts, dedup claims, lineage and the
//! quarantine, so that the engine runs the same on the embedded store (local
//! runs) and on DynamoDB (in AWS).
//!
//! A store plays three roles, a trait each, split by who calls it (as the
//! KCL splits its checkpointer, lease refresher and shard detector):
//!
//! | role | caller | calls |
//! |---|---|---|
//! | [`ProgressStore`] (`progress_store.rs`) | the engine | read the shard (and its keys), claim dedup keys, commit the batch |
//! | [`LineageStore`] (`lineage_store.rs`) | the parent guard | a shard's lineage, its end |
//! | [`QuarantineStore`] (`quarantine/store.rs`) | the quarantine commands | list, claim for replay, requeue, remove |
//!
//! [`StateStore`] (`store.rs`) is every store that plays all three, and keeps
//! the calls' names from before the split. [`StoreLayer`] (`layer.rs`) wraps
//! a store and changes only the calls it overrides. The progress is kept per
//! [`Unit`] (`unit.rs`): the shard, or a partition key; one [`UnitCommit`]
//! per unit a batch changed, all in one [`ProgressStore::commit_batch`].
//!
//! The roles are shaped for few calls per batch: the engine reads the shard
//! once, claims dedup keys once when dedup is on, and commits at most once,
//! whatever the batch size (keys' reads and commits batched by 100 keys). A
//! fan-out's delivery progress lives in the same [`Progress`], so it costs no
//! request of its own.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
mod layer;
mod lineage_store;
mod progress_store;
mod store;
mod unit;
/// Progress under its old path: it is [`crate::progress`].
pub use crate::progress;
/// The quarantine store's old path: it is [`crate::quarantine::QuarantineStore`].
pub mod quarantine {
    pub use crate::quarantine::QuarantineStore;
}

use std::time::SystemTime;

use crate::error::BoxError;
use crate::quarantine::QuarantinedRecord;
use crate::record::ShardRef;

pub use crate::progress::{
    DEFAULT_KEY_PROGRESS_TTL, Delivered, HeadAttempts, PositionRanges, Progress, ProgressMode,
};
pub use crate::quarantine::QuarantineStore;
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoDbStore;
pub use embedded::EmbeddedStore;
pub use layer::StoreLayer;
pub use lineage_store::LineageStore;
pub use progress_store::ProgressStore;
pub use store::StateStore;
pub use unit::{Unit, UnitCommit};

/// Which consumer's state, for which shard. One store can hold many consumers
/// (functions) and many streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerShard {
    /// The consumer's name (by default the function's name).
    pub consumer: String,
    /// The stream and shard.
    pub shard: ShardRef,
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
    /// The shard's progress (in per-key mode, only the guard's: how far every
    /// record of the shard is known done).
    pub progress: Progress,
    /// What is known of the shard's parents.
    pub lineage: Lineage,
    /// Open, or read to its end.
    pub status: ShardStatus,
}

/// One partition key's change from one batch, for
/// [`StateStore::commit_key_progress`]: a [`UnitCommit`] of [`Unit::Key`].
#[derive(Debug, Clone, Default)]
pub struct KeyCommit {
    /// The partition key.
    pub partition_key: String,
    /// The version the batch read (0: nothing was stored): the fence.
    pub read_version: u64,
    /// The progress to write (its `version` is ignored: the store bumps it).
    pub progress: Progress,
    /// The key's records quarantined by this batch, and their dedup claims
    /// given back: written with the progress, under the same fence.
    pub settled: Settled,
}

/// The most records one unit's commit quarantines (a shard in checkpoint
/// mode, a key in per-key mode): a commit is one all-or-nothing write, and
/// DynamoDB's transactions hold 100 items and 4 MB. A batch that quarantines
/// more leaves the rest for Lambda's retry, which quarantines them in turn.
pub const MAX_QUARANTINED_PER_COMMIT: usize = 32;

/// The most payload bytes one unit's commit quarantines (a first record
/// larger than this goes alone).
pub const MAX_QUARANTINED_BYTES_PER_COMMIT: usize = 3 * 1024 * 1024;

/// What a batch settled outside the normal path, written with its progress
/// under the same fence: all of it lands with the progress, or none of it.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Records quarantined by this batch, stored no later than the progress
    /// that passes them.
    pub quarantine: Vec<QuarantinedRecord>,
    /// Dedup claims of quarantined records, given back so that a replay of the
    /// record is not skipped as a duplicate of itself. Released only while the
    /// claim still names this owner.
    pub released: Vec<DedupClaim>,
    /// Dedup claims of records the batch handled, now done: a later copy of
    /// one is skipped as a duplicate until `expires_at`. Written whatever the
    /// fence says (the record's effect landed either way), in the commit's
    /// request when they fit.
    pub done: Vec<DedupClaim>,
}

impl Settled {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.quarantine.is_empty() && self.released.is_empty() && self.done.is_empty()
    }
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Written; the unit is now at this version.
    Committed {
        /// The new version.
        version: u64,
    },
    /// Another writer committed since this batch read the unit (this invocation
    /// is stale): nothing was written.
    Superseded,
}

/// A claim on a dedup key, made before the record is handled.
///
/// A claim has two lives. Made by [`ProgressStore::claim`] it is *in
/// flight*: a lease for as long as the invocation may run, so that a copy of
/// the record met meanwhile waits for Lambda's retry instead of being skipped
/// (the first copy may still fail, time out, or be discarded by Lambda).
/// Written again by the commit ([`Settled::done`]) it is *done*: a later copy
/// is a duplicate until the dedup window ends.
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
    /// Another record holds the key and its effect landed: this one is a
    /// duplicate.
    HeldBy(String),
    /// Another record holds the key and has not finished (its claim is in
    /// flight): this one waits for Lambda's retry.
    InFlight(String),
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// DynamoDB failed.
    #[cfg(feature = "dynamodb")]
    #[error("DynamoDB state store: {0}")]
    DynamoDb(#[from] crate::aws::dynamodb::DynamoError),
    /// A commit holds more than one all-or-nothing write can take (the engine
    /// keeps within [`MAX_QUARANTINED_PER_COMMIT`]; a direct caller may not).
    #[error("the commit of {unit} is too large for one write: {detail}")]
    TooLarge {
        /// The shard or key committed.
        unit: String,
        /// What is over which limit.
        detail: String,
    },
    /// Another remote backend failed.
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

impl StateError {
    /// Whether trying again may succeed (a throttled or unavailable remote
    /// store); a corrupt item or a local store error is not.
    pub fn is_transient(&self) -> bool {
        match self {
            #[cfg(feature = "dynamodb")]
            StateError::DynamoDb(error) => error.is_transient(),
            _ => false,
        }
    }
}

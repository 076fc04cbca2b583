//! The unit a batch's progress is kept for: the shard, or one partition key of
//! it; and one unit's commit.

use std::fmt;

use super::{KeyCommit, Settled};
use crate::progress::Progress;

/// What keeps order and progress: the whole shard
/// ([`crate::progress::ProgressMode::Shard`]) or one partition key of it
/// ([`crate::progress::ProgressMode::PartitionKey`]). `K` is the key's type:
/// `String` when kept, `&str` when borrowed from a record.
///
/// ```
/// use shardline::state::Unit;
///
/// let key: Unit<&str> = Unit::Key("order-7");
/// assert_eq!(key.to_string(), "key order-7");
/// assert_eq!(key.into_owned(), Unit::Key(String::from("order-7")));
/// assert_eq!(Unit::<String>::Shard.to_string(), "the shard");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit<K = String> {
    /// The whole shard.
    #[default]
    Shard,
    /// One partition key of the shard.
    Key(K),
}

impl<K: AsRef<str>> Unit<K> {
    /// The same unit, its key borrowed.
    pub fn as_ref(&self) -> Unit<&str> {
        match self {
            Unit::Shard => Unit::Shard,
            Unit::Key(key) => Unit::Key(key.as_ref()),
        }
    }

    /// The same unit, its key owned.
    pub fn into_owned(self) -> Unit {
        match self {
            Unit::Shard => Unit::Shard,
            Unit::Key(key) => Unit::Key(key.as_ref().to_owned()),
        }
    }

    /// The partition key, or `None` for the shard.
    pub fn partition_key(&self) -> Option<&str> {
        match self {
            Unit::Shard => None,
            Unit::Key(key) => Some(key.as_ref()),
        }
    }
}

impl<K: AsRef<str>> fmt::Display for Unit<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Shard => f.write_str("the shard"),
            Unit::Key(key) => write!(f, "key {}", key.as_ref()),
        }
    }
}

/// One unit's change from one batch: its new progress, written only if the
/// unit is still at the version the batch read, together with what the batch
/// settled of the unit's records (all of it, or none of it).
#[derive(Debug, Clone, Default)]
pub struct UnitCommit {
    /// The shard, or a partition key.
    pub unit: Unit,
    /// The version the batch read (0: nothing was stored): the fence.
    pub read_version: u64,
    /// The progress to write (its `version` is ignored: the store bumps it).
    pub progress: Progress,
    /// The unit's records quarantined by this batch, their dedup claims given
    /// back, and the claims of the records it handled, now done.
    pub settled: Settled,
}

impl From<KeyCommit> for UnitCommit {
    fn from(commit: KeyCommit) -> Self {
        UnitCommit {
            unit: Unit::Key(commit.partition_key),
            read_version: commit.read_version,
            progress: commit.progress,
            settled: commit.settled,
        }
    }
}

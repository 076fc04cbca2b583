//! The parent-shard-completion guard.
//!
//! After a split or a merge, a child shard's records continue the keys of its
//! parent(s). If the child is processed before a parent is finished, records of
//! one key are applied out of order. AWS documents no such guarantee for the
//! Lambda event source mapping, so Shardline checks, as the KCL does in its
//! `BlockOnParentShardTask`:
//!
//! - on the first batch of a shard, its parents are looked up (ListShards) and
//!   kept in the shard's state ([`Lineage`]). A shard ListShards does not list
//!   yet (it lags a reshard) is held, never taken for a shard without parents;
//! - a parent is finished if its state says so, if it has expired from the
//!   stream, or if its own parents are finished and every record after its
//!   checkpoint is done and the shard is closed (then that is recorded). In
//!   per-key mode, where no batch knows the shard's checkpoint, the guard reads
//!   the parent and checks each record against its key's progress, keeping how
//!   far it got as the parent's checkpoint;
//! - a read goes on where the last one stopped ([`TailCursor`]), not from the
//!   checkpoint again: Kinesis answers empty pages before a shard's end (and
//!   across gaps in time), which no record position can skip, so a long empty
//!   tail is read once, a bounded number of pages a poll, instead of again
//!   from the checkpoint on every poll (and never to its end);
//! - until every parent is finished, the child waits inside the invocation,
//!   polling, bounded by the remaining time; then the batch is reported failed
//!   (Lambda retries it later) with a log line naming the parent and how far it is;
//! - once cleared, later batches of the shard cost nothing more.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use shardline::guard::{ListedShard, ParentGuard, ShardDirectory, Tail, TailEnd, Verdict};
//! use shardline::state::{EmbeddedStore, ProgressMode, ConsumerShard, StateStore};
//! use shardline::{Deadline, Position, ShardRef};
//!
//! /// A stream whose only shard has no parents.
//! struct OneShard;
//!
//! #[async_trait]
//! impl ShardDirectory for OneShard {
//!     async fn list_shards(&self, _: &str) -> Result<Vec<ListedShard>, shardline::BoxError> {
//!         Ok(vec![ListedShard { shard_id: "shardId-0".into(), parents: vec![] }])
//!     }
//!     async fn read_after(&self, _: &ShardRef, _: Option<&Position>, _: usize)
//!         -> Result<Tail, shardline::BoxError> {
//!         Ok(Tail { records: vec![], end: TailEnd::Open, resume: None })
//!     }
//! }
//!
//! let store = EmbeddedStore::open(&std::env::temp_dir().join("shardline-doc-guard")).unwrap();
//! let key = ConsumerShard {
//!     consumer: format!("doc-{}", std::process::id()),
//!     shard: ShardRef { stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"), shard_id: Arc::from("shardId-0") },
//! };
//! let state = store.load_shard(&key).await.unwrap();
//! let guard = ParentGuard::new(Arc::new(OneShard));
//! let verdict = guard
//!     .check(&store, &key, &state, ProgressMode::Shard, Deadline::after(Duration::from_secs(5)), Duration::ZERO)
//!     .await
//!     .unwrap();
//! assert_eq!(verdict, Verdict::Clear);
//! # }
//! ```

#[cfg(feature = "kinesis")]
pub mod kinesis;
mod parent;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BoxError;
use crate::record::{Position, SequenceNumber, ShardRef};
use crate::retry::{Backoff, Limits, Step, Stopped};
use crate::state::{ConsumerShard, Lineage, ProgressMode, ShardState, StateError, StateStore};
use crate::time::Deadline;

/// A shard as the stream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShard {
    /// The shard id.
    pub shard_id: String,
    /// Its parents: one after a split, two after a merge (`ParentShardId`,
    /// `AdjacentParentShardId`), none for an original shard.
    pub parents: Vec<String>,
}

/// One Kinesis record of a shard's tail, as the guard needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRecord {
    /// Its sequence number.
    pub sequence: SequenceNumber,
    /// The subsequence number of its last user record (0 for a plain record).
    pub last_subsequence: u64,
    /// Its partition key (for a KPL aggregate, the aggregate's: what Lambda routes by).
    pub partition_key: String,
}

impl TailRecord {
    /// The position of its last user record: done once this is.
    pub fn last(&self) -> Position {
        Position::new(self.sequence.clone(), self.last_subsequence)
    }
}

/// How a read of a shard's tail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEnd {
    /// The shard is closed and read to its end (null next iterator).
    Ended {
        /// The child shards Kinesis named.
        children: Vec<String>,
    },
    /// The shard is open and read up to its latest record.
    Open,
    /// More records may follow: the read stopped at its limit.
    More,
}

/// What reading a shard after a position found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Records after the position, in order (a KPL aggregate holding the
    /// position is there if user records follow it inside the aggregate).
    pub records: Vec<TailRecord>,
    /// How the read ended.
    pub end: TailEnd,
    /// Where to read on from, past every page this read took, empty ones
    /// included (with [`TailEnd::More`] or [`TailEnd::Open`]); `None` when the
    /// shard ended or the directory cannot resume a read.
    pub resume: Option<TailCursor>,
}

/// Where a read of a shard's tail stopped, for [`ShardDirectory::read_on`]:
/// for Kinesis, the next shard iterator (good for 5 minutes after it was
/// issued, and for as many reads as that allows).
///
/// Kinesis may answer empty pages well before a shard's end; a record
/// position cannot say how far past them a reader got, a cursor can.
#[derive(Clone, PartialEq, Eq)]
pub struct TailCursor(pub String);

impl std::fmt::Debug for TailCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shard iterators are long opaque tokens: their length is enough in a log.
        write!(f, "TailCursor({} bytes)", self.0.len())
    }
}

/// Where the guard learns about shards: the stream's shard list and the tail of
/// a shard. [`kinesis::KinesisShards`] reads them from Kinesis.
#[async_trait]
pub trait ShardDirectory: Send + Sync {
    /// Every shard the stream still lists (closed ones included until they expire).
    ///
    /// # Errors
    /// A boxed service error.
    async fn list_shards(&self, stream_arn: &str) -> Result<Vec<ListedShard>, BoxError>;

    /// At most about `max_records` records of `shard` after `after` (from its
    /// start when `None`).
    ///
    /// # Errors
    /// A boxed service error.
    async fn read_after(
        &self,
        shard: &ShardRef,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError>;

    /// As [`ShardDirectory::read_after`], but from `cursor`, where an earlier
    /// read stopped (its [`Tail::resume`]) or started; records at or before
    /// `after` are left out. By default, a read from `after` (for a directory
    /// that never hands out cursors).
    ///
    /// # Errors
    /// A boxed service error, also when the cursor has expired: the guard then
    /// reads from `after`.
    async fn read_on(
        &self,
        shard: &ShardRef,
        cursor: &TailCursor,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let _ = cursor;
        self.read_after(shard, after, max_records).await
    }
}

/// Why the guard could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// Shardline's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Listing or reading shards failed.
    #[error("cannot check the parents of {shard_id}: {source}")]
    Directory {
        /// The shard being checked.
        shard_id: String,
        /// The service error.
        #[source]
        source: BoxError,
    },
}

/// The guard's verdict for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Every parent is finished: process the batch.
    Clear,
    /// A parent is not finished (or the shard's parents are not known yet) and
    /// the invocation ran out of time to wait.
    Blocked {
        /// The shard holding the child back (the child itself while ListShards
        /// does not list it).
        waiting_for: String,
        /// How far it is (for the log line).
        detail: String,
    },
}

/// What one poll of the guard found.
enum Poll {
    /// Every parent is finished.
    Clear,
    /// One is not (or the parents are not known yet).
    Waiting(Waiting),
}

/// What a poll waits for, carried to the next poll.
struct Waiting {
    /// The parents, once known.
    parents: Option<Vec<String>>,
    /// The shard holding the child back.
    waiting_for: String,
    /// How far it is.
    detail: String,
}

/// Holds a child shard back until its parents are finished.
pub struct ParentGuard {
    directory: Arc<dyn ShardDirectory>,
    poll: Backoff,
    /// Where the last read of each parent stopped, between polls and between
    /// invocations of a warm sandbox.
    marks: parent::ReadMarks,
}

impl std::fmt::Debug for ParentGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentGuard")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl ParentGuard {
    /// A guard reading shards from `directory`, polling every 500 ms at first,
    /// backing off to 5 s.
    pub fn new(directory: Arc<dyn ShardDirectory>) -> Self {
        ParentGuard {
            directory,
            poll: Backoff::fixed(Duration::from_millis(500), Duration::from_secs(5)),
            marks: parent::ReadMarks::default(),
        }
    }

    /// Sets the polling interval: the first wait and the longest.
    pub fn with_poll(mut self, first: Duration, max: Duration) -> Self {
        self.poll = Backoff::fixed(first, max);
        self
    }

    /// Decides whether the shard of `key` (whose state is `state`) may be
    /// processed, waiting for its parents while the deadline allows (keeping
    /// `reserve` back). `mode` says where progress is kept.
    ///
    /// # Errors
    /// [`GuardError`] when the state or the shard directory fails.
    pub async fn check(
        &self,
        store: &dyn StateStore,
        key: &ConsumerShard,
        state: &ShardState,
        mode: ProgressMode,
        deadline: Deadline,
        reserve: Duration,
    ) -> Result<Verdict, GuardError> {
        let parents = match &state.lineage {
            Lineage::Cleared { .. } => return Ok(Verdict::Clear),
            Lineage::Pending { parents } => Some(parents.clone()),
            Lineage::Unknown => None,
        };
        let checker = parent::Checker {
            directory: &*self.directory,
            store,
            consumer: &key.consumer,
            stream_arn: &key.shard.stream_arn,
            mode,
            marks: &self.marks,
        };
        let limits = Limits {
            tries: u32::MAX,
            deadline,
            margin: reserve,
        };
        // Until the first poll, the child waits for itself.
        let first = Waiting {
            parents,
            waiting_for: key.shard.shard_id.to_string(),
            detail: "not polled yet".into(),
        };
        let polled = self
            .poll
            .drive(
                limits,
                first,
                |waiting| self.poll_once(&checker, store, key, waiting.parents),
                |polled| match polled? {
                    Poll::Clear => Ok(Step::Done(Verdict::Clear)),
                    Poll::Waiting(waiting) => {
                        tracing::debug!(shard = %key.shard.shard_id, waiting_for = %waiting.waiting_for, detail = %waiting.detail, "waiting for parent shard");
                        Ok(Step::Again(waiting))
                    }
                },
                |waiting, _| Verdict::Blocked {
                    waiting_for: waiting.waiting_for,
                    detail: waiting.detail,
                },
            )
            .await;
        match polled {
            Ok(verdict) | Err(Stopped::Exhausted(verdict)) => Ok(verdict),
            Err(Stopped::GaveUp(error)) => Err(error),
        }
    }

    /// One look at the parents of the shard of `key` (`None`: not known yet):
    /// clear (recorded in its state), or what it waits for.
    async fn poll_once(
        &self,
        checker: &parent::Checker<'_>,
        store: &dyn StateStore,
        key: &ConsumerShard,
        mut parents: Option<Vec<String>>,
    ) -> Result<Poll, GuardError> {
        let listed = checker.list().await?;
        if parents.is_none() {
            parents = self.learn_parents(store, key, &listed).await?;
        }
        let blocker = match &parents {
            Some(parents) if parents.is_empty() => return Ok(Poll::Clear),
            Some(parents) => checker.first_unfinished(parents, &listed).await?,
            None => Some((
                key.shard.shard_id.to_string(),
                format!(
                    "shard {} is not listed by ListShards of {} yet, so its parents are not known",
                    key.shard.shard_id, key.shard.stream_arn
                ),
            )),
        };
        let Some((waiting_for, detail)) = blocker else {
            let parents = parents.unwrap_or_default();
            tracing::info!(shard = %key.shard.shard_id, parents = ?parents, "every parent shard is finished");
            store
                .save_lineage(key, &Lineage::Cleared { parents })
                .await?;
            return Ok(Poll::Clear);
        };
        Ok(Poll::Waiting(Waiting {
            parents,
            waiting_for,
            detail,
        }))
    }

    /// The parents of the shard of `key` from `listed`, recorded in its state;
    /// `None` when the shard is not listed (yet).
    async fn learn_parents(
        &self,
        store: &dyn StateStore,
        key: &ConsumerShard,
        listed: &[ListedShard],
    ) -> Result<Option<Vec<String>>, GuardError> {
        let Some(shard) = listed.iter().find(|s| *s.shard_id == *key.shard.shard_id) else {
            return Ok(None);
        };
        let lineage = if shard.parents.is_empty() {
            Lineage::Cleared { parents: vec![] }
        } else {
            Lineage::Pending {
                parents: shard.parents.clone(),
            }
        };
        store.write_lineage(key, &lineage).await?;
        Ok(Some(shard.parents.clone()))
    }
}

#[cfg(test)]
mod tests;

//! The parent-shard-completion guard.
//!
//! After a split or a merge, a child shard's records continue the keys of its
//! parent(s). If the child is processed before a parent is finished, records of
//! one key are applied out of order. AWS documents no such guarantee for the
//! Lambda event source mapping, so Shardline checks, as the KCL does in its
//! `BlockOnParentShardTask`:
//!
//! - on the first batch of a shard, its parents are looked up (ListShards) and
//!   kept in the shard's state ([`Lineage`]);
//! - a parent is finished if its state says it was read to its end, if it has
//!   expired from the stream, or if reading after its checkpoint finds no
//!   records and a closed shard (then its end is recorded);
//! - until every parent is finished, the child waits inside the invocation,
//!   polling, bounded by the remaining time; then the batch is reported failed
//!   (Lambda retries it later) with a log line naming the parent and how far it is;
//! - once cleared, later batches of the shard cost nothing more.

#[cfg(feature = "kinesis")]
pub mod kinesis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::Deadline;
use crate::handler::BoxError;
use crate::record::{Position, SequenceNumber, ShardRef};
use crate::state::{Lineage, ShardKey, ShardState, ShardStatus, StateError, StateStore};

/// A shard as the stream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShard {
    /// The shard id.
    pub shard_id: String,
    /// Its parents: one after a split, two after a merge (`ParentShardId`,
    /// `AdjacentParentShardId`), none for an original shard.
    pub parents: Vec<String>,
}

/// What reading a closed or open shard after a position found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardTail {
    /// No records after the position and the shard is closed (null next iterator).
    Ended {
        /// The child shards Kinesis named.
        children: Vec<String>,
    },
    /// Records are there after the position, the first at this sequence number.
    Pending {
        /// The first unprocessed record.
        first: SequenceNumber,
    },
    /// No records now, but the shard is still open.
    Open,
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

    /// What lies in `shard` after `after` (from its start when `None`).
    ///
    /// # Errors
    /// A boxed service error.
    async fn tail_after(
        &self,
        shard: &ShardRef,
        after: Option<&Position>,
    ) -> Result<ShardTail, BoxError>;
}

/// Why the guard could not decide.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Shardline's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Listing or reading shards failed.
    #[error("cannot check the parents of {shard_id}: {source}")]
    Directory {
        /// The child shard.
        shard_id: String,
        /// The service error.
        #[source]
        source: BoxError,
    },
}

/// The guard's verdict for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every parent is finished: process the batch.
    Clear,
    /// A parent is not finished and the invocation ran out of time to wait.
    Blocked {
        /// The parent holding the child back.
        parent: String,
        /// How far it is (for the log line).
        detail: String,
    },
}

/// Holds a child shard back until its parents are finished.
pub struct ParentGuard {
    directory: Arc<dyn ShardDirectory>,
    first_poll: Duration,
    max_poll: Duration,
}

impl std::fmt::Debug for ParentGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentGuard")
            .field("first_poll", &self.first_poll)
            .field("max_poll", &self.max_poll)
            .finish_non_exhaustive()
    }
}

impl ParentGuard {
    /// A guard reading shards from `directory`, polling every 500 ms at first,
    /// backing off to 5 s.
    pub fn new(directory: Arc<dyn ShardDirectory>) -> Self {
        ParentGuard {
            directory,
            first_poll: Duration::from_millis(500),
            max_poll: Duration::from_secs(5),
        }
    }

    /// Sets the polling interval: the first wait and the longest.
    pub fn with_poll(mut self, first: Duration, max: Duration) -> Self {
        self.first_poll = first;
        self.max_poll = max.max(first);
        self
    }

    /// Decides whether the shard of `key` may be processed, waiting for its
    /// parents while the deadline allows (keeping `reserve` back).
    ///
    /// # Errors
    /// [`GuardError`] when the state or the shard directory fails.
    pub async fn check(
        &self,
        store: &dyn StateStore,
        key: &ShardKey,
        state: &ShardState,
        deadline: Deadline,
        reserve: Duration,
    ) -> Result<Verdict, GuardError> {
        let directory_error = |source| GuardError::Directory {
            shard_id: key.shard.shard_id.to_string(),
            source,
        };
        // The listing that found the parents also serves the first check of them.
        let (parents, mut listing) = match &state.lineage {
            Lineage::Cleared { .. } => return Ok(Verdict::Clear),
            Lineage::Pending { parents } => (parents.clone(), None),
            Lineage::Unknown => {
                let listed = self
                    .directory
                    .list_shards(&key.shard.stream_arn)
                    .await
                    .map_err(directory_error)?;
                let parents = listed
                    .iter()
                    .find(|s| *s.shard_id == *key.shard.shard_id)
                    .map(|s| s.parents.clone())
                    .unwrap_or_default();
                if parents.is_empty() {
                    store
                        .save_lineage(key, &Lineage::Cleared { parents: vec![] })
                        .await?;
                    return Ok(Verdict::Clear);
                }
                store
                    .save_lineage(
                        key,
                        &Lineage::Pending {
                            parents: parents.clone(),
                        },
                    )
                    .await?;
                (parents, Some(listed))
            }
        };

        let mut poll = self.first_poll;
        let mut waiting: Vec<String> = parents.clone();
        loop {
            let mut blocker = None;
            let listed = match listing.take() {
                Some(listed) => listed,
                None => self
                    .directory
                    .list_shards(&key.shard.stream_arn)
                    .await
                    .map_err(directory_error)?,
            };
            let mut still = Vec::new();
            for parent in waiting {
                match self.parent_progress(store, key, &parent, &listed).await? {
                    None => {}
                    Some(detail) => {
                        blocker.get_or_insert((parent.clone(), detail));
                        still.push(parent);
                    }
                }
            }
            waiting = still;
            let Some((parent, detail)) = blocker else {
                tracing::info!(shard = %key.shard.shard_id, parents = ?parents, "every parent shard is finished");
                store
                    .save_lineage(key, &Lineage::Cleared { parents })
                    .await?;
                return Ok(Verdict::Clear);
            };
            let time_left = deadline.remaining().unwrap_or(Duration::MAX);
            if time_left < reserve + poll {
                return Ok(Verdict::Blocked { parent, detail });
            }
            tracing::debug!(shard = %key.shard.shard_id, parent = %parent, detail = %detail, "waiting for parent shard");
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(self.max_poll);
        }
    }

    /// `None` when `parent` is finished, or what it still has to do.
    async fn parent_progress(
        &self,
        store: &dyn StateStore,
        child: &ShardKey,
        parent: &str,
        listed: &[ListedShard],
    ) -> Result<Option<String>, GuardError> {
        let parent_key = ShardKey {
            consumer: child.consumer.clone(),
            shard: ShardRef {
                stream_arn: child.shard.stream_arn.clone(),
                shard_id: Arc::from(parent),
            },
        };
        let state = store.load_shard(&parent_key).await?;
        if let ShardStatus::Ended { .. } = state.status {
            return Ok(None);
        }
        if !listed.iter().any(|s| s.shard_id == parent) {
            // Expired from the stream: nothing of it can still be delivered.
            return Ok(None);
        }
        if let Some(head) = &state.head {
            return Ok(Some(format!(
                "parent {parent} is retrying its record {} (attempt {})",
                head.position, head.attempts
            )));
        }
        let tail = self
            .directory
            .tail_after(&parent_key.shard, state.checkpoint.as_ref())
            .await
            .map_err(|source| GuardError::Directory {
                shard_id: parent.to_owned(),
                source,
            })?;
        let at = state
            .checkpoint
            .as_ref()
            .map_or_else(|| "its start".to_owned(), |p| format!("checkpoint {p}"));
        match tail {
            ShardTail::Ended { children } => {
                store.mark_shard_end(&parent_key, &children).await?;
                Ok(None)
            }
            ShardTail::Pending { first } => Ok(Some(format!(
                "parent {parent} is at {at} and has unprocessed records from {first}"
            ))),
            ShardTail::Open => Ok(Some(format!("parent {parent} is at {at} and still open"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::EmbeddedStore;
    use std::sync::Mutex;

    /// A shard directory from a fixed listing; counts tail reads.
    struct Listing {
        shards: Vec<ListedShard>,
        tail: ShardTail,
        reads: Mutex<u32>,
    }

    #[async_trait]
    impl ShardDirectory for Listing {
        async fn list_shards(&self, _: &str) -> Result<Vec<ListedShard>, BoxError> {
            Ok(self.shards.clone())
        }
        async fn tail_after(
            &self,
            _: &ShardRef,
            _: Option<&Position>,
        ) -> Result<ShardTail, BoxError> {
            *self.reads.lock().unwrap() += 1;
            Ok(self.tail.clone())
        }
    }

    fn key(shard: &str) -> ShardKey {
        ShardKey {
            consumer: "c".into(),
            shard: ShardRef {
                stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"),
                shard_id: Arc::from(shard),
            },
        }
    }

    fn store() -> EmbeddedStore {
        let dir = std::env::temp_dir().join(format!(
            "shardline-guard-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        EmbeddedStore::open(&dir).unwrap()
    }

    fn guard(shards: Vec<ListedShard>, tail: ShardTail) -> (ParentGuard, Arc<Listing>) {
        let listing = Arc::new(Listing {
            shards,
            tail,
            reads: Mutex::new(0),
        });
        let guard = ParentGuard::new(listing.clone())
            .with_poll(Duration::from_millis(10), Duration::from_millis(20));
        (guard, listing)
    }

    fn child_of(parents: &[&str]) -> ListedShard {
        ListedShard {
            shard_id: "child".into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn an_expired_parent_does_not_block() {
        let store = store();
        // The parent is no longer listed: it expired from the stream.
        let (guard, listing) = guard(vec![child_of(&["gone"])], ShardTail::Open);
        let state = store.load_shard(&key("child")).await.unwrap();
        let verdict = guard
            .check(
                &store,
                &key("child"),
                &state,
                Deadline::none(),
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::Clear);
        assert_eq!(*listing.reads.lock().unwrap(), 0);
        let state = store.load_shard(&key("child")).await.unwrap();
        assert_eq!(
            state.lineage,
            Lineage::Cleared {
                parents: vec!["gone".into()]
            }
        );
    }

    #[tokio::test]
    async fn an_unfinished_parent_blocks_until_the_deadline_and_names_itself() {
        let store = store();
        let parent = ListedShard {
            shard_id: "parent".into(),
            parents: vec![],
        };
        let first: SequenceNumber = "42".parse().unwrap();
        let (guard, listing) = guard(
            vec![parent, child_of(&["parent"])],
            ShardTail::Pending { first },
        );
        let state = store.load_shard(&key("child")).await.unwrap();
        let started = std::time::Instant::now();
        let verdict = guard
            .check(
                &store,
                &key("child"),
                &state,
                Deadline::after(Duration::from_millis(200)),
                Duration::from_millis(50),
            )
            .await
            .unwrap();
        let Verdict::Blocked { parent, detail } = verdict else {
            panic!("expected blocked, got {verdict:?}");
        };
        assert_eq!(parent, "parent");
        assert!(detail.contains("from 42"), "{detail}");
        assert!(
            *listing.reads.lock().unwrap() >= 2,
            "it polled while time allowed"
        );
        assert!(started.elapsed() < Duration::from_millis(400));
        let state = store.load_shard(&key("child")).await.unwrap();
        assert_eq!(
            state.lineage,
            Lineage::Pending {
                parents: vec!["parent".into()]
            }
        );
    }

    #[tokio::test]
    async fn a_child_missing_from_the_listing_is_not_cleared() {
        let store = store();
        // ListShards lags behind a reshard (or names another stream): the child
        // is not listed, so its parents are not known yet.
        let (guard, _) = guard(vec![], ShardTail::Open);
        let state = store.load_shard(&key("child")).await.unwrap();
        let verdict = guard
            .check(
                &store,
                &key("child"),
                &state,
                Deadline::after(Duration::from_millis(150)),
                Duration::from_millis(20),
            )
            .await
            .unwrap();
        assert!(
            matches!(verdict, Verdict::Blocked { .. }),
            "not listed is not cleared: {verdict:?}"
        );
        let state = store.load_shard(&key("child")).await.unwrap();
        assert_eq!(state.lineage, Lineage::Unknown);
    }

    #[tokio::test]
    async fn a_parent_read_to_its_end_is_recorded_as_ended() {
        let store = store();
        let parent = ListedShard {
            shard_id: "parent".into(),
            parents: vec![],
        };
        let (guard, _) = guard(
            vec![parent, child_of(&["parent"])],
            ShardTail::Ended {
                children: vec!["child".into()],
            },
        );
        let state = store.load_shard(&key("child")).await.unwrap();
        let verdict = guard
            .check(
                &store,
                &key("child"),
                &state,
                Deadline::none(),
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(verdict, Verdict::Clear);
        let parent = store.load_shard(&key("parent")).await.unwrap();
        assert_eq!(
            parent.status,
            ShardStatus::Ended {
                children: vec!["child".into()]
            }
        );
    }
}

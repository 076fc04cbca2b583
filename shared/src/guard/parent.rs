//! Whether one parent shard is finished: recorded as such, expired, or its own
//! parents finished and every record after its checkpoint done and the shard
//! closed.
//!
//! Finished is transitive: a parent that closed empty (a split right after a
//! split) is only finished once its own parents are, or a grandchild could
//! overtake its grandparent.
//!
//! In per-key mode no batch knows a shard's checkpoint (batches of one shard
//! run at once, each moving its keys only). The guard then reads the parent and
//! checks each record against its key's progress, [`VERIFY_PAGE`] records at a
//! time, and keeps how far every record is known done as the parent's shard
//! checkpoint, so the next check reads on from there.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{GuardError, ListedShard, ShardDirectory, TailEnd};
use crate::record::{Position, ShardRef};
use crate::state::{
    ConsumerShard, Progress, ProgressMode, Settled, ShardState, ShardStatus, StateStore,
};

/// How many generations of ancestors a check follows at most.
const MAX_DEPTH: usize = 16;
/// Records read per page when checking a parent's records key by key.
pub const VERIFY_PAGE: usize = 1_000;
/// Pages one check reads at most before it polls again.
const VERIFY_PAGES: usize = 10;

/// What a parent still has to do: `None` when finished.
type Unfinished = Option<String>;

/// Checks parents of one consumer's shards of one stream.
pub(super) struct Checker<'a> {
    pub directory: &'a dyn ShardDirectory,
    pub store: &'a dyn StateStore,
    pub consumer: &'a str,
    pub stream_arn: &'a Arc<str>,
    pub mode: ProgressMode,
}

/// Where a parent's tail stands.
enum TailState {
    Finished { children: Vec<String> },
    Unfinished(String),
}

impl Checker<'_> {
    fn key(&self, shard_id: &str) -> ConsumerShard {
        ConsumerShard {
            consumer: self.consumer.to_owned(),
            shard: ShardRef {
                stream_arn: self.stream_arn.clone(),
                shard_id: Arc::from(shard_id),
            },
        }
    }

    fn directory_error(&self, shard_id: &str) -> impl FnOnce(crate::error::BoxError) -> GuardError {
        let shard_id = shard_id.to_owned();
        move |source| GuardError::Directory { shard_id, source }
    }

    /// The stream's shards.
    pub async fn list(&self) -> Result<Vec<ListedShard>, GuardError> {
        self.directory
            .list_shards(self.stream_arn)
            .await
            .map_err(self.directory_error(self.stream_arn))
    }

    /// The first of `parents` that is not finished, with what it still has to do.
    pub async fn first_unfinished(
        &self,
        parents: &[String],
        listed: &[ListedShard],
    ) -> Result<Option<(String, String)>, GuardError> {
        for parent in parents {
            if let Some(detail) = self.unfinished(parent, listed, 0).await? {
                return Ok(Some((parent.clone(), detail)));
            }
        }
        Ok(None)
    }

    /// `None` when `shard` is finished, or what it still has to do.
    fn unfinished<'b>(
        &'b self,
        shard: &'b str,
        listed: &'b [ListedShard],
        depth: usize,
    ) -> BoxFuture<'b, Result<Unfinished, GuardError>> {
        Box::pin(async move {
            let key = self.key(shard);
            let state = self.store.load_shard(&key).await?;
            if let ShardStatus::Ended { .. } = state.status {
                return Ok(None);
            }
            let Some(listing) = listed.iter().find(|s| s.shard_id == shard) else {
                // Expired from the stream: nothing of it can still be delivered.
                return Ok(None);
            };
            if depth >= MAX_DEPTH {
                return Ok(Some(format!(
                    "{shard} has more than {MAX_DEPTH} generations of parents still listed"
                )));
            }
            for grandparent in &listing.parents {
                if let Some(detail) = self.unfinished(grandparent, listed, depth + 1).await? {
                    return Ok(Some(format!(
                        "{shard} waits for its own parent {grandparent}: {detail}"
                    )));
                }
            }
            let tail = match self.mode {
                ProgressMode::Shard => self.shard_tail(&key, &state).await?,
                ProgressMode::PartitionKey => self.key_tail(&key, &state).await?,
            };
            match tail {
                TailState::Finished { children } => {
                    self.store.mark_shard_end(&key, &children).await?;
                    Ok(None)
                }
                TailState::Unfinished(detail) => Ok(Some(detail)),
            }
        })
    }

    /// Shard mode: finished when nothing lies after the checkpoint of a closed shard.
    async fn shard_tail(
        &self,
        key: &ConsumerShard,
        state: &ShardState,
    ) -> Result<TailState, GuardError> {
        let shard = &key.shard.shard_id;
        if let Some(head) = state.progress.head() {
            return Ok(TailState::Unfinished(format!(
                "parent {shard} is retrying its record {} (attempt {})",
                head.position, head.attempts
            )));
        }
        let checkpoint = state.progress.checkpoint.as_ref();
        let tail = self
            .directory
            .read_after(&key.shard, checkpoint, 1)
            .await
            .map_err(self.directory_error(shard))?;
        let at = checkpoint.map_or_else(|| "its start".to_owned(), |p| format!("checkpoint {p}"));
        if let Some(first) = tail.records.first() {
            return Ok(TailState::Unfinished(format!(
                "parent {shard} is at {at} and has unprocessed records from {}",
                first.sequence
            )));
        }
        Ok(match tail.end {
            TailEnd::Ended { children } => TailState::Finished { children },
            TailEnd::Open => {
                TailState::Unfinished(format!("parent {shard} is at {at} and still open"))
            }
            TailEnd::More => {
                TailState::Unfinished(format!("parent {shard} is at {at}; reading on"))
            }
        })
    }

    /// Per-key mode: finished when every record of a closed shard is done per
    /// its key. How far the records are known done is kept as the shard's checkpoint.
    async fn key_tail(
        &self,
        key: &ConsumerShard,
        state: &ShardState,
    ) -> Result<TailState, GuardError> {
        let shard = &key.shard.shard_id;
        let mut verified = state.progress.checkpoint.clone();
        let mut outcome = None;
        'pages: for _ in 0..VERIFY_PAGES {
            let tail = self
                .directory
                .read_after(&key.shard, verified.as_ref(), VERIFY_PAGE)
                .await
                .map_err(self.directory_error(shard))?;
            let keys: Vec<String> = tail
                .records
                .iter()
                .map(|r| r.partition_key.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let progress = self.store.load_key_progress(key, &keys).await?;
            for record in &tail.records {
                let last = record.last();
                let done = progress
                    .get(&record.partition_key)
                    .and_then(|p| p.checkpoint.as_ref())
                    .is_some_and(|checkpoint| *checkpoint >= last);
                if !done {
                    outcome = Some(TailState::Unfinished(format!(
                        "parent {shard} has record {} of key {:?} not done yet",
                        record.sequence, record.partition_key
                    )));
                    break 'pages;
                }
                verified = Some(last);
            }
            match tail.end {
                TailEnd::Ended { children } => {
                    outcome = Some(TailState::Finished { children });
                    break;
                }
                TailEnd::Open => {
                    outcome = Some(TailState::Unfinished(format!(
                        "parent {shard} is done so far but still open"
                    )));
                    break;
                }
                TailEnd::More => {}
            }
        }
        self.save_verified(key, state, verified.as_ref()).await?;
        Ok(outcome.unwrap_or_else(|| {
            TailState::Unfinished(format!(
                "parent {shard} is known done up to {}; checking on",
                verified.map_or_else(|| "its start".to_owned(), |p| p.to_string())
            ))
        }))
    }

    /// Keeps how far a parent's records are known done (per-key mode).
    async fn save_verified(
        &self,
        key: &ConsumerShard,
        state: &ShardState,
        verified: Option<&Position>,
    ) -> Result<(), GuardError> {
        if verified == state.progress.checkpoint.as_ref() {
            return Ok(());
        }
        let progress = Progress {
            checkpoint: verified.cloned(),
            ..state.progress.clone()
        };
        // Another check that got there first is as good.
        self.store
            .commit(key, state.progress.version, &progress, &Settled::default())
            .await?;
        Ok(())
    }
}

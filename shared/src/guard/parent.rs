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
//! checkpoint (also when a later read fails).
//!
//! In both modes the guard keeps, in memory, where its last read of a parent
//! stopped ([`ReadMarks`]): Kinesis answers empty pages before a shard's end and
//! across gaps in time, and a record position cannot say how far past them a
//! read got. The next poll (or the next invocation of a warm sandbox, within
//! the cursor's life) reads on from there, so a tail of any number of empty
//! pages is read once, a bounded number of pages a poll ([`VERIFY_PAGES`]
//! reads in per-key mode, one in shard mode). A cold sandbox starts again
//! from the checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{GuardError, ListedShard, ShardDirectory, Tail, TailCursor, TailEnd};
use crate::record::{Position, ShardRef};
use crate::state::{
    ConsumerShard, Progress, ProgressMode, Settled, ShardState, ShardStatus, StateStore,
};

/// How many generations of ancestors a check follows at most.
const MAX_DEPTH: usize = 16;
/// Records read per page when checking a parent's records key by key.
pub(super) const VERIFY_PAGE: usize = 1_000;
/// Reads (of up to [`VERIFY_PAGE`] records, or a directory's page limit) one
/// per-key check makes at most before it polls again; the next poll reads on.
pub(super) const VERIFY_PAGES: usize = 10;
/// How long a kept cursor is used: Kinesis shard iterators expire 5 minutes
/// after they are issued; an older cursor would only cost a failed call.
const CURSOR_LIFE: Duration = Duration::from_secs(4 * 60);

/// A cursor with when it was handed out.
#[derive(Debug, Clone)]
pub(super) struct Resume {
    cursor: TailCursor,
    issued: Instant,
}

impl Resume {
    fn new(cursor: TailCursor) -> Self {
        Resume {
            cursor,
            issued: Instant::now(),
        }
    }

    fn is_fresh(&self) -> bool {
        self.issued.elapsed() < CURSOR_LIFE
    }
}

/// Where a read of a parent's tail goes on from: records after `after`, read
/// from `resume` when there is one (it starts at or before the first record
/// after `after`, past the empty pages already read), else from `after` itself.
#[derive(Debug, Clone)]
pub(super) struct Walk {
    /// Every record of the shard at or before it is known done (per-key mode),
    /// or it is the checkpoint the read started from (shard mode).
    after: Option<Position>,
    resume: Option<Resume>,
}

/// Where the last read of each parent stopped, kept between polls (in memory:
/// a cursor lives minutes, and a cold sandbox starts from the checkpoint).
#[derive(Debug, Default)]
pub(super) struct ReadMarks(Mutex<HashMap<ConsumerShard, Walk>>);

impl ReadMarks {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConsumerShard, Walk>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where to read `key`'s shard from, given its stored `checkpoint`: the
    /// kept mark when it is at least as far (its cursor while fresh), else
    /// the checkpoint.
    fn walk_from(&self, key: &ConsumerShard, checkpoint: Option<&Position>) -> Walk {
        match self.lock().remove(key) {
            Some(mut walk) if walk.after.as_ref() >= checkpoint => {
                walk.resume = walk.resume.filter(Resume::is_fresh);
                walk
            }
            _ => Walk {
                after: checkpoint.cloned(),
                resume: None,
            },
        }
    }

    /// Keeps `walk` for the next read of `key`'s shard (forgets the shard
    /// when `walk` has no cursor).
    fn keep(&self, key: &ConsumerShard, walk: Walk) {
        let mut marks = self.lock();
        if walk.resume.is_some() {
            marks.insert(key.clone(), walk);
        } else {
            marks.remove(key);
        }
    }

    fn forget(&self, key: &ConsumerShard) {
        self.lock().remove(key);
    }
}

/// What a parent still has to do: `None` when finished.
type Unfinished = Option<String>;

/// Checks parents of one consumer's shards of one stream.
pub(super) struct Checker<'a> {
    pub directory: &'a dyn ShardDirectory,
    pub store: &'a dyn StateStore,
    pub consumer: &'a str,
    pub stream_arn: &'a Arc<str>,
    pub mode: ProgressMode,
    pub marks: &'a ReadMarks,
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
    pub(super) async fn list(&self) -> Result<Vec<ListedShard>, GuardError> {
        self.directory
            .list_shards(self.stream_arn)
            .await
            .map_err(self.directory_error(self.stream_arn))
    }

    /// The first of `parents` that is not finished, with what it still has to do.
    pub(super) async fn first_unfinished(
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
            let state = self.store.read_shard(&key).await?;
            if let ShardStatus::Ended { .. } = state.status {
                self.marks.forget(&key);
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
                    self.marks.forget(&key);
                    self.store.write_shard_end(&key, &children).await?;
                    Ok(None)
                }
                TailState::Unfinished(detail) => Ok(Some(detail)),
            }
        })
    }

    /// Shard mode: finished when nothing lies after the checkpoint of a closed
    /// shard. The read goes on from where the last one stopped while the
    /// checkpoint has not moved, so empty pages before the end are read once.
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
        let mut walk = self.marks.walk_from(key, checkpoint);
        let read = self.read(key, &mut walk, 1).await;
        let (tail, started) = match read {
            Ok(read) => read,
            Err(e) => {
                self.marks.keep(key, walk);
                return Err(e);
            }
        };
        let at = checkpoint.map_or_else(|| "its start".to_owned(), |p| format!("checkpoint {p}"));
        let outcome = if let Some(first) = tail.records.first() {
            // Read from the same place again while the checkpoint stays.
            walk.resume = started;
            TailState::Unfinished(format!(
                "parent {shard} is at {at} and has unprocessed records from {}",
                first.sequence
            ))
        } else {
            walk.resume = tail.resume.map(Resume::new);
            match tail.end {
                TailEnd::Ended { children } => TailState::Finished { children },
                TailEnd::Open => {
                    TailState::Unfinished(format!("parent {shard} is at {at} and still open"))
                }
                TailEnd::More => {
                    TailState::Unfinished(format!("parent {shard} is at {at}; reading on"))
                }
            }
        };
        self.marks.keep(key, walk);
        Ok(outcome)
    }

    /// Per-key mode: finished when every record of a closed shard is done per
    /// its key. How far the records are known done is kept as the shard's
    /// checkpoint, also when a later read fails; where the reads stopped is
    /// kept in memory, so the next poll reads on from there.
    async fn key_tail(
        &self,
        key: &ConsumerShard,
        state: &ShardState,
    ) -> Result<TailState, GuardError> {
        let shard = &key.shard.shard_id;
        let mut walk = self
            .marks
            .walk_from(key, state.progress.checkpoint.as_ref());
        let mut outcome = Ok(None);
        for _ in 0..VERIFY_PAGES {
            outcome = self.verify_next(key, &mut walk).await;
            if !matches!(outcome, Ok(None)) {
                break;
            }
        }
        let saved = self.save_verified(key, state, walk.after.as_ref()).await;
        let verified = walk.after.clone();
        self.marks.keep(key, walk);
        if let (Err(read), Err(save)) = (&outcome, &saved) {
            tracing::warn!(shard = %shard, read = %read, save = %save, "cannot keep how far the parent is known done");
        }
        let outcome = outcome?;
        saved?;
        Ok(outcome.unwrap_or_else(|| {
            TailState::Unfinished(format!(
                "parent {shard} is known done up to {}; checking on",
                verified.map_or_else(|| "its start".to_owned(), |p| p.to_string())
            ))
        }))
    }

    /// Reads the next page of a parent's tail from `walk` and checks each
    /// record against its key's progress, moving `walk` past what is done.
    /// `None` while more may follow.
    ///
    /// # Errors
    /// [`GuardError`] when the read or the key progress fails (`walk` then
    /// holds what was verified before).
    async fn verify_next(
        &self,
        key: &ConsumerShard,
        walk: &mut Walk,
    ) -> Result<Option<TailState>, GuardError> {
        let shard = &key.shard.shard_id;
        let (tail, started) = self.read(key, walk, VERIFY_PAGE).await?;
        let keys: Vec<String> = tail
            .records
            .iter()
            .map(|r| r.partition_key.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let progress = match self.store.read_keys(key, &keys).await {
            Ok(progress) => progress,
            Err(e) => {
                walk.resume = started;
                return Err(e.into());
            }
        };
        for record in &tail.records {
            let last = record.last();
            let done = progress
                .get(&record.partition_key)
                .and_then(|p| p.checkpoint.as_ref())
                .is_some_and(|checkpoint| *checkpoint >= last);
            if !done {
                // The page holding it is read again next time.
                walk.resume = started;
                return Ok(Some(TailState::Unfinished(format!(
                    "parent {shard} has record {} of key {:?} not done yet",
                    record.sequence, record.partition_key
                ))));
            }
            walk.after = Some(last);
        }
        walk.resume = tail.resume.map(Resume::new);
        Ok(match tail.end {
            TailEnd::Ended { children } => Some(TailState::Finished { children }),
            TailEnd::Open => Some(TailState::Unfinished(format!(
                "parent {shard} is done so far but still open"
            ))),
            TailEnd::More => None,
        })
    }

    /// Reads `key`'s shard after `walk.after`: from its cursor while it has a
    /// fresh one, else (or when the cursor fails: expired, say) from the
    /// position. Returns the tail and the cursor it was read from, if any.
    ///
    /// # Errors
    /// [`GuardError::Directory`] when the read from the position fails.
    async fn read(
        &self,
        key: &ConsumerShard,
        walk: &mut Walk,
        max_records: usize,
    ) -> Result<(Tail, Option<Resume>), GuardError> {
        let shard = &key.shard.shard_id;
        if let Some(resume) = walk.resume.take() {
            let read = self
                .directory
                .read_on(&key.shard, &resume.cursor, walk.after.as_ref(), max_records)
                .await;
            match read {
                Ok(tail) => return Ok((tail, Some(resume))),
                Err(e) => {
                    tracing::debug!(shard = %shard, error = %e, "cannot read on where the last read stopped; reading from the position");
                }
            }
        }
        let tail = self
            .directory
            .read_after(&key.shard, walk.after.as_ref(), max_records)
            .await
            .map_err(self.directory_error(shard))?;
        Ok((tail, None))
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

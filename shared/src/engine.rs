//! The batch loop: skip rules, handler outcomes, the checkpoint, the response.
//!
//! For each shard in the event, records go in order:
//!
//! 1. skip rules ([`crate::skip`]): checkpointed, stale, duplicate;
//! 2. an undecodable record goes to the quarantine;
//! 3. if the invocation is short of time, stop and report this record;
//! 4. the handler: success moves on; a permanent failure quarantines the record
//!    and moves on; a retryable failure stops the shard here and reports this
//!    record in `batchItemFailures` (Lambda retries from it), unless the record
//!    has now failed `max_attempts` times, when it is quarantined instead.
//!
//! Then one commit per shard writes the checkpoint, the head record's attempt
//! count and the quarantined records together.
//!
//! Before any of that, the parent-shard guard ([`crate::guard`]), if on, holds a
//! child shard back until its parents are finished.
//!
//! Two progress modes ([`ProgressMode`]): one checkpoint per shard (the default,
//! for one batch per shard at a time), or one per partition key (for
//! `ParallelizationFactor` above 1, where batches of one shard run at once and
//! only records of one key are ordered).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::decode::{DecodedEvent, Item};
use crate::guard::{GuardError, ParentGuard, Verdict};
use crate::handler::{FailureKind, Handler};
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, Record, ShardRef};
use crate::report::BatchReport;
use crate::response::BatchResponse;
use crate::skip::{SkipRule, SkipRules};
use crate::state::{
    ClaimOutcome, CommitOutcome, DedupClaim, HeadAttempts, KeyCommit, KeyProgress, ShardCommit,
    ShardKey, ShardState, StateError, StateStore,
};

/// Where progress is kept, and so what order is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// One checkpoint per shard: a retryable failure stops the shard, nothing
    /// after it runs. For one batch per shard at a time (ParallelizationFactor 1).
    #[default]
    Shard,
    /// One checkpoint per partition key: a retryable failure stops only its key;
    /// other keys go on. Correct when several batches of one shard run at once
    /// (ParallelizationFactor 2..10), which Lambda orders per key only.
    PartitionKey,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "shard" => Ok(ProgressMode::Shard),
            "partition-key" => Ok(ProgressMode::PartitionKey),
            other => Err(format!("unknown progress mode {other:?}")),
        }
    }
}

/// How the engine treats one consumer's records.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The consumer's name: the key of its state.
    pub consumer: String,
    /// Attempts (across invocations) before a retryable failure is quarantined. At least 1.
    pub max_attempts: u32,
    /// Skip rules.
    pub skip: SkipRules,
    /// Time kept back at the end of an invocation for the commit and the
    /// response. The engine also keeps back the longest handler call seen in the
    /// batch, so a record is only started when it can likely finish.
    pub time_reserve: Duration,
    /// Per shard or per partition key.
    pub progress: ProgressMode,
    /// The parent-shard guard; `None` turns it off (for order-insensitive consumers).
    pub guard: Option<Arc<ParentGuard>>,
}

impl EngineConfig {
    /// A configuration with defaults: 3 attempts, no skip rules, 1 s reserve.
    pub fn new(consumer: impl Into<String>) -> Self {
        EngineConfig {
            consumer: consumer.into(),
            max_attempts: 3,
            skip: SkipRules::default(),
            time_reserve: Duration::from_secs(1),
            progress: ProgressMode::Shard,
            guard: None,
        }
    }
}

/// When the invocation must have answered (Lambda's deadline).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline.
    pub fn none() -> Self {
        Deadline(None)
    }

    /// A deadline `remaining` from now.
    pub fn after(remaining: Duration) -> Self {
        Deadline(Instant::now().checked_add(remaining))
    }

    /// From Lambda's `Lambda-Runtime-Deadline-Ms`: milliseconds since the epoch.
    /// `cargo lambda watch` (1.9) sends the timeout itself (`600000`) instead;
    /// a value before the year 2000 is taken as such a duration, so the local
    /// loop is not cut off at once.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        const YEAR_2000_MS: u64 = 946_684_800_000;
        if deadline_ms < YEAR_2000_MS {
            return Deadline::after(Duration::from_millis(deadline_ms));
        }
        let now_ms = crate::quarantine::epoch_millis(SystemTime::now());
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left, or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

/// Why a batch could not be processed at all (the invocation fails and Lambda
/// retries the whole batch; nothing was committed).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state store failed.
    #[error("state of shard {shard_id} ({stream_arn}): {source}")]
    State {
        /// The shard's stream.
        stream_arn: String,
        /// The shard.
        shard_id: String,
        /// The store's error.
        #[source]
        source: StateError,
    },
    /// The parent-shard guard could not decide.
    #[error("parent-shard guard of {shard_id}: {source}")]
    Guard {
        /// The child shard.
        shard_id: String,
        /// The guard's error.
        #[source]
        source: GuardError,
    },
}

/// What processing an event produced.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// The response for Lambda.
    pub response: BatchResponse,
    /// What happened, counted.
    pub report: BatchReport,
}

/// Processes a decoded event: every shard in it, in order, with `handler`.
///
/// # Errors
/// [`EngineError`] when the state store fails; records already handled in this
/// invocation will be delivered again (at-least-once), so handlers should be
/// idempotent or use a dedup rule.
pub async fn process_event<H: Handler>(
    event: DecodedEvent,
    handler: &H,
    store: &dyn StateStore,
    config: &EngineConfig,
    deadline: Deadline,
) -> Result<BatchOutcome, EngineError> {
    let now = SystemTime::now();
    let mut outcome = BatchOutcome::default();
    outcome.report.kpl = event.kpl;
    outcome.report.records = event.items.len() as u64;
    outcome.report.iterator_age = event
        .items
        .iter()
        .filter_map(|item| item.record().age(now))
        .max();
    for (shard, items) in split_by_shard(event.items) {
        let key = ShardKey {
            consumer: config.consumer.clone(),
            shard,
        };
        let run = ShardRun {
            key: &key,
            handler,
            store,
            config,
            deadline,
            now,
        };
        if let Some(retry_from) = run.process(items, &mut outcome.report).await? {
            outcome.response.retry_from(retry_from.sequence.to_string());
        }
    }
    Ok(outcome)
}

/// Groups items by shard, keeping each shard's order (Lambda sends one shard
/// per batch; hand-made events may mix them).
fn split_by_shard(items: Vec<Item>) -> Vec<(ShardRef, Vec<Item>)> {
    let mut shards: Vec<(ShardRef, Vec<Item>)> = Vec::new();
    for item in items {
        let shard = &item.record().shard;
        match shards.iter_mut().find(|(s, _)| s == shard) {
            Some((_, list)) => list.push(item),
            None => shards.push((shard.clone(), vec![item])),
        }
    }
    shards
}

struct ShardRun<'a, H> {
    key: &'a ShardKey,
    handler: &'a H,
    store: &'a dyn StateStore,
    config: &'a EngineConfig,
    deadline: Deadline,
    now: SystemTime,
}

/// What the loop decided for one record.
enum Step {
    Skip(SkipRule),
    Quarantine(QuarantineReason, String, u32),
    Processed,
    Stop(StopReason),
}

enum StopReason {
    Retry { attempts: u32, error: String },
    OutOfTime,
}

/// Progress through one shard's records, per shard or per key.
enum Tracker {
    Shard {
        read: ShardState,
        checkpoint: Option<Position>,
        head: Option<HeadAttempts>,
        first_done: Option<Position>,
    },
    Keys {
        read: HashMap<String, KeyProgress>,
        now: HashMap<String, KeyProgress>,
        first_done: HashMap<String, Position>,
        blocked: HashSet<String>,
    },
}

impl Tracker {
    fn read_progress(&self, record: &Record) -> Option<(&Option<Position>, &Option<HeadAttempts>)> {
        match self {
            Tracker::Shard { read, .. } => Some((&read.checkpoint, &read.head)),
            Tracker::Keys { read, .. } => read
                .get(record.ordering_key())
                .map(|p| (&p.checkpoint, &p.head)),
        }
    }

    /// At or below the checkpoint read at the start of the batch.
    fn is_done(&self, record: &Record) -> bool {
        self.read_progress(record)
            .and_then(|(cp, _)| cp.as_ref())
            .is_some_and(|cp| record.position <= *cp)
    }

    /// Attempts made on `record` by earlier invocations.
    fn prior_attempts(&self, record: &Record) -> u32 {
        match self
            .read_progress(record)
            .and_then(|(_, head)| head.as_ref())
        {
            Some(head) if head.position == record.position => head.attempts,
            _ => 0,
        }
    }

    /// A key stopped earlier in this batch (per-key mode).
    fn is_blocked(&self, record: &Record) -> bool {
        match self {
            Tracker::Shard { .. } => false,
            Tracker::Keys { blocked, .. } => blocked.contains(record.ordering_key()),
        }
    }

    /// The record is done: processed, skipped by a rule, or quarantined.
    fn advance(&mut self, record: &Record) {
        match self {
            Tracker::Shard {
                checkpoint,
                head,
                first_done,
                ..
            } => {
                first_done.get_or_insert_with(|| record.position.clone());
                *checkpoint = Some(record.position.clone());
                if head.as_ref().is_some_and(|h| h.position <= record.position) {
                    *head = None;
                }
            }
            Tracker::Keys {
                read,
                now,
                first_done,
                ..
            } => {
                let key = record.ordering_key();
                first_done
                    .entry(key.to_owned())
                    .or_insert_with(|| record.position.clone());
                let progress = now
                    .entry(key.to_owned())
                    .or_insert_with(|| read.get(key).cloned().unwrap_or_default());
                progress.checkpoint = Some(record.position.clone());
                if progress
                    .head
                    .as_ref()
                    .is_some_and(|h| h.position <= record.position)
                {
                    progress.head = None;
                }
            }
        }
    }

    /// The record failed (retryable) on attempt `attempts`.
    fn fail(&mut self, record: &Record, attempts: u32) {
        let failed = Some(HeadAttempts {
            position: record.position.clone(),
            attempts,
        });
        match self {
            Tracker::Shard { head, .. } => *head = failed,
            Tracker::Keys {
                read, now, blocked, ..
            } => {
                let key = record.ordering_key();
                blocked.insert(key.to_owned());
                now.entry(key.to_owned())
                    .or_insert_with(|| read.get(key).cloned().unwrap_or_default())
                    .head = failed;
            }
        }
    }
}

impl<H: Handler> ShardRun<'_, H> {
    fn state_error(&self, source: StateError) -> EngineError {
        EngineError::State {
            stream_arn: self.key.shard.stream_arn.to_string(),
            shard_id: self.key.shard.shard_id.to_string(),
            source,
        }
    }

    /// Runs one shard's records; returns the position to retry from, if any.
    async fn process(
        &self,
        items: Vec<Item>,
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        let read = self
            .store
            .load_shard(self.key)
            .await
            .map_err(|e| self.state_error(e))?;
        if let Some(guard) = &self.config.guard {
            let verdict = guard
                .check(
                    self.store,
                    self.key,
                    &read,
                    self.deadline,
                    self.config.time_reserve,
                )
                .await
                .map_err(|source| EngineError::Guard {
                    shard_id: self.key.shard.shard_id.to_string(),
                    source,
                })?;
            if let Verdict::Blocked { parent, detail } = verdict {
                tracing::warn!(
                    shard = %self.key.shard.shard_id,
                    parent = %parent,
                    detail = %detail,
                    records = items.len(),
                    "child shard held back until its parent is finished; the whole batch is reported failed"
                );
                report.blocked_on_parent += items.len() as u64;
                report.not_started += items.len() as u64;
                return Ok(items.first().map(|item| item.record().position.clone()));
            }
        }
        let mut tracker = match self.config.progress {
            ProgressMode::Shard => Tracker::Shard {
                checkpoint: read.checkpoint.clone(),
                head: read.head.clone(),
                first_done: None,
                read,
            },
            ProgressMode::PartitionKey => {
                let mut keys: Vec<String> = items
                    .iter()
                    .map(|item| item.record().ordering_key().to_owned())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let read = self
                    .store
                    .load_key_progress(self.key, &keys)
                    .await
                    .map_err(|e| self.state_error(e))?;
                Tracker::Keys {
                    read,
                    now: HashMap::new(),
                    first_done: HashMap::new(),
                    blocked: HashSet::new(),
                }
            }
        };
        let duplicates = self.claim_dedup_keys(&items, &tracker).await?;
        let batch = crate::handler::Batch {
            consumer: &self.key.consumer,
            shard: &self.key.shard,
            store: self.store,
            deadline: self.deadline,
        };
        self.handler.begin(&batch).await;

        let mut quarantine = Vec::new();
        let mut retry_from: Option<Position> = None;
        let mut slowest = Duration::ZERO;
        for (index, item) in items.iter().enumerate() {
            let record = item.record();
            if tracker.is_blocked(record) {
                report.not_started += 1;
                continue;
            }
            match self.decide(item, &tracker, &duplicates, &mut slowest).await {
                Step::Skip(SkipRule::Checkpointed) => {
                    report.count_skip(SkipRule::Checkpointed);
                    continue;
                }
                Step::Skip(rule) => report.count_skip(rule),
                Step::Processed => report.processed += 1,
                Step::Quarantine(reason, detail, attempts) => {
                    tracing::warn!(
                        shard = %record.shard.shard_id,
                        sequence_number = %record.position.sequence,
                        subsequence_number = record.position.subsequence,
                        reason = reason.name(),
                        attempts,
                        detail = %detail,
                        "record quarantined with its payload"
                    );
                    report.count_quarantine(reason);
                    quarantine.push(QuarantinedRecord::new(
                        record, reason, detail, attempts, self.now,
                    ));
                }
                Step::Stop(StopReason::Retry { attempts, error }) => {
                    tracing::warn!(
                        shard = %record.shard.shard_id,
                        sequence_number = %record.position.sequence,
                        subsequence_number = record.position.subsequence,
                        partition_key = %record.ordering_key(),
                        attempts,
                        max_attempts = self.config.max_attempts,
                        error = %error,
                        "record failed; Lambda will retry from it"
                    );
                    report.failed += 1;
                    tracker.fail(record, attempts);
                    earliest(&mut retry_from, &record.position);
                    if let Tracker::Shard { .. } = tracker {
                        report.not_started += (items.len() - index - 1) as u64;
                        break;
                    }
                    continue;
                }
                Step::Stop(StopReason::OutOfTime) => {
                    tracing::warn!(
                        shard = %record.shard.shard_id,
                        sequence_number = %record.position.sequence,
                        "invocation is short of time; reporting the first unstarted record"
                    );
                    report.not_started += (items.len() - index) as u64;
                    report.cut_off += 1;
                    earliest(&mut retry_from, &record.position);
                    break;
                }
            }
            tracker.advance(record);
        }
        if let Err(error) = self.handler.flush(&batch).await {
            let first = items
                .iter()
                .map(Item::record)
                .find(|record| !tracker.is_done(record));
            tracing::warn!(
                shard = %self.key.shard.shard_id,
                error = %error,
                "the handler's flush failed; nothing of this batch is checkpointed"
            );
            report.failed += 1;
            return Ok(first.map(|record| record.position.clone()));
        }
        self.commit(tracker, quarantine, retry_from, report).await
    }

    /// Writes what the batch changed (nothing when nothing changed) and returns
    /// the position to retry from.
    async fn commit(
        &self,
        tracker: Tracker,
        quarantine: Vec<QuarantinedRecord>,
        mut retry_from: Option<Position>,
        report: &mut BatchReport,
    ) -> Result<Option<Position>, EngineError> {
        match tracker {
            Tracker::Shard {
                read,
                checkpoint,
                head,
                first_done,
            } => {
                if checkpoint == read.checkpoint && head == read.head && quarantine.is_empty() {
                    return Ok(retry_from);
                }
                let commit = ShardCommit {
                    checkpoint,
                    head,
                    quarantine,
                };
                let outcome = self
                    .store
                    .commit(self.key, &read, &commit)
                    .await
                    .map_err(|e| self.state_error(e))?;
                if outcome == CommitOutcome::Superseded {
                    tracing::warn!(
                        shard = %self.key.shard.shard_id,
                        "a newer invocation committed this shard first; this one wrote nothing \
                         and asks Lambda to retry from its first record"
                    );
                    report.superseded += 1;
                    if let Some(first) = first_done {
                        earliest(&mut retry_from, &first);
                    }
                }
                Ok(retry_from)
            }
            Tracker::Keys {
                read,
                now,
                first_done,
                ..
            } => {
                let commits: Vec<KeyCommit> = now
                    .into_iter()
                    .filter(|(key, progress)| read.get(key) != Some(progress))
                    .map(|(partition_key, progress)| KeyCommit {
                        read: read.get(&partition_key).cloned().unwrap_or_default(),
                        partition_key,
                        progress,
                    })
                    .collect();
                if commits.is_empty() && quarantine.is_empty() {
                    return Ok(retry_from);
                }
                let superseded = self
                    .store
                    .commit_key_progress(self.key, &commits, &quarantine)
                    .await
                    .map_err(|e| self.state_error(e))?;
                for key in superseded {
                    tracing::warn!(
                        shard = %self.key.shard.shard_id,
                        partition_key = %key,
                        "a newer invocation moved this key first; its progress here was not written"
                    );
                    report.superseded += 1;
                    if let Some(first) = first_done.get(&key) {
                        earliest(&mut retry_from, first);
                    }
                }
                Ok(retry_from)
            }
        }
    }

    /// Applies the skip rules and, if none applies, the handler.
    async fn decide(
        &self,
        item: &Item,
        tracker: &Tracker,
        duplicates: &HashMap<Position, String>,
        slowest: &mut Duration,
    ) -> Step {
        let record = item.record();
        if tracker.is_done(record) {
            return Step::Skip(SkipRule::Checkpointed);
        }
        if self.config.skip.is_stale(record, self.now) {
            return Step::Skip(SkipRule::Stale);
        }
        if duplicates.contains_key(&record.position) {
            return Step::Skip(SkipRule::Duplicate);
        }
        let record = match item {
            Item::Undecodable { reason, .. } => {
                return Step::Quarantine(QuarantineReason::Undecodable, reason.clone(), 0);
            }
            Item::Ready(record) => record,
        };
        if let Some(remaining) = self.deadline.remaining()
            && remaining < self.config.time_reserve + *slowest
        {
            return Step::Stop(StopReason::OutOfTime);
        }
        let started = Instant::now();
        let result = self.handler.handle(record).await;
        *slowest = (*slowest).max(started.elapsed());
        let Err(error) = result else {
            return Step::Processed;
        };
        let attempts = tracker.prior_attempts(record) + 1;
        match error.kind() {
            FailureKind::Permanent => {
                Step::Quarantine(QuarantineReason::Permanent, error.to_string(), attempts)
            }
            FailureKind::Retryable if attempts >= self.config.max_attempts => {
                Step::Quarantine(QuarantineReason::Exhausted, error.to_string(), attempts)
            }
            FailureKind::Retryable => Step::Stop(StopReason::Retry {
                attempts,
                error: error.to_string(),
            }),
        }
    }

    /// Claims the dedup keys of the records that may be handled, in one store
    /// call; returns the records that lost (duplicates) and who holds their key.
    async fn claim_dedup_keys(
        &self,
        items: &[Item],
        tracker: &Tracker,
    ) -> Result<HashMap<Position, String>, EngineError> {
        let mut duplicates = HashMap::new();
        let Some(rule) = &self.config.skip.dedup else {
            return Ok(duplicates);
        };
        let mut claims: Vec<(Position, DedupClaim)> = Vec::new();
        let mut first_owner: HashMap<String, String> = HashMap::new();
        for item in items {
            let Item::Ready(record) = item else { continue };
            if tracker.is_done(record) || self.config.skip.is_stale(record, self.now) {
                continue;
            }
            let Some(key) = (rule.key)(record) else {
                continue;
            };
            let owner = owner_of(record);
            // A key twice in one batch: the first record claims it, the later
            // ones are duplicates without a store round trip.
            if let Some(holder) = first_owner.get(&key) {
                duplicates.insert(record.position.clone(), holder.clone());
                continue;
            }
            first_owner.insert(key.clone(), owner.clone());
            claims.push((
                record.position.clone(),
                DedupClaim {
                    key,
                    owner,
                    expires_at: self.now + rule.window,
                },
            ));
        }
        if claims.is_empty() {
            return Ok(duplicates);
        }
        let only_claims: Vec<DedupClaim> = claims.iter().map(|(_, c)| c.clone()).collect();
        let outcomes = self
            .store
            .claim_dedup_keys(&self.key.consumer, &only_claims, self.now)
            .await
            .map_err(|e| self.state_error(e))?;
        for ((position, _), outcome) in claims.into_iter().zip(outcomes) {
            if let ClaimOutcome::HeldBy(holder) = outcome {
                duplicates.insert(position, holder);
            }
        }
        Ok(duplicates)
    }
}

fn earliest(slot: &mut Option<Position>, position: &Position) {
    if slot.as_ref().is_none_or(|p| position < p) {
        *slot = Some(position.clone());
    }
}

/// The owner name of a record's dedup claim.
fn owner_of(record: &Record) -> String {
    format!(
        "{}|{}|{}",
        record.shard.stream_arn, record.shard.shard_id, record.position
    )
}

//! What `quarantine list`, `replay`, `redrive` and `purge` ask of a store,
//! beyond the entries the engine's commit writes; both stores implement it.

use async_trait::async_trait;

use super::{QuarantineKey, QuarantineReason, QuarantinedRecord};
use crate::state::StateError;

/// A store whose quarantine can be listed and worked on: claimed for a
/// replay, given a new failure, or emptied record by record.
/// [`crate::state::EmbeddedStore`] and [`crate::state::DynamoDbStore`] are both
/// one (`tests/tests/it/quarantine_ops.rs` runs the same cases on each).
#[async_trait]
pub trait QuarantineStore: Send + Sync {
    /// Every quarantined record of `consumer`, oldest first, with its payload.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    async fn list_quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError>;

    /// Marks the record as being replayed since `now_ms` (epoch milliseconds),
    /// if no replay holds it, or, with `take_over_before`, if the replay that
    /// holds it claimed it at or before that time (epoch milliseconds: a claim
    /// that old belongs to a replay that stopped, not to one still running).
    /// `Some(u64::MAX)` takes over any claim. Returns whether this caller
    /// holds it now; `false` also when the record is gone.
    ///
    /// One conditional write: two callers cannot both get `true` for a claim
    /// unless the second is a take-over of a claim old enough.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    ///
    /// # Example
    /// ```no_run
    /// # async fn run(store: &dyn shardline::state::QuarantineStore,
    /// #     key: &shardline::quarantine::QuarantineKey) -> Result<(), shardline::state::StateError> {
    /// let now_ms = 1_800_000_000_000;
    /// // Only if no replay holds it:
    /// let mine = store.claim_replay("ledger", key, now_ms, None).await?;
    /// // Also if a replay claimed it more than ten minutes ago:
    /// let taken = store
    ///     .claim_replay("ledger", key, now_ms, Some(now_ms - 600_000))
    ///     .await?;
    /// # let _ = (mine, taken);
    /// # Ok(())
    /// # }
    /// ```
    async fn claim_replay(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        now_ms: u64,
        take_over_before: Option<u64>,
    ) -> Result<bool, StateError>;

    /// Keeps the record quarantined with a new failure: its reason, error text
    /// and attempt count, and releases its replay claim.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn requeue(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        reason: QuarantineReason,
        detail: &str,
        attempts: u32,
    ) -> Result<(), StateError>;

    /// Deletes the record (with its payload). Returns whether it was there.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn remove_quarantined(
        &self,
        consumer: &str,
        key: &QuarantineKey,
    ) -> Result<bool, StateError>;
}

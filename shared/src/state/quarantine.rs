//! Operations on the quarantine beyond the engine's writes: what `quarantine
//! replay`, `redrive` and `purge` need, on both stores.

use async_trait::async_trait;

use super::{StateError, StateStore};
use crate::quarantine::{QuarantineKey, QuarantineReason};

/// A state store whose quarantine can be worked on: claimed for a replay,
/// given a new failure, or emptied record by record. [`super::EmbeddedStore`]
/// and [`super::DynamoDbStore`] are both one (`tests/tests/quarantine_ops.rs`
/// runs the same cases on each).
#[async_trait]
pub trait QuarantineStore: StateStore {
    /// Marks the record as being replayed since `now_ms`, if no replay holds it
    /// (or, with `take_over`, whatever holds it). Returns whether this caller
    /// holds it now; `false` also when the record is gone.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn claim_replay(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        now_ms: u64,
        take_over: bool,
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

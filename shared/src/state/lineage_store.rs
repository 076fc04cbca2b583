//! What the parent guard writes: a shard's lineage and its end.

use async_trait::async_trait;

use super::{ConsumerShard, Lineage, StateError};

/// Where the parent guard keeps what it learned of a shard's place among its
/// parents and children (as the KCL's shard detector and lease table do); it
/// reads them back with the shard's state ([`super::ProgressStore::read_shard`]).
#[async_trait]
pub trait LineageStore: Send + Sync {
    /// Records what is known of a shard's parents. Lineage only moves forward
    /// (unknown, pending, cleared); it does not change the shard's version.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn write_lineage(&self, key: &ConsumerShard, lineage: &Lineage)
    -> Result<(), StateError>;

    /// Records that a shard is finished (read to its end, every record done,
    /// its own parents finished), with its children.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    async fn write_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError>;
}

//! A store over another that changes some of its calls: test doubles and
//! fault injectors, written as the one call they change.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Lineage, LineageStore, ProgressStore,
    ShardState, StateError, StateStore, UnitCommit,
};
use crate::progress::Progress;
use crate::quarantine::{QuarantineKey, QuarantineReason, QuarantineStore, QuarantinedRecord};

/// A store that wraps [`StoreLayer::inner`] and passes every call on to it,
/// but for those it overrides: a [`StateStore`] of its own (every role), whose
/// writer writes only what it changes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), shardline::state::StateError> {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use shardline::state::{CommitOutcome, ConsumerShard, EmbeddedStore, ProgressStore, StateError, StoreLayer, UnitCommit};
///
/// /// Counts commits, changes nothing else.
/// struct Counted { inner: EmbeddedStore, commits: AtomicUsize }
///
/// #[async_trait::async_trait]
/// impl StoreLayer for Counted {
///     type Inner = EmbeddedStore;
///     fn inner(&self) -> &EmbeddedStore { &self.inner }
///     async fn commit_batch(&self, key: &ConsumerShard, commits: &[UnitCommit]) -> Result<Vec<CommitOutcome>, StateError> {
///         self.commits.fetch_add(1, Ordering::Relaxed);
///         self.inner.commit_batch(key, commits).await
///     }
/// }
///
/// let inner = EmbeddedStore::open(&std::env::temp_dir().join(format!("doc-layer-{}", std::process::id())))?;
/// let store = Counted { inner, commits: AtomicUsize::new(0) };
/// let state: &dyn shardline::state::StateStore = &store; // every role
/// # let _ = state;
/// # Ok(()) }
/// ```
#[async_trait]
#[allow(missing_docs)] // Each call is the role's call of the same name.
pub trait StoreLayer: Send + Sync {
    /// The store the calls not overridden go to.
    type Inner: StateStore;

    /// That store.
    fn inner(&self) -> &Self::Inner;

    async fn read_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        self.inner().read_shard(key).await
    }

    async fn read_keys(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        self.inner().read_keys(key, partition_keys).await
    }

    async fn claim(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        self.inner().claim(consumer, claims, now).await
    }

    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError> {
        self.inner().commit_batch(key, commits).await
    }

    async fn write_lineage(
        &self,
        key: &ConsumerShard,
        lineage: &Lineage,
    ) -> Result<(), StateError> {
        self.inner().write_lineage(key, lineage).await
    }

    async fn write_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        self.inner().write_shard_end(key, children).await
    }

    async fn list_quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        self.inner().list_quarantined(consumer).await
    }

    async fn claim_replay(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        now_ms: u64,
        take_over_before: Option<u64>,
    ) -> Result<bool, StateError> {
        self.inner()
            .claim_replay(consumer, key, now_ms, take_over_before)
            .await
    }

    async fn requeue(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        reason: QuarantineReason,
        detail: &str,
        attempts: u32,
    ) -> Result<(), StateError> {
        self.inner()
            .requeue(consumer, key, reason, detail, attempts)
            .await
    }

    async fn remove_quarantined(
        &self,
        consumer: &str,
        key: &QuarantineKey,
    ) -> Result<bool, StateError> {
        self.inner().remove_quarantined(consumer, key).await
    }
}

/// Forwards each call of `$role` to the layer's override (or its default).
macro_rules! forward {
    ($role:ident { $(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)* }) => {
        #[async_trait]
        impl<L: StoreLayer> $role for L {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, StateError> {
                StoreLayer::$name(self, $($arg),*).await
            })*
        }
    };
}

forward!(ProgressStore {
    fn read_shard(key: &ConsumerShard) -> ShardState;
    fn read_keys(key: &ConsumerShard, partition_keys: &[String]) -> HashMap<String, Progress>;
    fn claim(consumer: &str, claims: &[DedupClaim], now: SystemTime) -> Vec<ClaimOutcome>;
    fn commit_batch(key: &ConsumerShard, commits: &[UnitCommit]) -> Vec<CommitOutcome>;
});

forward!(LineageStore {
    fn write_lineage(key: &ConsumerShard, lineage: &Lineage) -> ();
    fn write_shard_end(key: &ConsumerShard, children: &[String]) -> ();
});

forward!(QuarantineStore {
    fn list_quarantined(consumer: &str) -> Vec<QuarantinedRecord>;
    fn claim_replay(consumer: &str, key: &QuarantineKey, now_ms: u64, take_over_before: Option<u64>) -> bool;
    fn requeue(consumer: &str, key: &QuarantineKey, reason: QuarantineReason, detail: &str, attempts: u32) -> ();
    fn remove_quarantined(consumer: &str, key: &QuarantineKey) -> bool;
});

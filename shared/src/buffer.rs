//! Per-shard buffers for handlers that collect records in
//! [`Handler::handle`](crate::Handler::handle) and write them in
//! [`Handler::flush`](crate::Handler::flush) (a fan-out, a "latest value per
//! key" writer). One process may run batches of several shards, and on Lambda
//! Managed Instances several batches at once, of one shard too (its slots
//! with `ParallelizationFactor` above 1, or a redelivery beside the batch it
//! repeats): each batch the engine runs has a buffer of its own, kept by shard
//! and by that batch (a task-local scope the engine opens around `begin`,
//! `handle` and `flush`). [`ShardBuffers::begin`] empties it at the start of
//! a batch, so nothing an invocation left before its flush failed leaks into
//! the next. Call it from `begin`, `handle` and `flush` themselves, not from a
//! task they spawn (outside the batch's scope all batches of a shard share one
//! buffer).
//!
//! ```
//! use std::sync::Arc;
//! use shardline::buffer::ShardBuffers;
//! use shardline::ShardRef;
//!
//! let shard = ShardRef { stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"), shard_id: Arc::from("shardId-0") };
//! let buffers: ShardBuffers<Vec<u32>> = ShardBuffers::default();
//! buffers.begin(&shard);
//! buffers.with(&shard, |b| b.push(7));
//! assert_eq!(buffers.take(&shard), [7]);
//! assert!(buffers.take(&shard).is_empty());
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::record::ShardRef;

tokio::task_local! {
    /// The batch the current task runs (see [`in_batch`]).
    static BATCH: u64;
}

/// Runs `batch` (a batch's `begin`, handler calls and flush) as one batch:
/// buffers of [`ShardBuffers`] touched inside it are its own.
pub(crate) async fn in_batch<F: Future>(batch: F) -> F::Output {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    BATCH
        .scope(NEXT.fetch_add(1, Ordering::Relaxed), batch)
        .await
}

/// The batch of the current task; 0 outside any.
fn current_batch() -> u64 {
    BATCH.try_with(|batch| *batch).unwrap_or(0)
}

/// One buffer of type `B` per shard and batch.
#[derive(Debug)]
pub struct ShardBuffers<B> {
    buffers: Mutex<HashMap<(ShardRef, u64), B>>,
}

impl<B> Default for ShardBuffers<B> {
    fn default() -> Self {
        ShardBuffers {
            buffers: Mutex::new(HashMap::new()),
        }
    }
}

impl<B: Default> ShardBuffers<B> {
    fn lock(&self) -> MutexGuard<'_, HashMap<(ShardRef, u64), B>> {
        // A panic while holding the lock leaves at worst a partly filled
        // buffer, which `begin` of the retried batch empties.
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `shard`'s batch with an empty buffer.
    pub fn begin(&self, shard: &ShardRef) {
        self.lock()
            .insert((shard.clone(), current_batch()), B::default());
    }

    /// Changes `shard`'s buffer (of the current batch) with `change`.
    pub fn with<T>(&self, shard: &ShardRef, change: impl FnOnce(&mut B) -> T) -> T {
        change(
            self.lock()
                .entry((shard.clone(), current_batch()))
                .or_default(),
        )
    }

    /// Takes `shard`'s buffer (of the current batch), leaving none.
    pub fn take(&self, shard: &ShardRef) -> B {
        self.lock()
            .remove(&(shard.clone(), current_batch()))
            .unwrap_or_default()
    }
}

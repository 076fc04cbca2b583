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
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::record::ShardRef;

tokio::task_local! {
    /// The batch the current task runs (see [`in_batch`]); it ends when the
    /// last clone of the `Arc` goes, with the scope.
    static BATCH: Arc<u64>;
}

/// Runs `batch` (a batch's `begin`, handler calls and flush) as one batch:
/// buffers of [`ShardBuffers`] touched inside it are its own.
pub(crate) async fn in_batch<F: Future>(batch: F) -> F::Output {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = Arc::new(NEXT.fetch_add(1, Ordering::Relaxed));
    BATCH.scope(id, batch).await
}

/// The batch of the current task, and a handle that dies with it; 0 and a
/// dead handle outside any.
fn current_batch() -> (u64, Weak<u64>) {
    BATCH
        .try_with(|batch| (**batch, Arc::downgrade(batch)))
        .unwrap_or((0, Weak::new()))
}

/// Warns, once a process, that a buffer was filled outside the engine's
/// batch scope (from a task a handler spawned, say): its flush, inside the
/// scope, will not find those records.
fn outside_a_batch(shard: &ShardRef) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            shard = %shard.shard_id,
            "ShardBuffers::with called outside the batch the engine runs (from a spawned \
             task?): the batch's flush will not see these records; call it from handle itself"
        );
    });
}

/// One batch's buffer, and whether that batch still runs.
#[derive(Debug)]
struct Slot<B> {
    buffer: B,
    batch: Weak<u64>,
}

/// One buffer of type `B` per shard and batch.
#[derive(Debug)]
pub struct ShardBuffers<B> {
    buffers: Mutex<HashMap<(ShardRef, u64), Slot<B>>>,
}

impl<B> Default for ShardBuffers<B> {
    fn default() -> Self {
        ShardBuffers {
            buffers: Mutex::new(HashMap::new()),
        }
    }
}

impl<B: Default> ShardBuffers<B> {
    fn lock(&self) -> MutexGuard<'_, HashMap<(ShardRef, u64), Slot<B>>> {
        // A panic while holding the lock leaves at worst a partly filled
        // buffer, which `begin` of the retried batch empties.
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `shard`'s batch with an empty buffer. Buffers of batches that
    /// have ended without being taken (a flush that returned early) go too,
    /// so they do not pile up in a warm process.
    pub fn begin(&self, shard: &ShardRef) {
        let (id, batch) = current_batch();
        let mut buffers = self.lock();
        buffers.retain(|(_, of), slot| *of == 0 || slot.batch.strong_count() > 0);
        buffers.insert(
            (shard.clone(), id),
            Slot {
                buffer: B::default(),
                batch,
            },
        );
    }

    /// Changes `shard`'s buffer (of the current batch) with `change`.
    pub fn with<T>(&self, shard: &ShardRef, change: impl FnOnce(&mut B) -> T) -> T {
        let (id, batch) = current_batch();
        if id == 0 {
            outside_a_batch(shard);
        }
        let mut buffers = self.lock();
        let slot = buffers.entry((shard.clone(), id)).or_insert_with(|| Slot {
            buffer: B::default(),
            batch,
        });
        change(&mut slot.buffer)
    }

    /// Takes `shard`'s buffer (of the current batch), leaving none.
    pub fn take(&self, shard: &ShardRef) -> B {
        self.lock()
            .remove(&(shard.clone(), current_batch().0))
            .map(|slot| slot.buffer)
            .unwrap_or_default()
    }

    /// How many buffers are held, taken ones not counted.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str) -> ShardRef {
        ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"),
            shard_id: Arc::from(id),
        }
    }

    #[tokio::test]
    async fn batches_of_one_shard_at_once_keep_their_own_buffers() {
        let buffers: ShardBuffers<Vec<u32>> = ShardBuffers::default();
        let s = shard("shardId-0");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = in_batch(async {
            buffers.begin(&s);
            buffers.with(&s, |b| b.push(1));
            rx.await.unwrap();
            buffers.take(&s)
        });
        let second = in_batch(async {
            buffers.begin(&s);
            buffers.with(&s, |b| b.push(2));
            tx.send(()).unwrap();
            buffers.take(&s)
        });
        let (first, second) = tokio::join!(first, second);
        assert_eq!((first, second), (vec![1], vec![2]));
    }

    #[tokio::test]
    async fn a_buffer_its_batch_never_took_goes_at_the_next_begin() {
        let buffers: ShardBuffers<Vec<u32>> = ShardBuffers::default();
        let s = shard("shardId-0");
        for n in 0..100 {
            in_batch(async {
                buffers.begin(&s);
                buffers.with(&s, |b| b.push(n));
                // a flush that returns before it takes the buffer
            })
            .await;
        }
        assert_eq!(buffers.held(), 1, "only the last batch's");
        in_batch(async { buffers.begin(&shard("shardId-1")) }).await;
        assert_eq!(buffers.held(), 1);
    }
}

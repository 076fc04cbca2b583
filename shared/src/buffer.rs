//! Per-shard buffers for handlers that collect records in
//! [`Handler::handle`](crate::Handler::handle) and write them in
//! [`Handler::flush`](crate::Handler::flush) (a fan-out, a "latest value per
//! key" writer). One process may run batches of several shards, so each shard
//! has its own buffer; [`ShardBuffers::begin`] empties it at the start of a
//! batch, so nothing an invocation left before its flush failed leaks into the next.
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
use std::sync::{Mutex, MutexGuard};

use crate::record::ShardRef;

/// One buffer of type `B` per shard.
#[derive(Debug)]
pub struct ShardBuffers<B> {
    buffers: Mutex<HashMap<ShardRef, B>>,
}

impl<B> Default for ShardBuffers<B> {
    fn default() -> Self {
        ShardBuffers {
            buffers: Mutex::new(HashMap::new()),
        }
    }
}

impl<B: Default> ShardBuffers<B> {
    fn lock(&self) -> MutexGuard<'_, HashMap<ShardRef, B>> {
        // A panic while holding the lock leaves at worst a partly filled
        // buffer, which `begin` of the retried batch empties.
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `shard`'s batch with an empty buffer.
    pub fn begin(&self, shard: &ShardRef) {
        self.lock().insert(shard.clone(), B::default());
    }

    /// Changes `shard`'s buffer with `change`.
    pub fn with<T>(&self, shard: &ShardRef, change: impl FnOnce(&mut B) -> T) -> T {
        change(self.lock().entry(shard.clone()).or_default())
    }

    /// Takes `shard`'s buffer, leaving none.
    pub fn take(&self, shard: &ShardRef) -> B {
        self.lock().remove(shard).unwrap_or_default()
    }
}

//! [`FanOut`]: a ready handler that copies every record to N destinations.
//!
//! Records are buffered by `handle` and delivered in `flush`, once per batch,
//! to all destinations at once. What each destination received is kept in
//! Shardline's state ([`Delivered`] ranges per shard and destination): when one
//! destination fails and Lambda retries the batch, the others are not written
//! again. A record larger than a destination takes is quarantined by the engine
//! (with its payload), never dropped and never half sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::task::JoinSet;

use super::{Delivered, OutRecord, SendOutcome, Sink};
use crate::handler::{Batch, BoxError, Handler, HandlerError};
use crate::record::{Position, Record, ShardRef};
use crate::state::ShardKey;

/// Where the records of a stream go.
#[async_trait]
pub trait Destinations: Send + Sync {
    /// The destinations of records read from `stream_arn`.
    ///
    /// # Errors
    /// A boxed error when the destinations cannot be looked up (the batch is retried).
    async fn for_stream(&self, stream_arn: &str) -> Result<Vec<Arc<dyn Sink>>, BoxError>;
}

/// The same destinations for every stream.
#[derive(Debug, Clone)]
pub struct StaticDestinations(pub Vec<Arc<dyn Sink>>);

#[async_trait]
impl Destinations for StaticDestinations {
    async fn for_stream(&self, _: &str) -> Result<Vec<Arc<dyn Sink>>, BoxError> {
        Ok(self.0.clone())
    }
}

/// Copies every record to every destination; see the module docs.
pub struct FanOut {
    destinations: Arc<dyn Destinations>,
    max_record_bytes: usize,
    buffers: Mutex<HashMap<ShardRef, Vec<OutRecord>>>,
    requests: AtomicU64,
    retried_entries: AtomicU64,
}

impl FanOut {
    /// A fan-out to `destinations`, refusing records over `max_record_bytes`
    /// (payload plus partition key; the smallest limit of the destinations).
    pub fn new(destinations: impl Destinations + 'static, max_record_bytes: usize) -> Self {
        FanOut {
            destinations: Arc::new(destinations),
            max_record_bytes,
            buffers: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            retried_entries: AtomicU64::new(0),
        }
    }

    /// Requests made to destinations since start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Entries sent again after failing, since start.
    pub fn retried_entries(&self) -> u64 {
        self.retried_entries.load(Ordering::Relaxed)
    }

    fn buffers(&self) -> std::sync::MutexGuard<'_, HashMap<ShardRef, Vec<OutRecord>>> {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Handler for FanOut {
    async fn begin(&self, batch: &Batch<'_>) {
        self.buffers().insert(batch.shard().clone(), Vec::new());
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let out = OutRecord::copy_of(record);
        if out.size() > self.max_record_bytes {
            return Err(HandlerError::permanent(format!(
                "record is {} bytes with its partition key, over the {} bytes a destination takes",
                out.size(),
                self.max_record_bytes
            )));
        }
        self.buffers()
            .entry(record.shard.clone())
            .or_default()
            .push(out);
        Ok(())
    }

    async fn flush(&self, batch: &Batch<'_>) -> Result<(), HandlerError> {
        let records = self.buffers().remove(batch.shard()).unwrap_or_default();
        if records.is_empty() {
            return Ok(());
        }
        let sinks = self
            .destinations
            .for_stream(&batch.shard().stream_arn)
            .await
            .map_err(HandlerError::retryable)?;
        let names: Vec<String> = sinks.iter().map(|s| s.destination().to_owned()).collect();
        let key = ShardKey {
            consumer: batch.consumer().to_owned(),
            shard: batch.shard().clone(),
        };
        let stored = batch.store().load_sink_progress(&key, &names).await?;
        let positions: Vec<Position> = records.iter().map(|r| r.source.clone()).collect();

        let mut sends = JoinSet::new();
        for (slot, sink) in sinks.iter().enumerate() {
            let before = stored
                .get(sink.destination())
                .and_then(|text| Delivered::from_text(text))
                .unwrap_or_default();
            let todo: Vec<usize> = (0..records.len())
                .filter(|&i| !before.contains(&positions[i]))
                .collect();
            let subset: Vec<OutRecord> = todo.iter().map(|&i| records[i].clone()).collect();
            let (sink, deadline) = (sink.clone(), batch.deadline());
            sends.spawn(async move {
                let outcome = if subset.is_empty() {
                    SendOutcome::default()
                } else {
                    sink.send(&subset, deadline).await
                };
                (slot, before, todo, outcome)
            });
        }

        let mut progress = Vec::with_capacity(sinks.len());
        let mut failures = Vec::new();
        while let Some(joined) = sends.join_next().await {
            let (slot, before, todo, outcome) = joined
                .map_err(|e| HandlerError::retryable(format!("a destination task failed: {e}")))?;
            self.requests.fetch_add(outcome.requests, Ordering::Relaxed);
            self.retried_entries
                .fetch_add(outcome.retried_entries, Ordering::Relaxed);
            crate::metrics::add_count("FanoutRequests", outcome.requests);
            crate::metrics::add_count("FanoutRetries", outcome.retried_entries);
            let mut now = vec![false; records.len()];
            for (&index, delivered) in todo.iter().zip(&outcome.delivered) {
                now[index] = *delivered;
            }
            let after = before.after_batch(&positions, |i| now[i]);
            progress.push((names[slot].clone(), after.to_text()));
            if !outcome.is_complete() {
                let reason = outcome.error.map_or_else(
                    || "not every record was delivered".to_owned(),
                    |e| e.to_string(),
                );
                failures.push(reason);
            }
        }
        batch.store().save_sink_progress(&key, &progress).await?;
        if failures.is_empty() {
            return Ok(());
        }
        Err(HandlerError::retryable(format!(
            "fan-out incomplete; the batch will be retried and delivered destinations \
             are not written again: {}",
            failures.join("; ")
        )))
    }
}

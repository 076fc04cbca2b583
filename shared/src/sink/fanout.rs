//! [`FanOut`]: a ready handler that copies every record to N destinations.
//!
//! Records are checked by `handle` (a record Kinesis would refuse is
//! quarantined at once, with its payload) and buffered; `flush` delivers them,
//! once per batch, to all destinations at once. What each destination received
//! is noted in [`Batch::deliveries`] and kept with the checkpoint in
//! Shardline's state, so when one destination fails and Lambda retries the
//! batch, the others are not written again. A record not delivered everywhere
//! counts an attempt against it, so a destination that keeps failing sends its
//! records to the quarantine instead of blocking the shard forever.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::{OutRecord, SendOutcome, Sink, validate};
use crate::buffer::ShardBuffers;
use crate::error::BoxError;
use crate::handler::{Batch, FlushError, Handler, HandlerError, RecordFailure};
use crate::record::Record;
use crate::time::Instant;

/// The least time a flush is given after one ran out of time.
pub const STARVED_FLUSH_RESERVE: Duration = Duration::from_secs(1);

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
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use shardline::sink::{FanOut, Sink, StaticDestinations, file::FileSink};
/// use shardline::sample::{SampleRecord, event_bytes};
/// use shardline::state::EmbeddedStore;
/// use shardline::{Deadline, EngineConfig, process_event};
///
/// let dir = std::env::temp_dir().join(format!("doc-fanout-{}", std::process::id()));
/// let sinks: Vec<Arc<dyn Sink>> = ["a", "b"]
///     .iter()
///     .map(|name| Arc::new(FileSink::new(*name, dir.join(format!("{name}.jsonl")))) as Arc<dyn Sink>)
///     .collect();
/// let fanout = FanOut::new(StaticDestinations(sinks), 1024 * 1024);
/// let store = EmbeddedStore::open(&dir).unwrap();
/// let event = event_bytes(&[SampleRecord::new("1", b"hello"), SampleRecord::new("2", b"world")]);
/// let decoded = shardline::decode::decode_event(&event).unwrap();
/// let config = EngineConfig::new("copy");
/// let outcome = process_event(decoded, &fanout, &store, &config, Deadline::none()).await.unwrap();
/// assert!(outcome.response.is_success());
/// assert_eq!(std::fs::read_to_string(dir.join("b.jsonl")).unwrap().lines().count(), 2);
/// # let _ = std::fs::remove_dir_all(dir); }
/// ```
pub struct FanOut {
    destinations: Arc<dyn Destinations>,
    max_record_bytes: usize,
    buffers: ShardBuffers<Vec<OutRecord>>,
    requests: AtomicU64,
    retried_entries: AtomicU64,
    given_up: AtomicU64,
    /// The time the next flush is given, in microseconds ([`Handler::flush_time`]).
    flush_reserve: AtomicU64,
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl FanOut {
    /// A fan-out to `destinations`, refusing records over `max_record_bytes`
    /// (payload plus partition key; the smallest limit of the destinations).
    pub fn new(destinations: impl Destinations + 'static, max_record_bytes: usize) -> Self {
        FanOut {
            destinations: Arc::new(destinations),
            max_record_bytes,
            buffers: ShardBuffers::default(),
            requests: AtomicU64::new(0),
            retried_entries: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
            flush_reserve: AtomicU64::new(0),
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

    /// Records sent in requests given up on at a deadline, since start: they
    /// may have been written, so a retry may write them twice
    /// (`FanoutGivenUp`).
    pub fn given_up(&self) -> u64 {
        self.given_up.load(Ordering::Relaxed)
    }
}

impl Handler for FanOut {
    async fn begin(&self, batch: &Batch<'_>) {
        self.buffers.begin(batch.shard());
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let out = OutRecord::copy_of(record);
        validate(&out, self.max_record_bytes).map_err(HandlerError::permanent)?;
        self.buffers.with(&record.shard, |buffer| buffer.push(out));
        Ok(())
    }

    fn flush_time(&self) -> Duration {
        Duration::from_micros(self.flush_reserve.load(Ordering::Relaxed))
    }

    async fn flush(&self, batch: &Batch<'_>) -> Result<(), FlushError> {
        let records = self.buffers.take(batch.shard());
        if records.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let flushed = self.deliver(records, batch).await;
        let took = started.elapsed();
        let starved = matches!(&flushed, Err(FlushError::Records(failures))
            if failures.iter().any(|f| !f.error.counts_attempt()));
        self.reserve_for_next_flush(took, starved);
        flushed
    }
}

impl FanOut {
    /// Delivers a batch's records to every destination (the flush).
    async fn deliver(
        &self,
        mut records: Vec<OutRecord>,
        batch: &Batch<'_>,
    ) -> Result<(), FlushError> {
        // In source order: with in-batch concurrency `handle` calls finish in
        // any order, and a user key of a KPL source can sit in aggregates of
        // different outer keys (different lanes), so completion order is not
        // the key's order.
        if !records.is_sorted_by(|a, b| a.source <= b.source) {
            records.sort_by(|a, b| a.source.cmp(&b.source));
        }
        let sinks = self
            .destinations
            .for_stream(&batch.shard().stream_arn)
            .await
            .map_err(HandlerError::retryable)?;
        let deliveries = batch.deliveries();
        let mut sends = JoinSet::new();
        for (slot, sink) in sinks.iter().enumerate() {
            let todo: Vec<usize> = (0..records.len())
                .filter(|&i| !deliveries.holds(sink.destination(), &records[i].source))
                .collect();
            let subset: Vec<OutRecord> = todo.iter().map(|&i| records[i].clone()).collect();
            let (sink, deadline) = (sink.clone(), batch.deadline());
            // In the invocation's log span: a sink's warnings name its batch.
            sends.spawn(
                async move {
                    let outcome = if subset.is_empty() {
                        SendOutcome::default()
                    } else {
                        sink.send(&subset, deadline).await
                    };
                    (slot, todo, outcome)
                }
                .in_current_span(),
            );
        }
        // Per record: why it is not delivered everywhere, if so.
        let mut failed: HashMap<usize, HandlerError> = HashMap::new();
        let mut answered = vec![false; sinks.len()];
        while let Some(joined) = sends.join_next().await {
            let Ok((slot, todo, outcome)) = joined else {
                continue;
            };
            answered[slot] = true;
            self.note_sent(
                sinks[slot].destination(),
                &records,
                &todo,
                outcome,
                batch,
                &mut failed,
            );
        }
        let unanswered = sinks.iter().zip(&answered).filter(|(_, a)| !**a);
        for (sink, _) in unanswered {
            Self::unanswered(sink.destination(), &records, batch, &mut failed);
        }
        if failed.is_empty() {
            return Ok(());
        }
        let mut failures: Vec<RecordFailure> = failed
            .into_iter()
            .map(|(i, error)| RecordFailure {
                position: records[i].source.clone(),
                error,
            })
            .collect();
        failures.sort_by(|a, b| a.position.cmp(&b.position));
        Err(FlushError::Records(failures))
    }

    /// A destination whose delivery task failed: every record it did not
    /// hold before fails (retryable).
    fn unanswered(
        destination: &str,
        records: &[OutRecord],
        batch: &Batch<'_>,
        failed: &mut HashMap<usize, HandlerError>,
    ) {
        let reason = format!("the delivery task of destination {destination} failed");
        tracing::error!(destination, "{reason}");
        for (i, record) in records.iter().enumerate() {
            if !batch.deliveries().holds(destination, &record.source) {
                failed
                    .entry(i)
                    .or_insert_with(|| HandlerError::retryable(reason.clone()));
            }
        }
    }

    /// The time the next flush is given: the slowest flush seen; after a
    /// flush whose time ran out before it tried every record, twice what it
    /// had (at least [`STARVED_FLUSH_RESERVE`]), so the engine stops starting
    /// records earlier and the flush gets its time.
    fn reserve_for_next_flush(&self, took: Duration, starved: bool) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let wanted = if starved {
            let had = self.flush_reserve.load(Ordering::Relaxed).max(micros(took));
            had.saturating_mul(2).max(micros(STARVED_FLUSH_RESERVE))
        } else {
            micros(took)
        };
        self.flush_reserve.fetch_max(wanted, Ordering::Relaxed);
    }

    /// Notes what one destination received and what it did not, and why.
    fn note_sent(
        &self,
        destination: &str,
        records: &[OutRecord],
        todo: &[usize],
        outcome: SendOutcome,
        batch: &Batch<'_>,
        failed: &mut HashMap<usize, HandlerError>,
    ) {
        self.requests.fetch_add(outcome.requests, Ordering::Relaxed);
        self.retried_entries
            .fetch_add(outcome.retried_entries, Ordering::Relaxed);
        let given_up = outcome.counts.get("FanoutGivenUp").copied();
        self.given_up
            .fetch_add(given_up.unwrap_or(0), Ordering::Relaxed);
        batch.add_count("FanoutRequests", outcome.requests);
        batch.add_count("FanoutRetries", outcome.retried_entries);
        for (name, value) in &outcome.counts {
            batch.add_count(name, *value);
        }
        for (&index, delivered) in todo.iter().zip(&outcome.delivered) {
            if *delivered {
                batch.deliveries().note(destination, &records[index].source);
            }
        }
        for (at, reason) in &outcome.rejected {
            // Refused for what it is: quarantined, whatever the others did.
            failed.insert(todo[*at], HandlerError::permanent(reason.clone()));
        }
        let why = outcome.error.map_or_else(
            || format!("destination {destination}: not delivered"),
            |e| e.to_string(),
        );
        let not_tried: HashSet<usize> = outcome.not_tried.iter().copied().collect();
        for (at, (&index, delivered)) in todo.iter().zip(&outcome.delivered).enumerate() {
            if *delivered {
                continue;
            }
            // A record the sink had no time to send is not its fault; a
            // failure at another destination still counts.
            let error = if not_tried.contains(&at) {
                HandlerError::out_of_time(format!(
                    "destination {destination}: not sent, the invocation's time ran out"
                ))
            } else {
                HandlerError::retryable(why.clone())
            };
            match failed.entry(index) {
                Entry::Vacant(slot) => {
                    slot.insert(error);
                }
                Entry::Occupied(mut slot) => {
                    if !slot.get().counts_attempt() && error.counts_attempt() {
                        slot.insert(error);
                    }
                }
            }
        }
    }
}

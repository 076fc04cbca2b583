//! The user handler: per-record business logic and how it reports failure.
//!
//! A handler returns `Ok(())`, a retryable [`HandlerError`] (the record is tried
//! again on Lambda's retry; with `?` on any error type this is the default) or a
//! permanent one (the record goes to the quarantine at once).

use std::fmt;
use std::future::Future;

mod guarded;

pub(crate) use guarded::{Guarded, guarded};

pub use crate::error::BoxError;
use crate::metrics::Counts;
pub use crate::progress::Deliveries;
use crate::record::{Position, Record, ShardRef};
use crate::time::Deadline;

/// Whether a failed record is worth trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A passing fault (a timeout, a throttle, an earlier record not there yet):
    /// processing of the shard (of the key, with in-batch concurrency or per-key
    /// progress) stops here and Lambda retries from this record.
    /// After `SHARDLINE_MAX_ATTEMPTS` attempts the record is quarantined.
    Retryable,
    /// The record itself is bad and retrying cannot help: it is quarantined with
    /// its payload and processing goes on.
    Permanent,
}

/// Why a handler did not process a record.
///
/// `?` turns any `std::error::Error` into a retryable failure, as Powertools
/// treats any exception. Say [`HandlerError::permanent`] for a record that can
/// never succeed.
///
/// ```
/// use shardline::{HandlerError, FailureKind};
/// let e = HandlerError::permanent("amount is not a number");
/// assert_eq!(e.kind(), FailureKind::Permanent);
/// let io: HandlerError = std::io::Error::other("connection reset").into();
/// assert_eq!(io.kind(), FailureKind::Retryable);
/// ```
pub struct HandlerError {
    kind: FailureKind,
    source: BoxError,
    /// Whether it counts an attempt against the record.
    counts_attempt: bool,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        HandlerError {
            kind: FailureKind::Retryable,
            source: source.into(),
            counts_attempt: true,
        }
    }

    /// A failure no retry can mend: the record goes to the quarantine.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        HandlerError {
            kind: FailureKind::Permanent,
            source: source.into(),
            counts_attempt: true,
        }
    }

    /// The record was not done for lack of time (a flush whose time ran out
    /// before it tried the record): retryable, and no attempt counts against
    /// the record, as for a record not started.
    ///
    /// ```
    /// use shardline::{FailureKind, HandlerError};
    /// let e = HandlerError::out_of_time("no time left to send it");
    /// assert_eq!(e.kind(), FailureKind::Retryable);
    /// assert!(!e.counts_attempt());
    /// assert!(HandlerError::retryable("busy").counts_attempt());
    /// ```
    pub fn out_of_time(source: impl Into<BoxError>) -> Self {
        HandlerError {
            kind: FailureKind::Retryable,
            source: source.into(),
            counts_attempt: false,
        }
    }

    /// Retryable or permanent.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Whether the failure counts an attempt against the record (all do but
    /// [`HandlerError::out_of_time`]).
    pub fn counts_attempt(&self) -> bool {
        self.counts_attempt
    }

    /// The same failure for another record: same kind, same message.
    pub(crate) fn again(&self) -> HandlerError {
        HandlerError {
            kind: self.kind,
            source: self.to_string().into(),
            counts_attempt: self.counts_attempt,
        }
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The underlying error, owned (to carry it as the source of another error).
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

/// `?` on any error a handler meets is a retryable failure: every
/// `std::error::Error + Send + Sync`, a `Box<dyn Error + Send + Sync>`, an
/// `anyhow::Error`, a `String` or a `&str` (what converts into a
/// [`BoxError`]). A permanent failure is always said with
/// [`HandlerError::permanent`].
///
/// ```
/// use shardline::{FailureKind, HandlerError};
/// fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     Err("the database is busy".into())
/// }
/// fn handle() -> Result<(), HandlerError> {
///     boxed()?;
///     Ok(())
/// }
/// assert_eq!(handle().unwrap_err().kind(), FailureKind::Retryable);
/// ```
impl<E> From<E> for HandlerError
where
    E: Into<BoxError>,
{
    fn from(error: E) -> Self {
        HandlerError::retryable(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)?;
        let mut cause = self.source.source();
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

/// Per-record business logic.
///
/// Implement it on a struct that holds your clients and configuration:
///
/// ```
/// use shardline::{Handler, HandlerError, Record};
///
/// struct Printer { prefix: String }
///
/// impl Handler for Printer {
///     async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
///         let text = record.text().ok_or_else(|| HandlerError::permanent("payload is not UTF-8"))?;
///         println!("{}{text}", self.prefix);
///         Ok(())
///     }
/// }
/// ```
///
/// or wrap a closure with [`handler_fn`].
///
/// # One handler, shared by every invocation
///
/// A function process builds its handler once and calls it through `&self`
/// for every batch. On Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY`
/// above 1) that means several invocations at once, on several threads
/// ([Rust on Lambda Managed Instances](https://docs.aws.amazon.com/lambda/latest/dg/lambda-managed-instances-rust.html)).
/// So a handler is `Send + Sync`: state it changes sits behind a `Mutex`, an
/// atomic or a client that is itself shareable, and what belongs to one batch
/// goes in [`ShardBuffers`](crate::buffer::ShardBuffers) (a buffer per batch)
/// or in the [`Batch`] that [`Handler::begin`] and [`Handler::flush`] get.
/// A handler that is not `Sync` is refused when it is compiled, not found out
/// in production:
///
/// ```compile_fail,E0277
/// use std::cell::RefCell;
/// use shardline::{Handler, HandlerError, Record};
///
/// struct Count(RefCell<u64>); // not Sync: two invocations could change it at once
///
/// impl Handler for Count {
///     async fn handle(&self, _: &Record) -> Result<(), HandlerError> {
///         *self.0.borrow_mut() += 1;
///         Ok(())
///     }
/// }
/// ```
///
/// The same count, shareable:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use shardline::{Handler, HandlerError, Record};
///
/// struct Count(AtomicU64);
///
/// impl Handler for Count {
///     async fn handle(&self, _: &Record) -> Result<(), HandlerError> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Processes one record. Records of one partition key arrive one at a
    /// time, in order; with [`crate::App::concurrency`] above 1, records of
    /// different keys arrive at once (on one task), else a shard's records
    /// arrive one at a time.
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// How long [`Handler::flush`] may take: the engine stops starting records
    /// this long (besides the time kept back for the commit) before the
    /// invocation's end, so the flush gets its time. A buffering handler says
    /// the slowest flush it has seen; the default, nothing, suits a handler
    /// that does not buffer.
    fn flush_time(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Called once per shard before its records (after the parent-shard guard):
    /// a buffering handler starts an empty buffer here, so nothing left by an
    /// invocation that failed before its flush leaks into this batch.
    fn begin(&self, batch: &Batch<'_>) -> impl Future<Output = ()> + Send {
        let _ = batch;
        std::future::ready(())
    }

    /// Called once per shard after its records, before the checkpoint is written:
    /// a handler that buffers (keeps the latest value per key, batches its
    /// writes, fans records out) writes here, within [`Batch::deadline`].
    ///
    /// A record is done only once `handle` succeeded and the flush did not name
    /// it in a [`FlushError`]. A failed record counts an attempt, like a failed
    /// `handle`: Lambda retries from it, and after `SHARDLINE_MAX_ATTEMPTS` it is
    /// quarantined (at once for a permanent error). What `handle` buffered for
    /// records after it is handed over again on the retry, so it must be safe to
    /// apply again; [`Batch::deliveries`] remembers, per destination, what was
    /// already written.
    fn flush(&self, batch: &Batch<'_>) -> impl Future<Output = Result<(), FlushError>> + Send {
        let _ = batch;
        std::future::ready(Ok(()))
    }
}

/// Why a flush did not write everything.
///
/// `?` on a [`HandlerError`] (or any error, as retryable) gives
/// [`FlushError::Batch`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FlushError {
    /// Nothing of the batch can be known written. A retryable error counts an
    /// attempt against the first record of each unit (the shard, or each
    /// partition key in per-key mode) still waiting; a permanent one
    /// quarantines every record the flush held.
    Batch(HandlerError),
    /// These records were not written; every other record was.
    Records(Vec<RecordFailure>),
}

/// One record a flush could not write, and why.
#[derive(Debug)]
pub struct RecordFailure {
    /// The record.
    pub position: Position,
    /// Why: retryable (counted as an attempt) or permanent (quarantined).
    pub error: HandlerError,
}

impl<E: Into<HandlerError>> From<E> for FlushError {
    fn from(error: E) -> Self {
        FlushError::Batch(error.into())
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Batch(error) => write!(f, "flush failed: {error}"),
            FlushError::Records(failures) => {
                write!(f, "{} records not written", failures.len())?;
                if let Some(first) = failures.first() {
                    write!(f, " (first {}: {})", first.position, first.error)?;
                }
                Ok(())
            }
        }
    }
}

/// What the flush of one batch knows: its shard, its deadline, and what each
/// destination already holds.
#[derive(Debug)]
pub struct Batch<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) shard: &'a ShardRef,
    pub(crate) deadline: Deadline,
    pub(crate) deliveries: &'a Deliveries,
    pub(crate) counts: &'a Counts,
}

impl<'a> Batch<'a> {
    /// Adds `value` to the count `name` of this batch, reported with its
    /// invocation's metrics line ([`BatchReport::counts`](crate::BatchReport)).
    pub fn add_count(&self, name: &'static str, value: u64) {
        self.counts.add(name, value);
    }

    /// The consumer's name (the key of its state).
    pub fn consumer(&self) -> &'a str {
        self.consumer
    }

    /// The shard whose records were handled.
    pub fn shard(&self) -> &'a ShardRef {
        self.shard
    }

    /// When the flush must be done: the invocation's deadline less the time kept
    /// back for the commit (`SHARDLINE_TIME_RESERVE_MS`).
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// What each destination already holds of this batch's records, and where
    /// to note what this flush wrote (kept in Shardline's state with the
    /// checkpoint, so a retry writes nothing twice).
    pub fn deliveries(&self) -> &'a Deliveries {
        self.deliveries
    }
}

/// A [`Handler`] made from a closure; see [`handler_fn`].
#[derive(Debug, Clone)]
pub struct HandlerFn<F>(F);

/// Makes a [`Handler`] from an async closure that takes the record by value.
///
/// ```
/// let handler = shardline::handler_fn(|record: shardline::Record| async move {
///     let _event: serde_json::Value = record.json().map_err(shardline::HandlerError::permanent)?;
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(Record) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    HandlerFn(f)
}

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(Record) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (self.0)(record.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn display_walks_the_cause_chain() {
        let e: HandlerError = Outer(std::io::Error::other("inner")).into();
        assert_eq!(e.to_string(), "outer: inner");
        assert_eq!(e.kind(), FailureKind::Retryable);
    }

    async fn save_boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("the table is busy".into())
    }

    async fn save_anyhow() -> anyhow::Result<()> {
        Err(anyhow::anyhow!("the table is busy")).map_err(|e| e.context("saving an order"))
    }

    async fn save_io() -> std::io::Result<()> {
        Err(std::io::Error::other("connection reset"))
    }

    /// What the README's example does: `?` on the common error types, in a
    /// handler, is a retryable failure (it did not compile for the boxed and
    /// the anyhow errors, which do not implement `std::error::Error`).
    #[tokio::test]
    async fn question_mark_on_common_errors_is_retryable() {
        async fn handle(which: u8) -> Result<(), HandlerError> {
            match which {
                0 => save_boxed().await?,
                1 => save_anyhow().await?,
                _ => save_io().await?,
            }
            Ok(())
        }
        for which in 0..3 {
            let error = handle(which).await.unwrap_err();
            assert_eq!(error.kind(), FailureKind::Retryable, "{error}");
            assert!(error.counts_attempt());
        }
        assert_eq!(
            handle(1).await.unwrap_err().to_string(),
            "saving an order: the table is busy"
        );
    }
}

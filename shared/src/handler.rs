//! The user handler: per-record business logic and how it reports failure.
//!
//! A handler returns `Ok(())`, a retryable [`HandlerError`] (the record is tried
//! again on Lambda's retry; with `?` on any error type this is the default) or a
//! permanent one (the record goes to the quarantine at once).

use std::fmt;
use std::future::Future;

use crate::engine::Deadline;
use crate::record::{Record, ShardRef};
use crate::state::StateStore;

/// A boxed error, as handlers and commands may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether a failed record is worth trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A passing fault (a timeout, a throttle, an earlier record not there yet):
    /// processing of the shard stops here and Lambda retries from this record.
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
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retryable(source: impl Into<BoxError>) -> Self {
        HandlerError {
            kind: FailureKind::Retryable,
            source: source.into(),
        }
    }

    /// A failure no retry can mend: the record goes to the quarantine.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        HandlerError {
            kind: FailureKind::Permanent,
            source: source.into(),
        }
    }

    /// Retryable or permanent.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The underlying error.
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl<E> From<E> for HandlerError
where
    E: std::error::Error + Send + Sync + 'static,
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
pub trait Handler: Send + Sync + 'static {
    /// Processes one record. Records of a shard arrive one at a time, in order.
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called once per shard before its records (after the parent-shard guard):
    /// a buffering handler starts an empty buffer here, so nothing left by an
    /// invocation that failed before its flush leaks into this batch.
    fn begin(&self, batch: &Batch<'_>) -> impl Future<Output = ()> + Send {
        let _ = batch;
        std::future::ready(())
    }

    /// Called once per shard after its records, before the checkpoint is written:
    /// a handler that buffers (keeps the latest value per key, batches its
    /// writes, fans records out) writes here. If it fails, nothing of the batch
    /// is checkpointed and Lambda retries the batch from its first record not yet
    /// done, so what `handle` buffered must be safe to apply again.
    fn flush(&self, batch: &Batch<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = batch;
        std::future::ready(Ok(()))
    }
}

/// What [`Handler::flush`] knows of the batch it ends.
pub struct Batch<'a> {
    pub(crate) consumer: &'a str,
    pub(crate) shard: &'a ShardRef,
    pub(crate) store: &'a dyn StateStore,
    pub(crate) deadline: Deadline,
}

impl<'a> Batch<'a> {
    /// The consumer's name (the key of its state).
    pub fn consumer(&self) -> &'a str {
        self.consumer
    }

    /// The shard whose records were handled.
    pub fn shard(&self) -> &'a ShardRef {
        self.shard
    }

    /// Shardline's state store, for handlers that keep progress of their own
    /// (the fan-out keeps what each destination has received).
    pub fn store(&self) -> &'a dyn StateStore {
        self.store
    }

    /// When the invocation must answer.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }
}

/// A [`Handler`] made from a closure; see [`handler_fn`].
#[derive(Clone)]
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
}

//! Tumbling windows: a typed state carried by Lambda from one invocation of a
//! window to the next, one call per record, one call when the window closes.
//!
//! With `TumblingWindowInSeconds` (1 to 900) on a Kinesis event source mapping,
//! Lambda cuts each shard's records into windows by their arrival time and
//! passes a `state` object between the invocations of one window (per shard,
//! at most 1 MB). Each response must carry the `state` to pass on: a response
//! without one is a failed invocation. The last invocation of a window has
//! `isFinalInvokeForWindow`; when the state grew too large Lambda ends the
//! window early (`isWindowTerminatedEarly`) and goes on with the same window
//! and a fresh state.
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-windows>)
//!
//! The event, as the AWS documentation shows it ([`decode_window_event`]):
//!
//! ```json
//! {"Records": [...],
//!  "window": {"start": "2020-12-09T07:04:00Z", "end": "2020-12-09T07:06:00Z"},
//!  "state": {"1": 282, "2": 715},
//!  "shardId": "shardId-000000000006",
//!  "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream",
//!  "isFinalInvokeForWindow": false,
//!  "isWindowTerminatedEarly": false}
//! ```
//!
//! and the response ([`WindowResponse`]):
//! `{"state": {"1": 282, "2": 715}, "batchItemFailures": []}`.
//!
//! A [`WindowHandler`] has a typed [`WindowHandler::State`] (any serde type that
//! serializes to a JSON object), folds each record into it with
//! [`WindowHandler::add`], and writes the window's result in
//! [`WindowHandler::close`] at the final invocation. Everything else of
//! Shardline holds inside a window: records of a shard run in order, a
//! retryable failure stops the shard there and the response names it in
//! `batchItemFailures`, a permanent failure (or an undecodable record, or one
//! out of attempts) goes to the quarantine and the window goes on without it.
//!
//! ## Retries and the state
//!
//! The state returned is always the state after exactly the records Lambda
//! will not send again: the records before the first one left for the retry,
//! in order, less the quarantined ones (done, but they add nothing). Lambda
//! checkpoints the same records
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>),
//! so the state and the checkpoint move together, and the retry folds the
//! remaining records into it. Lambda can only be told a KPL aggregate's
//! sequence number, and sends all of its user records again: a retry inside
//! an aggregate returns the state from before the aggregate. When the commit reads as superseded (another
//! invocation of the same records committed first, or this one's own write
//! landed unanswered), the state the invocation came with goes back with the
//! whole batch to retry, so no record is folded twice.
//!
//! A record quarantined by an invocation that then failed is handed over again
//! with the older state: if it goes well this time, it is folded, and it is
//! both in the window's result and in the quarantine (check before redriving
//! it; a windowed record cannot be replayed on its own).
//!
//! A failed invocation (an error, a timeout, a response without `state`) is
//! retried by Lambda with the state from before it. Shardline's own checkpoint
//! may already be past those records (its commit landed before the failure),
//! so a windowed function does not skip checkpointed records
//! ([`crate::skip::SkipRules::handle_checkpointed`]): they are folded into the
//! older state again, and nothing is counted twice or lost. For the same
//! reason records run one at a time per shard ([`crate::EngineConfig::concurrency`]
//! 1, progress per shard), and the mapping must keep `ParallelizationFactor` at 1:
//! the state is one per shard, so two batches of a shard at once would each
//! start from it. [`WindowHandler::close`] may run more than once for a window
//! (its invocation can fail after it), so it must write idempotently.
//!
//! ## Example
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use shardline::{App, HandlerError, Record};
//! use shardline::window::{WindowHandler, WindowInfo, Windowed};
//!
//! struct Counter;
//!
//! impl WindowHandler for Counter {
//!     type State = BTreeMap<String, u64>;
//!
//!     fn add(&self, state: &mut Self::State, record: &Record) -> Result<(), HandlerError> {
//!         *state.entry(record.partition_key.to_string()).or_default() += 1;
//!         Ok(())
//!     }
//!
//!     async fn close(&self, window: &WindowInfo, state: &Self::State) -> Result<(), HandlerError> {
//!         println!("{} to {}: {state:?}", window.start, window.end);
//!         Ok(())
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), shardline::Error> {
//!     App::new("counter", Windowed::new(Counter)).run().await
//! }
//! ```

mod error;
mod event;
mod response;
mod run;
mod state;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{WindowError, WindowEventError};
pub use event::{WindowEvent, WindowInfo, decode_window_event, decode_window_event_with};
pub use response::WindowResponse;
pub use run::{WindowOutcome, process_window_event, windowed_config};
pub use state::{STATE_MAX_BYTES, decode_state, encode_state};

use crate::handler::HandlerError;
use crate::record::Record;

/// Aggregation over a tumbling window: one call per record, one when the window closes.
///
/// See the [module documentation](self) for how the state moves between
/// invocations and through retries.
pub trait WindowHandler: Send + Sync + 'static {
    /// What the window's records add up to so far. It travels in the Lambda
    /// event and response as JSON, so it must serialize to a JSON object (a
    /// struct or a map) and stay under 1 MB ([`STATE_MAX_BYTES`]); a window's
    /// first invocation starts from `Default`.
    type State: Serialize + DeserializeOwned + Default + Send + Sync + 'static;

    /// Folds one record into the state. Records of a shard come one at a time,
    /// in order.
    ///
    /// A failed call must leave the state as it found it (check the record
    /// before changing the state): a retryable error stops the shard at this
    /// record and Lambda sends it again with the state returned now; a
    /// permanent one quarantines the record and the window goes on without it.
    ///
    /// # Errors
    /// [`HandlerError`], retryable or permanent, as for [`crate::Handler::handle`].
    fn add(&self, state: &mut Self::State, record: &Record) -> Result<(), HandlerError>;

    /// Called once the final invocation's records are all done
    /// (`isFinalInvokeForWindow`): writes the window's result. When the window
    /// was ended early ([`WindowInfo::terminated_early`]) the state holds only
    /// the records so far, and the same window is closed again, later, with the
    /// rest. It may run more than once for the same records (a failed
    /// invocation is retried whole), so its writes must be idempotent.
    ///
    /// # Errors
    /// Any [`HandlerError`] fails the invocation
    /// ([`WindowError::Close`]): Lambda retries it with the state from before it.
    fn close(
        &self,
        window: &WindowInfo,
        state: &Self::State,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A [`WindowHandler`] ready for [`crate::App`]: `App::new(name, Windowed::new(handler))`.
///
/// It dereferences to the handler, so a function's own commands
/// ([`crate::App::command`]) reach its methods.
///
/// ```
/// # use shardline::{HandlerError, Record};
/// # use shardline::window::{WindowHandler, WindowInfo, Windowed};
/// # struct Counter;
/// # impl WindowHandler for Counter {
/// #     type State = std::collections::BTreeMap<String, u64>;
/// #     fn add(&self, _: &mut Self::State, _: &Record) -> Result<(), HandlerError> { Ok(()) }
/// #     async fn close(&self, _: &WindowInfo, _: &Self::State) -> Result<(), HandlerError> { Ok(()) }
/// # }
/// let windowed = Windowed::new(Counter);
/// let _counter: &Counter = &windowed;
/// ```
#[derive(Debug)]
pub struct Windowed<W> {
    handler: Arc<W>,
}

impl<W: WindowHandler> Windowed<W> {
    /// Wraps `handler`.
    pub fn new(handler: W) -> Self {
        Windowed {
            handler: Arc::new(handler),
        }
    }

    /// The handler, shared.
    pub fn handler(&self) -> &Arc<W> {
        &self.handler
    }
}

impl<W> std::ops::Deref for Windowed<W> {
    type Target = W;

    fn deref(&self) -> &W {
        &self.handler
    }
}

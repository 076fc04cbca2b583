//! What [`App`](super::App) runs on each event: a record [`Handler`], or a
//! [`Windowed`] handler of tumbling windows. Both take the event's bytes and
//! give the response Lambda reads, a report, and the batch's range for the log.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;

use super::Error;
use super::lambda::BatchRange;
use crate::decode::{DecodeOptions, decode_event_with};
use crate::engine::{EngineConfig, process_event};
use crate::handler::{Handler, HandlerError};
use crate::record::Record;
use crate::report::BatchReport;
use crate::response::BatchResponse;
use crate::state::StateStore;
use crate::time::Deadline;
use crate::window::{
    WindowHandler, WindowResponse, Windowed, decode_window_event_with, process_window_event,
};

/// What one invocation needs besides the event.
pub struct Invocation<'a> {
    pub(crate) store: &'a dyn StateStore,
    pub(crate) config: &'a EngineConfig,
    pub(crate) deadline: Deadline,
    pub(crate) decode: &'a DecodeOptions,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("consumer", &self.config.consumer)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The response Lambda reads: a batch response, or a window's.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `{"batchItemFailures": [...]}`.
    Batch(BatchResponse),
    /// `{"state": {...}, "batchItemFailures": [...]}`.
    Window(WindowResponse),
}

/// What one invocation produced.
#[derive(Debug)]
pub struct InvocationOutput {
    pub(crate) response: Response,
    pub(crate) report: BatchReport,
    pub(crate) range: BatchRange,
}

/// What [`App`](super::App) runs: every [`Handler`] is one, and so is a
/// [`Windowed`] handler. Implemented by Shardline only.
pub trait InvocationHandler: Send + Sync + 'static {
    /// The handler `quarantine replay` runs quarantined records through.
    type Replay: Handler;

    /// Processes one event.
    #[doc(hidden)]
    fn consume(
        &self,
        body: Bytes,
        invocation: Invocation<'_>,
    ) -> impl Future<Output = Result<InvocationOutput, Error>> + Send;

    /// The handler for `quarantine replay`; `None` when records cannot be
    /// replayed on their own (a windowed record belongs to a closed window).
    #[doc(hidden)]
    fn replay_handler(&self) -> Option<&Self::Replay>;
}

impl<H: Handler> InvocationHandler for H {
    type Replay = H;

    async fn consume(
        &self,
        body: Bytes,
        invocation: Invocation<'_>,
    ) -> Result<InvocationOutput, Error> {
        let decoded = decode_event_with(&body, invocation.decode)?;
        drop(body);
        let range = BatchRange::of(&decoded);
        range.record_shard();
        // Boxed: the engine's future is large, and a debug build copies it
        // into every frame that wraps it (see `app::lambda::run`).
        let outcome = Box::pin(process_event(
            decoded,
            self,
            invocation.store,
            invocation.config,
            invocation.deadline,
        ))
        .await?;
        Ok(InvocationOutput {
            response: Response::Batch(outcome.response),
            report: outcome.report,
            range,
        })
    }

    fn replay_handler(&self) -> Option<&H> {
        Some(self)
    }
}

impl<W: WindowHandler> InvocationHandler for Windowed<W> {
    type Replay = NoReplay;

    async fn consume(
        &self,
        body: Bytes,
        invocation: Invocation<'_>,
    ) -> Result<InvocationOutput, Error> {
        let event = decode_window_event_with(&body, invocation.decode)?;
        drop(body);
        let range = BatchRange::of(&event.records);
        range.record_shard();
        let (shard, start, end) = (
            event.info.shard_id.clone(),
            event.info.start.clone(),
            event.info.end.clone(),
        );
        let (is_final, early) = (event.info.is_final, event.info.terminated_early);
        let outcome = Box::pin(process_window_event(
            event,
            self.handler(),
            invocation.store,
            invocation.config,
            invocation.deadline,
        ))
        .await?;
        tracing::info!(
            shard = %shard,
            window_start = %start,
            window_end = %end,
            final_invoke = is_final,
            terminated_early = early,
            closed = outcome.closed,
            state_bytes = outcome.state_bytes,
            "window invocation done"
        );
        Ok(InvocationOutput {
            response: Response::Window(outcome.response),
            report: outcome.report,
            range,
        })
    }

    fn replay_handler(&self) -> Option<&NoReplay> {
        None
    }
}

/// The replay handler of a function whose records cannot be replayed alone;
/// never made.
#[derive(Debug)]
pub struct NoReplay(std::convert::Infallible);

impl Handler for NoReplay {
    async fn handle(&self, _record: &Record) -> Result<(), HandlerError> {
        match self.0 {}
    }
}

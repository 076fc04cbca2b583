//! One windowed invocation: the records through the engine, each folded into
//! the state; the window closed at its final invocation; the state returned.

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::WindowHandler;
use super::error::WindowError;
use super::event::{WindowEvent, WindowInfo};
use super::response::WindowResponse;
use super::state::{decode_state, encode_state};
use crate::engine::{BatchOutcome, EngineConfig, ProgressMode, process_event};
use crate::handler::{Handler, HandlerError};
use crate::record::{Record, RecordOrigin, SequenceNumber};
use crate::report::BatchReport;
use crate::response::BatchResponse;
use crate::state::StateStore;
use crate::time::Deadline;
use serde_json::{Map, Value};

/// What a windowed invocation produced.
#[derive(Debug, Clone, Default)]
pub struct WindowOutcome {
    /// The response for Lambda: the state and the records to retry from.
    pub response: WindowResponse,
    /// What happened to the records, counted.
    pub report: BatchReport,
    /// Whether [`WindowHandler::close`] ran (and succeeded).
    pub closed: bool,
    /// The returned state's size in bytes of JSON.
    pub state_bytes: usize,
}

/// `config` as a windowed function runs: a shard's records one at a time,
/// progress per shard, and records at or below the checkpoint handled again
/// (the state Lambda sends is what counts; see the [module docs](super)).
///
/// ```
/// use shardline::EngineConfig;
/// let mut config = EngineConfig::new("counts");
/// config.concurrency = 16;
/// let windowed = shardline::window::windowed_config(&config);
/// assert_eq!(windowed.concurrency, 1);
/// assert!(windowed.skip.handle_checkpointed);
/// ```
pub fn windowed_config(config: &EngineConfig) -> EngineConfig {
    let mut windowed = config.clone();
    windowed.concurrency = 1;
    windowed.progress = ProgressMode::Shard;
    windowed.skip.handle_checkpointed = true;
    windowed
}

/// The per-invocation [`Handler`] the engine runs: each record folded into
/// the one state.
struct Accumulator<W: WindowHandler> {
    handler: Arc<W>,
    state: Mutex<W::State>,
    /// The state before the aggregate being folded (KPL sources): Lambda can
    /// only be told to retry from an aggregate's sequence number, and then
    /// sends all of its user records again, so a retry inside an aggregate
    /// hands back the state from before it.
    before_aggregate: Mutex<Option<(SequenceNumber, Value)>>,
}

impl<W: WindowHandler> Accumulator<W> {
    /// Keeps the state as it is before `record`, if it is the first user
    /// record folded of an aggregate.
    fn mark_aggregate(&self, record: &Record, state: &W::State) {
        if !matches!(record.origin, RecordOrigin::Aggregated { .. }) {
            return;
        }
        let mut before = self
            .before_aggregate
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if before
            .as_ref()
            .is_some_and(|(s, _)| *s == record.position.sequence)
        {
            return;
        }
        *before = serde_json::to_value(state)
            .ok()
            .map(|value| (record.position.sequence.clone(), value));
    }
}

/// The state from before the aggregate of `retry_from`, if the retry is
/// inside an aggregate whose earlier user records were folded.
fn accumulator_state_before(
    before_aggregate: &Mutex<Option<(SequenceNumber, Value)>>,
    retry_from: &str,
) -> Option<Map<String, Value>> {
    let before = before_aggregate.lock().unwrap_or_else(|p| p.into_inner());
    match before.as_ref() {
        Some((sequence, Value::Object(map))) if sequence.as_str() == retry_from => {
            Some(map.clone())
        }
        _ => None,
    }
}

impl<W: WindowHandler> Handler for Accumulator<W> {
    fn handle(&self, record: &Record) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.mark_aggregate(record, &state);
        std::future::ready(self.handler.add(&mut state, record))
    }
}

/// Processes one tumbling-window invocation with `handler`.
///
/// The records go through the engine as for [`process_event`] (skip rules,
/// quarantine, ordered partial failures, one commit per shard), with
/// [`windowed_config`]; each one done is folded into the state with
/// [`WindowHandler::add`]. At the final invocation, once every record is done
/// (none is left for a retry), [`WindowHandler::close`] writes the window's
/// result. The response carries the state after the records done, and the
/// record to retry from, if any.
///
/// # Errors
/// [`WindowError::State`] when the event's state is not `W::State`;
/// [`WindowError::Engine`] when the state store or the guard fails;
/// [`WindowError::Close`] when `close` fails; [`WindowError::StateShape`] when
/// the state is not a JSON object. Each fails the invocation, and Lambda
/// retries it with the state from before it.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use shardline::{Deadline, EngineConfig, HandlerError, Record};
/// use shardline::state::EmbeddedStore;
/// use shardline::window::{WindowHandler, WindowInfo, decode_window_event, process_window_event};
///
/// struct Count;
/// impl WindowHandler for Count {
///     type State = std::collections::BTreeMap<String, u64>;
///     fn add(&self, state: &mut Self::State, record: &Record) -> Result<(), HandlerError> {
///         *state.entry(record.partition_key.to_string()).or_default() += 1;
///         Ok(())
///     }
///     async fn close(&self, _: &WindowInfo, _: &Self::State) -> Result<(), HandlerError> { Ok(()) }
/// }
///
/// let event = br#"{"Records":[{"eventSource":"aws:kinesis",
///   "eventID":"shardId-000000000000:1",
///   "eventSourceARN":"arn:aws:kinesis:us-east-1:1:stream/s",
///   "kinesis":{"partitionKey":"1","sequenceNumber":"1","data":"aGk="}}],
///   "window":{"start":"2020-12-09T07:04:00Z","end":"2020-12-09T07:06:00Z"},
///   "state":{"1":282},"shardId":"shardId-000000000000",
///   "isFinalInvokeForWindow":false,"isWindowTerminatedEarly":false}"#;
/// let store = EmbeddedStore::open(&std::env::temp_dir().join("shardline-doc-window")).unwrap();
/// let config = EngineConfig::new(format!("doc-window-{}", std::process::id()));
/// let outcome = process_window_event(
///     decode_window_event(event).unwrap(), &Arc::new(Count), &store, &config, Deadline::none(),
/// ).await.unwrap();
/// assert_eq!(serde_json::to_string(&outcome.response).unwrap(),
///            r#"{"state":{"1":283},"batchItemFailures":[]}"#);
/// # }
/// ```
pub async fn process_window_event<W: WindowHandler>(
    event: WindowEvent,
    handler: &Arc<W>,
    store: &dyn StateStore,
    config: &EngineConfig,
    deadline: Deadline,
) -> Result<WindowOutcome, WindowError> {
    let WindowEvent {
        info,
        state,
        records,
    } = event;
    let event_state = state;
    let state: W::State = decode_state(event_state.as_ref(), &info)?;
    let last_sequence = records.items.last().map_or_else(
        || "none".to_owned(),
        |item| item.record().position.to_string(),
    );
    let accumulator = Accumulator {
        handler: handler.clone(),
        state: Mutex::new(state),
        before_aggregate: Mutex::new(None),
    };
    let first_sequence = records
        .items
        .first()
        .map(|item| item.record().position.sequence.to_string());
    let BatchOutcome { response, report } = process_event(
        records,
        &accumulator,
        store,
        &windowed_config(config),
        deadline,
    )
    .await?;
    let superseded = report.superseded > 0;
    let (response, returned) = answer(
        &info,
        event_state.as_ref(),
        accumulator,
        response,
        superseded,
        first_sequence,
    )?;
    let closed = match &returned {
        Returned::Folded(state) => {
            close_if_final(handler, &info, state, &response, last_sequence).await?
        }
        Returned::Before(_) => false,
    };
    let (state, state_bytes) = match returned {
        Returned::Before(before) => {
            let bytes = serde_json::to_vec(&before).map_or(0, |json| json.len());
            (before, bytes)
        }
        Returned::Folded(state) => encode_state(&state, &info)?,
    };
    Ok(WindowOutcome {
        response: WindowResponse::new(state, response),
        report,
        closed,
        state_bytes,
    })
}

/// The state a window's response hands on.
enum Returned<S> {
    /// The state with the records done folded in.
    Folded(S),
    /// The state from before a KPL aggregate Lambda sends again.
    Before(Map<String, Value>),
}

/// The response and the state to hand on, once the records ran. A superseded
/// commit returns the state the invocation came with and the whole batch to
/// retry (what it folded is not known to be what is checkpointed: its own
/// write that landed unanswered, or an invocation of the same records that
/// ran meanwhile); a retry inside a KPL aggregate returns the state from
/// before the aggregate (Lambda sends all of it again).
fn answer<W: WindowHandler>(
    info: &WindowInfo,
    event_state: Option<&Value>,
    accumulator: Accumulator<W>,
    mut response: BatchResponse,
    superseded: bool,
    first_sequence: Option<String>,
) -> Result<(BatchResponse, Returned<W::State>), WindowError> {
    if superseded && let Some(first) = first_sequence {
        tracing::warn!(
            shard = %info.shard_id,
            window_start = %info.start,
            "the window's commit was superseded: the state it came with goes back, with the whole batch to retry"
        );
        response = BatchResponse::default();
        response.retry_from(first);
        return Ok((response, Returned::Folded(decode_state(event_state, info)?)));
    }
    if let Some(retry) = response.batch_item_failures.first()
        && let Some(before) =
            accumulator_state_before(&accumulator.before_aggregate, &retry.item_identifier)
    {
        return Ok((response, Returned::Before(before)));
    }
    let state = accumulator
        .state
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok((response, Returned::Folded(state)))
}

/// Closes the window at its final invocation, once every record is done.
/// Returns whether it closed.
async fn close_if_final<W: WindowHandler>(
    handler: &Arc<W>,
    info: &WindowInfo,
    state: &W::State,
    response: &BatchResponse,
    last_sequence: String,
) -> Result<bool, WindowError> {
    if !info.is_final {
        return Ok(false);
    }
    if !response.is_success() {
        tracing::warn!(
            shard = %info.shard_id,
            window_start = %info.start,
            "the window's final invocation left records for the retry: the window closes once they are done"
        );
        return Ok(false);
    }
    handler
        .close(info, state)
        .await
        .map_err(|error| WindowError::Close {
            shard_id: info.shard_id.clone(),
            window_start: info.start.clone(),
            window_end: info.end.clone(),
            last_sequence,
            source: error.into_source(),
        })?;
    Ok(true)
}

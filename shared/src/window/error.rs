//! Why a window event could not be read, or a windowed invocation failed.

use crate::decode::EventError;
use crate::engine::EngineError;
use crate::error::BoxError;

/// Why an event is not a tumbling-window Kinesis event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WindowEventError {
    /// The records part is not a Kinesis event.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The event has no `window` with a `start` and an `end`: the event
    /// source mapping has no `TumblingWindowInSeconds`.
    #[error(
        "the event has no \"window\" with \"start\" and \"end\" ({found}): is TumblingWindowInSeconds set on the event source mapping?"
    )]
    NotWindowed {
        /// What the event holds instead.
        found: String,
    },
}

/// Why a windowed invocation failed as a whole (Lambda retries it with the
/// state from before it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// The event's `state` cannot be read as the handler's state type (a
    /// state written by another version of the function, say).
    #[error(
        "the state of window {window_start} of shard {shard_id} is not this function's state: {source}"
    )]
    State {
        /// The shard (`shardId`).
        shard_id: String,
        /// The window's start.
        window_start: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// The handler's state does not serialize to a JSON object.
    #[error(
        "the state of window {window_start} of shard {shard_id} must serialize to a JSON object, not {found}"
    )]
    StateShape {
        /// The shard (`shardId`).
        shard_id: String,
        /// The window's start.
        window_start: String,
        /// What it serialized to (`a number`, `an error: ...`).
        found: String,
    },
    /// The engine failed (the state store, the parent-shard guard).
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// [`super::WindowHandler::close`] failed.
    #[error(
        "closing window {window_start} to {window_end} of shard {shard_id} (last record {last_sequence}) failed: {source}"
    )]
    Close {
        /// The shard (`shardId`).
        shard_id: String,
        /// The window's start.
        window_start: String,
        /// The window's end.
        window_end: String,
        /// The sequence number of the invocation's last record (`none` for an
        /// invocation without records).
        last_sequence: String,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
}

impl From<EngineError> for WindowError {
    fn from(error: EngineError) -> Self {
        WindowError::Engine(Box::new(error))
    }
}

//! The tumbling-window event, read leniently: the `Records` as
//! [`crate::decode::decode_event`] reads them (a bad record is an undecodable
//! item, not a failed event), and the window's fields one by one.

use serde::Deserialize;
use serde_json::Value;

use super::error::WindowEventError;
use crate::decode::{DecodeOptions, DecodedEvent, decode_event_with};

/// What a window event says about its window
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowInfo {
    /// `window.start`: when the window opens, as Lambda writes it (RFC 3339 UTC,
    /// `2020-12-09T07:04:00Z`).
    pub start: String,
    /// `window.end`: when it closes.
    pub end: String,
    /// `shardId`: the shard whose window it is.
    pub shard_id: String,
    /// `eventSourceARN`: the stream.
    pub stream_arn: String,
    /// `isFinalInvokeForWindow`: the window closes with this invocation.
    pub is_final: bool,
    /// `isWindowTerminatedEarly`: the window was ended early because its state
    /// grew too large; the same window goes on with a fresh state.
    pub terminated_early: bool,
}

/// A decoded tumbling-window event.
#[derive(Debug, Clone, Default)]
pub struct WindowEvent {
    /// The window.
    pub info: WindowInfo,
    /// `state` as it came (`None` when absent or `null`).
    pub state: Option<Value>,
    /// The records.
    pub records: DecodedEvent,
}

/// The window's fields, each read on its own: a wrong type is judged after.
#[derive(Debug, Default, Deserialize)]
struct Fields {
    #[serde(default)]
    window: Option<Value>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(rename = "shardId", default)]
    shard_id: Option<Value>,
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: Option<Value>,
    #[serde(rename = "isFinalInvokeForWindow", default)]
    is_final: Option<Value>,
    #[serde(rename = "isWindowTerminatedEarly", default)]
    terminated_early: Option<Value>,
}

/// Decodes a tumbling-window event from JSON bytes.
///
/// # Errors
/// [`WindowEventError::Event`] when the records are not a Kinesis event (as
/// [`crate::decode::decode_event`]); [`WindowEventError::NotWindowed`] when
/// there is no `window` with string `start` and `end`. A missing `shardId` or
/// `eventSourceARN` is taken from the first record; a missing flag is `false`.
///
/// ```
/// let event = br#"{"Records": [], "window": {"start": "2020-12-09T07:04:00Z",
///   "end": "2020-12-09T07:06:00Z"}, "state": {"1": 282},
///   "shardId": "shardId-000000000006", "isFinalInvokeForWindow": true}"#;
/// let decoded = shardline::window::decode_window_event(event)?;
/// assert_eq!(decoded.info.end, "2020-12-09T07:06:00Z");
/// assert!(decoded.info.is_final && !decoded.info.terminated_early);
/// assert_eq!(decoded.state, Some(serde_json::json!({"1": 282})));
/// # Ok::<(), shardline::window::WindowEventError>(())
/// ```
pub fn decode_window_event(json: &[u8]) -> Result<WindowEvent, WindowEventError> {
    decode_window_event_with(json, &DecodeOptions::default())
}

/// [`decode_window_event`] with the records decoded by `options`.
///
/// # Errors
/// As [`decode_window_event`].
pub fn decode_window_event_with(
    json: &[u8],
    options: &DecodeOptions,
) -> Result<WindowEvent, WindowEventError> {
    let records = decode_event_with(json, options)?;
    // The records were read above; this pass skips over them without copying.
    let fields: Fields = serde_json::from_slice(json).map_err(crate::decode::EventError::from)?;
    let (start, end) = window_bounds(fields.window.as_ref())?;
    let first = records.items.first().map(|item| item.record());
    let text = |value: Option<Value>, fallback: Option<&str>| match value {
        Some(Value::String(text)) => text,
        _ => fallback.unwrap_or_default().to_owned(),
    };
    let flag = |value: Option<Value>| value.and_then(|v| v.as_bool()).unwrap_or(false);
    let info = WindowInfo {
        start,
        end,
        shard_id: text(fields.shard_id, first.map(|r| &*r.shard.shard_id)),
        stream_arn: text(fields.event_source_arn, first.map(|r| &*r.shard.stream_arn)),
        is_final: flag(fields.is_final),
        terminated_early: flag(fields.terminated_early),
    };
    let state = fields.state.filter(|state| !state.is_null());
    Ok(WindowEvent {
        info,
        state,
        records,
    })
}

/// `window.start` and `window.end`.
fn window_bounds(window: Option<&Value>) -> Result<(String, String), WindowEventError> {
    let bound = |name: &str| {
        window
            .and_then(|w| w.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (bound("start"), bound("end")) {
        (Some(start), Some(end)) => Ok((start, end)),
        _ => Err(WindowEventError::NotWindowed {
            found: match window {
                None | Some(Value::Null) => "no window".to_owned(),
                Some(other) => format!("window is {}", describe(other)),
            },
        }),
    }
}

/// A JSON value's kind, for messages (never its content).
pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

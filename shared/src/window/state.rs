//! The window's state between its invocations: a typed value on the handler's
//! side, a JSON object in the event and the response.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::WindowError;
use super::event::{WindowInfo, describe};

/// The most state Lambda carries per shard: above it, Lambda ends the window
/// early (`isWindowTerminatedEarly`) and goes on with a fresh state
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
pub const STATE_MAX_BYTES: usize = 1024 * 1024;

/// Reads the handler's state from the event's `state`: `Default` when there is
/// none yet (absent, `null` or `{}`, as at a window's first invocation).
///
/// # Errors
/// [`WindowError::State`] when `state` does not deserialize as `S`.
///
/// ```
/// use std::collections::BTreeMap;
/// use shardline::window::{WindowInfo, decode_state};
/// let info = WindowInfo::default();
/// let counts: BTreeMap<String, u64> = decode_state(Some(&serde_json::json!({"1": 282})), &info)?;
/// assert_eq!(counts["1"], 282);
/// let fresh: BTreeMap<String, u64> = decode_state(Some(&serde_json::json!({})), &info)?;
/// assert!(fresh.is_empty());
/// # Ok::<(), shardline::window::WindowError>(())
/// ```
pub fn decode_state<S: DeserializeOwned + Default>(
    state: Option<&Value>,
    info: &WindowInfo,
) -> Result<S, WindowError> {
    match state {
        None | Some(Value::Null) => Ok(S::default()),
        Some(Value::Object(map)) if map.is_empty() => Ok(S::default()),
        Some(value) => {
            <S as serde::Deserialize>::deserialize(value).map_err(|source| WindowError::State {
                shard_id: info.shard_id.clone(),
                window_start: info.start.clone(),
                source,
            })
        }
    }
}

/// Writes the handler's state as the response's `state` object, and says how
/// many bytes of JSON it takes. A state over [`STATE_MAX_BYTES`] is returned
/// all the same (Lambda then ends the window early), with a warning.
///
/// # Errors
/// [`WindowError::StateShape`] when the state does not serialize to a JSON object.
///
/// ```
/// use std::collections::BTreeMap;
/// use shardline::window::{WindowInfo, encode_state};
/// let counts = BTreeMap::from([("1".to_owned(), 282u64)]);
/// let (state, bytes) = encode_state(&counts, &WindowInfo::default())?;
/// assert_eq!(serde_json::Value::Object(state), serde_json::json!({"1": 282}));
/// assert_eq!(bytes, r#"{"1":282}"#.len());
/// assert!(encode_state(&7u32, &WindowInfo::default()).is_err());
/// # Ok::<(), shardline::window::WindowError>(())
/// ```
pub fn encode_state<S: Serialize>(
    state: &S,
    info: &WindowInfo,
) -> Result<(Map<String, Value>, usize), WindowError> {
    let shape = |found: String| WindowError::StateShape {
        shard_id: info.shard_id.clone(),
        window_start: info.start.clone(),
        found,
    };
    let value = serde_json::to_value(state).map_err(|e| shape(format!("an error: {e}")))?;
    let Value::Object(map) = value else {
        return Err(shape(describe(&value).to_owned()));
    };
    let bytes = serde_json::to_vec(&map).map_or(0, |json| json.len());
    if bytes > STATE_MAX_BYTES {
        tracing::warn!(
            shard = %info.shard_id,
            window_start = %info.start,
            state_bytes = bytes,
            max_bytes = STATE_MAX_BYTES,
            "the window's state is over Lambda's limit: Lambda ends the window early \
             and goes on with a fresh state"
        );
    }
    Ok((map, bytes))
}

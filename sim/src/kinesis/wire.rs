//! The JSON side of the protocol: error answers, opaque tokens (shard
//! iterators, ListShards' `NextToken`), timestamps, and stream references.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SimError;
use super::stream::{ACCOUNT, REGION};
use crate::http::Reply;

/// An error answer: HTTP status, `__type` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// A `400` with `code`.
    pub(super) fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code,
            message: message.into(),
        }
    }

    /// A request breaking a constraint of the API model.
    pub(super) fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", message)
    }

    /// A request the service refuses for what its arguments mean.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::client("InvalidArgumentException", message)
    }

    /// A body that is not the JSON of the operation.
    pub(super) fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }

    /// The stream `name` does not exist.
    pub(super) fn stream_not_found(name: &str) -> Self {
        Self::client(
            "ResourceNotFoundException",
            format!("Stream {name} under account {ACCOUNT} not found."),
        )
    }

    /// The answer.
    pub(super) fn reply(&self) -> Reply {
        Reply::error(
            self.status,
            self.code,
            &self.message,
            serde_json::Value::Null,
        )
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        match &error {
            SimError::StreamNotFound(name) => ApiError::stream_not_found(name),
            SimError::ShardNotFound { stream, shard } => ApiError::client(
                "ResourceNotFoundException",
                format!("Shard {shard} in stream {stream} under account {ACCOUNT} does not exist"),
            ),
            SimError::StreamExists(_) => {
                ApiError::client("ResourceInUseException", error.to_string())
            }
            SimError::ShardClosed { .. } | SimError::Invalid(_) => {
                ApiError::invalid(error.to_string())
            }
        }
    }
}

/// One failed constraint of the API model, as AWS words it.
pub(super) fn violation(value: &str, at: &str, rule: &str) -> String {
    format!("Value '{value}' at '{at}' failed to satisfy constraint: Member {rule}")
}

/// A `ValidationException` for `violations` (at least one).
pub(super) fn violations(violations: &[String]) -> ApiError {
    let count = violations.len();
    let plural = if count == 1 { "" } else { "s" };
    ApiError::validation(format!(
        "{count} validation error{plural} detected: {}",
        violations.join("; ")
    ))
}

/// A `ValidationException` for one failed constraint.
pub(super) fn constraint(value: &str, at: &str, rule: &str) -> ApiError {
    violations(&[violation(value, at, rule)])
}

/// Encodes `token` as an opaque string (base64 of its JSON).
pub(super) fn encode_token<T: Serialize>(token: &T) -> String {
    STANDARD.encode(serde_json::to_vec(token).unwrap_or_default())
}

/// Decodes a token [`encode_token`] made; `None` for any other text.
pub(super) fn decode_token<T: DeserializeOwned>(text: &str) -> Option<T> {
    let bytes = STANDARD.decode(text).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Decodes a base64 blob.
pub(super) fn decode_blob(text: &str, at: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(text)
        .map_err(|_| ApiError::serialization(format!("'{at}' is not valid base64")))
}

/// Encodes a blob as base64.
pub(super) fn encode_blob(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// A time as JSON epoch seconds, to the millisecond.
pub(super) fn epoch_seconds(time: SystemTime) -> serde_json::Value {
    let millis = epoch_millis(time);
    serde_json::json!(millis as f64 / 1000.0)
}

/// Milliseconds since the epoch (0 before it).
pub(super) fn epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `time` truncated to the millisecond.
pub(super) fn to_millis(time: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(epoch_millis(time))
}

/// Epoch seconds as a time; `None` for a negative, infinite or huge number.
pub(super) fn from_epoch_seconds(seconds: f64) -> Option<SystemTime> {
    let duration = Duration::try_from_secs_f64(seconds).ok()?;
    UNIX_EPOCH.checked_add(duration)
}

/// The stream a request names by `StreamName` or `StreamARN` (an ARN of this
/// account and region; both may be given if they agree).
pub(super) fn stream_name(name: Option<&str>, arn: Option<&str>) -> Result<String, ApiError> {
    let from_arn = arn.map(name_of_arn).transpose()?;
    match (name, from_arn) {
        (Some(name), Some(other)) if name != other => Err(ApiError::invalid(format!(
            "StreamName {name} and StreamARN {} do not name the same stream",
            arn.unwrap_or_default()
        ))),
        (Some(name), _) => {
            check_stream_name(name)?;
            Ok(name.to_owned())
        }
        (None, Some(name)) => Ok(name),
        (None, None) => Err(ApiError::invalid(
            "Either StreamName or StreamARN should be provided.",
        )),
    }
}

/// The stream name of `arn`, which must be of this account and region.
fn name_of_arn(arn: &str) -> Result<String, ApiError> {
    let Some((prefix, name)) = arn.split_once(":stream/") else {
        return Err(constraint(
            arn,
            "streamARN",
            "must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
        ));
    };
    if prefix != format!("arn:aws:kinesis:{REGION}:{ACCOUNT}") {
        return Err(ApiError::client(
            "ResourceNotFoundException",
            format!("Stream {arn} not found: not in account {ACCOUNT}, region {REGION}."),
        ));
    }
    check_stream_name(name)?;
    Ok(name.to_owned())
}

/// Checks a stream name: 1 to 128 of `a-zA-Z0-9_.-`.
pub(super) fn check_stream_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(constraint(
            name,
            "streamName",
            "must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_by_name_or_arn() {
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/orders";
        assert_eq!(stream_name(Some("orders"), None).unwrap(), "orders");
        assert_eq!(stream_name(None, Some(arn)).unwrap(), "orders");
        assert_eq!(stream_name(Some("orders"), Some(arn)).unwrap(), "orders");
        let code = |n, a| stream_name(n, a).unwrap_err().code;
        assert_eq!(code(Some("other"), Some(arn)), "InvalidArgumentException");
        assert_eq!(code(None, None), "InvalidArgumentException");
        assert_eq!(code(None, Some("orders")), "ValidationException");
        let foreign = "arn:aws:kinesis:eu-west-1:000000000000:stream/orders";
        assert_eq!(code(None, Some(foreign)), "ResourceNotFoundException");
        assert_eq!(code(Some("bad/name"), None), "ValidationException");
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_text() {
        let token = encode_token(&("s", 7u64));
        assert_eq!(decode_token::<(String, u64)>(&token), Some(("s".into(), 7)));
        assert_eq!(decode_token::<(String, u64)>("not a token"), None);
    }

    #[test]
    fn timestamps_are_epoch_seconds_to_the_millisecond() {
        let time = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(epoch_seconds(time), serde_json::json!(1_700_000_000.123));
        assert_eq!(
            from_epoch_seconds(1.5),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
        assert_eq!(from_epoch_seconds(-1.0), None);
    }
}

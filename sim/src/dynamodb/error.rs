//! Error answers as DynamoDB's JSON protocol writes them: a status and
//! `{"__type": "com.amazonaws.dynamodb.v20120810#<code>", "message": ..}`,
//! with the fields of the error's shape beside.

use serde_json::{Map, Value, json};

use crate::http::Reply;

/// The prefix DynamoDB puts before its error codes.
const PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The error code, such as `ValidationException`.
    pub code: String,
    /// The message.
    pub message: String,
    /// Further fields of the error shape (`Item`, `CancellationReasons`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    /// An error with `status` and `code`.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// A `400 ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    /// A `400 SerializationException`: the request is not the JSON the API expects.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(400, "SerializationException", message)
    }

    /// A `400 ResourceNotFoundException` for a table that does not exist.
    pub fn no_table() -> Self {
        Self::new(
            400,
            "ResourceNotFoundException",
            "Requested resource not found",
        )
    }

    /// A `400 ConditionalCheckFailedException`, with the item when it was asked for.
    pub fn condition_failed(item: Option<Value>) -> Self {
        let mut error = Self::new(
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
        );
        if let Some(item) = item {
            error.extra.insert("Item".into(), item);
        }
        error
    }

    /// A `400 TransactionCanceledException` with one reason per item.
    pub fn cancelled(reasons: Vec<Value>) -> Self {
        let codes: Vec<&str> = reasons
            .iter()
            .map(|r| r.get("Code").and_then(Value::as_str).unwrap_or("None"))
            .collect();
        let message = format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        );
        let mut error = Self::new(400, "TransactionCanceledException", message);
        error
            .extra
            .insert("CancellationReasons".into(), Value::Array(reasons));
        error
    }

    /// The answer: `Message` for a cancelled transaction (as DynamoDB writes
    /// that one), `message` otherwise.
    pub fn reply(&self) -> Reply {
        let message_field = if self.code == "TransactionCanceledException" {
            "Message"
        } else {
            "message"
        };
        let mut body = Map::new();
        body.insert("__type".into(), json!(format!("{PREFIX}{}", self.code)));
        body.insert(message_field.into(), json!(self.message));
        body.extend(self.extra.clone());
        Reply::Answer {
            status: self.status,
            body: Value::Object(body).to_string().into_bytes(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

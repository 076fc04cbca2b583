//! A small DynamoDB kit shared by Shardline's state store and the functions'
//! own tables: attribute codecs ([`attr`]), conditional and batched writes with
//! one retry policy ([`write`](mod@write)), batched and paginated reads ([`read`]), and
//! table creation ([`table`]). Errors are typed ([`DynamoError`]) and name the
//! operation.

pub mod attr;
pub mod read;
pub mod table;
pub mod write;

use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};

pub use attr::Attributes;

use crate::retry::Backoff;

/// Tries of a batched request whose items come back unprocessed or conflicting.
pub const MAX_TRIES: u32 = 8;

/// The pause between such tries.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(1280));

/// Why a DynamoDB operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoError {
    /// DynamoDB (or the network) refused the request.
    #[error("DynamoDB failed to {operation}: {message}")]
    Service {
        /// What was being done.
        operation: &'static str,
        /// The error code, such as `ResourceNotFoundException`.
        code: Option<String>,
        /// The SDK's message with its context.
        message: String,
    },
    /// Items stayed unprocessed (throttling) through every try.
    #[error("DynamoDB left {count} items unprocessed after {tries} tries to {operation}")]
    Unprocessed {
        /// What was being done.
        operation: &'static str,
        /// Items left.
        count: usize,
        /// Tries made.
        tries: u32,
    },
    /// Transactions kept conflicting with other writers through every try.
    #[error("{count} items kept conflicting with other writers after {tries} tries to {operation}")]
    Contended {
        /// What was being done.
        operation: &'static str,
        /// Items left.
        count: usize,
        /// Tries made.
        tries: u32,
    },
    /// A transaction was cancelled for a reason no retry mends.
    #[error("DynamoDB cancelled a transaction to {operation}: {code}: {message}")]
    Cancelled {
        /// What was being done.
        operation: &'static str,
        /// The cancellation code of the failing item.
        code: String,
        /// Its message.
        message: String,
    },
    /// A request could not be built (a missing required field).
    #[error("cannot build a request to {operation}: {message}")]
    Build {
        /// What was being done.
        operation: &'static str,
        /// The builder's message.
        message: String,
    },
}

impl DynamoError {
    /// A service error of `operation`.
    pub fn service<E>(operation: &'static str, error: E) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata,
    {
        DynamoError::Service {
            operation,
            code: error.code().map(str::to_owned),
            message: DisplayErrorContext(error).to_string(),
        }
    }

    /// Whether trying again may succeed: throttling, an internal or
    /// unavailable service, a transaction conflict, items left unprocessed, or
    /// no answer at all (a network error or timeout, with no error code).
    ///
    /// ```
    /// use shardline::aws::dynamodb::DynamoError;
    /// let throttled = DynamoError::Service { operation: "commit", code: Some("ThrottlingException".into()), message: String::new() };
    /// let missing = DynamoError::Service { operation: "commit", code: Some("ResourceNotFoundException".into()), message: String::new() };
    /// assert!(throttled.is_transient() && !missing.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        const TRANSIENT: [&str; 9] = [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "InternalServerError",
            "ServiceUnavailable",
            "TransactionConflictException",
            "TransactionInProgressException",
            "ThrottlingError",
            "TransactionConflict",
        ];
        match self {
            DynamoError::Service { code: None, .. }
            | DynamoError::Unprocessed { .. }
            | DynamoError::Contended { .. } => true,
            DynamoError::Service {
                code: Some(code), ..
            }
            | DynamoError::Cancelled { code, .. } => TRANSIENT.contains(&code.as_str()),
            DynamoError::Build { .. } => false,
        }
    }

    /// A builder error of `operation`.
    pub fn build(operation: &'static str, error: impl std::fmt::Display) -> Self {
        DynamoError::Build {
            operation,
            message: error.to_string(),
        }
    }
}

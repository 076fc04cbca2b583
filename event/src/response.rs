//! Response out: the partial batch failure response Lambda reads.
//!
//! `{"batchItemFailures":[{"itemIdentifier":"<sequenceNumber>"}]}`. Lambda
//! restarts the shard from the lowest sequence number listed; an empty list means
//! the whole batch succeeded. The event source mapping must have
//! `FunctionResponseTypes: [ReportBatchItemFailures]` for Lambda to read it.

use serde::{Deserialize, Serialize};

/// The response to one Kinesis invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The records to retry from; at most one per shard from Shardline.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One entry of `batchItemFailures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItemFailure {
    /// The sequence number of the record to retry from.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    /// Whether Lambda will treat the batch as done.
    pub fn is_success(&self) -> bool {
        self.batch_item_failures.is_empty()
    }

    /// Adds a record to retry from.
    pub fn retry_from(&mut self, sequence_number: impl Into<String>) {
        self.batch_item_failures.push(BatchItemFailure {
            item_identifier: sequence_number.into(),
        });
    }
}

//! The response to a windowed invocation: the state to pass on, and the
//! records to retry from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::response::{BatchItemFailure, BatchResponse};

/// `{"state": {...}, "batchItemFailures": [...]}`
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
///
/// `state` is always there: Lambda treats a response without it as a failed
/// invocation. `batchItemFailures` is read with `ReportBatchItemFailures` on
/// the mapping, as for [`BatchResponse`].
///
/// ```
/// use shardline::window::WindowResponse;
/// let mut response = WindowResponse::default();
/// response.state.insert("1".into(), 282.into());
/// assert_eq!(serde_json::to_string(&response)?, r#"{"state":{"1":282},"batchItemFailures":[]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowResponse {
    /// The state to pass to the window's next invocation.
    pub state: Map<String, Value>,
    /// The records to retry from; at most one per shard from Shardline.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

impl WindowResponse {
    /// The response carrying `state` and the failures of `batch`.
    pub fn new(state: Map<String, Value>, batch: BatchResponse) -> Self {
        WindowResponse {
            state,
            batch_item_failures: batch.batch_item_failures,
        }
    }

    /// Whether Lambda will treat the batch as done.
    pub fn is_success(&self) -> bool {
        self.batch_item_failures.is_empty()
    }
}

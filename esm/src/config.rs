//! The mapping's settings the rules depend on.

use std::time::Duration;

/// An event source mapping's settings, as the rules read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    /// `BatchSize`: records per invocation at most.
    pub batch_size: usize,
    /// `ParallelizationFactor`: slots per shard (1..10).
    pub parallelization: usize,
    /// `BisectBatchOnFunctionError`.
    pub bisect: bool,
    /// `MaximumRetryAttempts` (`None`: -1, retried until the records expire).
    pub retry_limit: Option<u32>,
    /// `MaximumRecordAgeInSeconds` (`None`: -1).
    pub max_record_age: Option<Duration>,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_failures: bool,
    /// `TumblingWindowInSeconds` (`None`: no windows).
    pub tumbling_window: Option<u64>,
    /// `MaximumBatchingWindowInSeconds`: how long Lambda waits to fill a batch
    /// (the driver waits; the model only needs it to close a window).
    pub batching_window: Duration,
}

impl Default for MappingConfig {
    /// The defaults of a mapping: 100 records, one slot, no bisect, retried
    /// until the records expire, no age limit, failures reported.
    fn default() -> Self {
        MappingConfig {
            batch_size: 100,
            parallelization: 1,
            bisect: false,
            retry_limit: None,
            max_record_age: None,
            report_failures: true,
            tumbling_window: None,
            batching_window: Duration::ZERO,
        }
    }
}

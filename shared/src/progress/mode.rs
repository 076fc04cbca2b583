//! Where progress is kept: per shard or per partition key.

use std::time::Duration;

/// How long a partition key's progress is kept after its last write, by
/// default: longer than a stream's extended retention (7 days), so a key's
/// progress outlives every record of it that Lambda could still deliver.
pub const DEFAULT_KEY_PROGRESS_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

/// Where progress is kept, and so what order is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressMode {
    /// One checkpoint per shard: a retryable failure stops the shard, nothing
    /// after it runs. For one batch per shard at a time (ParallelizationFactor 1).
    #[default]
    Shard,
    /// One checkpoint per partition key: a retryable failure stops only its key;
    /// other keys go on. Correct when several batches of one shard run at once
    /// (ParallelizationFactor 2..10), which Lambda orders per key only.
    PartitionKey,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "shard" => Ok(ProgressMode::Shard),
            "partition-key" => Ok(ProgressMode::PartitionKey),
            other => Err(format!("unknown progress mode {other:?}")),
        }
    }
}

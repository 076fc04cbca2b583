//! Counting the requests an SDK client actually sends, per operation.
//!
//! Attach a [`RequestCounter`] to a client (see [`crate::Emulators::dynamodb_counted`],
//! or `config_builder.interceptor(counter.clone())`) and assert exact call counts, e.g.
//! "one BatchGetItem and one TransactWriteItems per batch".

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Counts requests per operation name (`"PutItem"`, `"GetRecords"`, ...), shared by
/// clones. It counts every HTTP attempt handed to the transport, so an SDK retry counts
/// twice. One counter can serve clients of several services: Kinesis and DynamoDB share
/// the interceptor trait.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic elsewhere while holding the lock leaves the map intact.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests sent for `operation` so far.
    pub fn get(&self, operation: &str) -> u64 {
        self.lock().get(operation).copied().unwrap_or(0)
    }

    /// Requests sent for all operations so far.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// All counts, sorted by operation name (prints stably in assertion messages).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// All counts, then resets to zero.
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.lock().drain().collect()
    }

    /// Resets to zero.
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn record(&self, operation: &str) {
        *self.lock().entry(operation.to_owned()).or_default() += 1;
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or("<unknown>", Metadata::name);
        self.record(operation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_operation_and_resets() {
        let counter = RequestCounter::new();
        let clone = counter.clone();
        clone.record("PutItem");
        clone.record("PutItem");
        clone.record("GetItem");
        assert_eq!(counter.get("PutItem"), 2);
        assert_eq!(counter.get("Query"), 0);
        assert_eq!(counter.total(), 3);
        let taken = counter.take();
        assert_eq!(
            taken.into_iter().collect::<Vec<_>>(),
            [("GetItem".to_owned(), 1), ("PutItem".to_owned(), 2)]
        );
        assert_eq!(counter.total(), 0);
    }
}

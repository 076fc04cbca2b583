//! A simulated DynamoDB: in-memory tables behind the JSON protocol, answered
//! through [`SimHttp`] so the real SDK client (and Shardline's stores above
//! it) run unchanged, with faults decided per request by a [`FaultHook`].
//!
//! Deterministic: tables and answers are ordered (`BTreeMap`s), the only
//! clock is tokio's, and every fault comes from the hook. The same requests
//! with the same fault decisions give the same answers, byte for byte.
//!
//! Operations: `CreateTable`, `DescribeTable`, `DeleteTable`, `ListTables`,
//! `UpdateTimeToLive`, `DescribeTimeToLive`, `GetItem`, `PutItem`,
//! `UpdateItem`, `DeleteItem`, `TransactWriteItems`, `BatchGetItem`,
//! `BatchWriteItem`, `Query`, `Scan`; tables keyed by a string hash key and
//! an optional string range key, no secondary indexes, every read
//! consistent. Validated as DynamoDB validates: item size (400 KB), key
//! shapes, transaction and batch limits, expression syntax, reserved words,
//! undefined and unused placeholders.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use shardline_sim::dynamodb::{Attr, DynamoDb, KeySchema};
//! let sim = DynamoDb::new();
//! let schema = KeySchema { hash_key: "pk".into(), range_key: None, ttl_attribute: None };
//! sim.create_table("t", schema).unwrap();
//! let client = sim.client();
//! client.put_item().table_name("t")
//!     .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
//!     .send().await.unwrap();
//! assert_eq!(sim.item("t", "a", None).unwrap()["pk"], Attr::s("a"));
//! assert_eq!(sim.request_count("PutItem"), 1);
//! # }
//! ```

mod error;
mod expr;
mod faults;
mod number;
mod ops;
mod table;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Region};
use futures_util::future::BoxFuture;
use serde_json::Value;

pub use self::error::ApiError;
pub use self::faults::{Fault, FaultHook, Request, first_requests};
pub use self::number::{Number, NumberError};
use self::ops::{Db, Twist};
pub use self::table::{Key, KeySchema, MAX_ITEM_BYTES, Table, Tables};
pub use self::value::{Attr, Item};
use crate::http::{Reply, Service, SimHttp};

/// A simulated DynamoDB service. Clones share the same tables.
#[derive(Clone, Default)]
pub struct DynamoDb {
    inner: Arc<Mutex<State>>,
}

/// Everything behind the service's lock (never held across an `await`).
#[derive(Default)]
struct State {
    db: Db,
    counts: BTreeMap<String, u64>,
    sequence: u64,
    hook: Option<Box<dyn FaultHook>>,
}

impl fmt::Debug for DynamoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("DynamoDb")
            .field("tables", &state.db.tables.names())
            .field("counts", &state.counts)
            .finish()
    }
}

impl DynamoDb {
    /// A service with no tables and no faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An SDK client of this service with the SDK's standard retries (3
    /// attempts), as in production.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        self.client_with(|config| config)
    }

    /// An SDK client of this service, its configuration changed by
    /// `configure` (e.g. `.retry_config(..)`, `.timeout_config(..)`). Each
    /// client has its own retry token bucket, so clients (and tests) do not
    /// drain each other's. The SDK's retry backoff is jittered with
    /// `fastrand`; seed it, or use
    /// `RetryConfig::standard().with_use_static_exponential_base(true)`, for
    /// repeatable timing.
    pub fn client_with(
        &self,
        configure: impl FnOnce(Builder) -> Builder,
    ) -> aws_sdk_dynamodb::Client {
        let builder = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            // Unsigned: the simulated service reads no signature, and SigV4
            // was an eighth of a simulated run's CPU.
            .allow_no_auth()
            .endpoint_url("http://dynamodb.sim")
            .retry_config(RetryConfig::standard())
            .retry_partition(RetryPartition::custom("shardline-sim-dynamodb").build())
            .http_client(SimHttp::new(Arc::new(self.clone())));
        aws_sdk_dynamodb::Client::from_conf(configure(builder).build())
    }

    /// Creates a table directly (no request is counted).
    ///
    /// # Errors
    /// A `ResourceInUseException` when it exists.
    pub fn create_table(&self, name: &str, schema: impl Into<KeySchema>) -> Result<(), ApiError> {
        if self.lock().db.tables.create(name, schema.into()) {
            Ok(())
        } else {
            Err(ApiError::new(
                400,
                "ResourceInUseException",
                format!("Table already exists: {name}"),
            ))
        }
    }

    /// Sets the hook that decides each request's fault (replacing any).
    pub fn set_fault_hook(&self, hook: impl FaultHook + 'static) {
        self.lock().hook = Some(Box::new(hook));
    }

    /// Sets a closure as the fault hook (a shorthand of
    /// [`DynamoDb::set_fault_hook`] that lets the closure's argument types be
    /// inferred).
    pub fn on_request<F>(&self, decide: F)
    where
        F: FnMut(&Request<'_>, &mut Tables) -> Fault + Send + 'static,
    {
        self.set_fault_hook(decide);
    }

    /// Removes the fault hook: no more faults.
    pub fn clear_fault_hook(&self) {
        self.lock().hook = None;
    }

    /// Runs `f` on the tables (to look, or to change them as another writer).
    pub fn with_tables<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        f(&mut self.lock().db.tables)
    }

    /// Every item of `table`, in key order (none if there is no such table).
    pub fn items(&self, table: &str) -> Vec<Item> {
        self.lock().db.tables.items(table)
    }

    /// The item of `table` at `hash` (and `range`).
    pub fn item(&self, table: &str, hash: &str, range: Option<&str>) -> Option<Item> {
        self.lock().db.tables.get(table, hash, range).cloned()
    }

    /// Writes `item` directly, returning the item it replaced.
    ///
    /// # Errors
    /// As [`Tables::put`].
    pub fn put_item(&self, table: &str, item: Item) -> Result<Option<Item>, ApiError> {
        self.lock().db.tables.put(table, item)
    }

    /// Deletes an item directly, returning it.
    pub fn delete_item(&self, table: &str, hash: &str, range: Option<&str>) -> Option<Item> {
        self.lock().db.tables.delete(table, hash, range)
    }

    /// Requests received of `operation` (faulted ones included).
    pub fn request_count(&self, operation: &str) -> u64 {
        self.lock().counts.get(operation).copied().unwrap_or(0)
    }

    /// Requests received per operation.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }

    /// Requests received per operation since the last take; starts counting afresh.
    pub fn take_request_counts(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.lock().counts)
    }

    /// Counts the request and asks the hook for its fault.
    fn decide(&self, operation: &str, body: Option<&Value>) -> Fault {
        let mut state = self.lock();
        let state = &mut *state;
        let number = state.counts.entry(operation.to_owned()).or_insert(0);
        *number += 1;
        let number = *number;
        state.sequence += 1;
        let (Some(hook), Some(body)) = (state.hook.as_mut(), body) else {
            return Fault::None;
        };
        let request = Request {
            operation,
            body,
            number,
            sequence: state.sequence,
        };
        hook.decide(&request, &mut state.db.tables)
    }

    /// Applies a request and gives its answer.
    fn apply(&self, operation: &str, body: &Value, twist: &Twist) -> Reply {
        let result = ops::apply(&mut self.lock().db, operation, body, twist);
        match result {
            Ok(answer) => Reply::ok(&answer),
            Err(error) => error.reply(),
        }
    }

    /// Answers one request: parse, fault, pause, apply.
    async fn handle(self, operation: String, body: Vec<u8>) -> Reply {
        let request: Value = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                self.decide(&operation, None);
                return ApiError::serialization(format!("the body is not JSON: {e}")).reply();
            }
        };
        let (delay, fault) = unwrap_delays(self.decide(&operation, Some(&request)));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Fault::FailBefore { status, code } => {
                ApiError::new(status, code.clone(), fault_message(&code)).reply()
            }
            Fault::LoseAnswer => {
                self.apply(&operation, &request, &Twist::None);
                Reply::Lost
            }
            Fault::FailAfter { status, code } => {
                self.apply(&operation, &request, &Twist::None);
                ApiError::new(status, code.clone(), fault_message(&code)).reply()
            }
            Fault::CancelTransaction { item, code } => {
                self.apply(&operation, &request, &Twist::Cancel { item, code })
            }
            Fault::Unprocessed { share } => {
                self.apply(&operation, &request, &Twist::Unprocessed(share))
            }
            Fault::None | Fault::Delay(_) | Fault::DelayThen(..) => {
                self.apply(&operation, &request, &Twist::None)
            }
        }
    }
}

/// The total pause of nested delays, and the fault after them.
fn unwrap_delays(mut fault: Fault) -> (Duration, Fault) {
    let mut delay = Duration::ZERO;
    loop {
        match fault {
            Fault::Delay(pause) => return (delay + pause, Fault::None),
            Fault::DelayThen(pause, then) => {
                delay += pause;
                fault = *then;
            }
            other => return (delay, other),
        }
    }
}

/// DynamoDB's message for an error code a fault answers with.
fn fault_message(code: &str) -> &'static str {
    match code {
        "ThrottlingException" => "Rate of requests exceeds the allowed throughput.",
        "ProvisionedThroughputExceededException" => {
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."
        }
        "InternalServerError" => "Internal server error",
        "RequestLimitExceeded" => {
            "Throughput exceeds the current throughput limit for your account."
        }
        _ => "Injected by the simulation",
    }
}

impl Service for DynamoDb {
    fn call(&self, operation: String, body: Vec<u8>) -> BoxFuture<'static, Reply> {
        Box::pin(self.clone().handle(operation, body))
    }
}

#[cfg(test)]
mod tests;

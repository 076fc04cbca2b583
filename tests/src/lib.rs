//! Integration-test harness for Shardline: SDK clients pointed at the local emulators
//! (kinesis-mock for Kinesis, moto for DynamoDB) and helpers that wait for the
//! emulators' asynchronous state changes.
//!
//! Run the tests with `scripts/test.sh`: it installs and starts the emulators and exports
//! their endpoints. A test that finds no endpoints panics; it never skips silently.
//!
//! ```no_run
//! use shardline_tests::{Emulators, kinesis, unique_name};
//!
//! # async fn example() {
//! let emulators = Emulators::from_env();
//! let client = emulators.kinesis();
//! let stream = unique_name("example");
//! kinesis::create_stream(&client, &stream, 1).await;
//! kinesis::put_records(&client, &stream, [("key", b"payload".as_slice())]).await;
//! let shard = &kinesis::list_shards(&client, &stream).await[0];
//! let read = kinesis::read_shard(&client, &stream, &shard.shard_id).await;
//! assert_eq!(read.records[0].data, b"payload");
//! kinesis::delete_stream(&client, &stream).await;
//! # }
//! ```

/// The README's Rust blocks, compiled as doctests, so that what a new user
/// copies builds (`tests/tests/it/own_function.rs` checks that it is also what
/// `shardline-cli new` writes).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The guide to a function of one's own, compiled the same way.
#[cfg(doctest)]
#[doc = include_str!("../../docs/your-function.md")]
pub struct OwnFunctionGuideDoctests;

pub mod counting;
pub mod delivered;
pub mod dynamodb;
pub mod fault_proxy;
pub mod kinesis;
pub mod lambda;
pub mod overlap;
pub mod recorder;
pub mod source;
pub mod speed;
pub mod workload;
pub mod yaml;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::config::{Credentials, SharedCredentialsProvider};

pub use counting::RequestCounter;

/// Environment variable with the Kinesis emulator's endpoint URL.
pub const KINESIS_ENDPOINT_VAR: &str = "SHARDLINE_TEST_KINESIS_ENDPOINT";
/// Environment variable with the DynamoDB emulator's endpoint URL.
pub const DYNAMODB_ENDPOINT_VAR: &str = "SHARDLINE_TEST_DYNAMODB_ENDPOINT";
/// Region of every test client.
pub const REGION: &str = "us-east-1";

/// Upper bound of every wait in the helpers (stream ACTIVE, reshard done, ...).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of one SDK operation, retries included: a hung emulator fails the test.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The endpoints of the running emulators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emulators {
    /// Kinesis endpoint URL, e.g. `http://127.0.0.1:4568`.
    pub kinesis_endpoint: String,
    /// DynamoDB endpoint URL, e.g. `http://127.0.0.1:5000`.
    pub dynamodb_endpoint: String,
}

impl Emulators {
    /// Reads the endpoints written by `scripts/emulators.sh start`.
    ///
    /// # Panics
    /// When `SHARDLINE_TEST_KINESIS_ENDPOINT` or `SHARDLINE_TEST_DYNAMODB_ENDPOINT` is
    /// unset or empty, with a message that tells how to start the emulators.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let endpoint = |name: &str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .unwrap_or_else(|| {
                    panic!(
                        "{name} is not set: the integration tests run against local \
                         emulators. Run them with `scripts/test.sh` (installs and starts \
                         the emulators), or start them yourself: `scripts/emulators.sh \
                         install && scripts/emulators.sh start && source \
                         .tools/emulators.env`, then `cargo test`."
                    )
                })
        };
        Self {
            kinesis_endpoint: endpoint(KINESIS_ENDPOINT_VAR),
            dynamodb_endpoint: endpoint(DYNAMODB_ENDPOINT_VAR),
        }
    }

    /// An `SdkConfig` for the Kinesis emulator (endpoint, region, dummy credentials).
    pub fn kinesis_sdk_config(&self) -> SdkConfig {
        sdk_config(&self.kinesis_endpoint)
    }

    /// An `SdkConfig` for the DynamoDB emulator (endpoint, region, dummy credentials).
    pub fn dynamodb_sdk_config(&self) -> SdkConfig {
        sdk_config(&self.dynamodb_endpoint)
    }

    /// A Kinesis config builder for the emulator, to add interceptors or change retries.
    pub fn kinesis_config(&self) -> aws_sdk_kinesis::config::Builder {
        aws_sdk_kinesis::config::Builder::from(&self.kinesis_sdk_config())
    }

    /// A DynamoDB config builder for the emulator, to add interceptors or change retries.
    pub fn dynamodb_config(&self) -> aws_sdk_dynamodb::config::Builder {
        aws_sdk_dynamodb::config::Builder::from(&self.dynamodb_sdk_config())
    }

    /// A Kinesis client for the emulator.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::from_conf(self.kinesis_config().build())
    }

    /// A DynamoDB client for the emulator.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(self.dynamodb_config().build())
    }

    /// A Kinesis client whose sent requests (retries included) are counted per operation.
    pub fn kinesis_counted(&self) -> (aws_sdk_kinesis::Client, RequestCounter) {
        let counter = RequestCounter::new();
        let config = self.kinesis_config().interceptor(counter.clone()).build();
        (aws_sdk_kinesis::Client::from_conf(config), counter)
    }

    /// A DynamoDB client whose sent requests (retries included) are counted per operation.
    pub fn dynamodb_counted(&self) -> (aws_sdk_dynamodb::Client, RequestCounter) {
        let counter = RequestCounter::new();
        let config = self.dynamodb_config().interceptor(counter.clone()).build();
        (aws_sdk_dynamodb::Client::from_conf(config), counter)
    }
}

fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(shardline::aws::https_client())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test",
            "test",
            None,
            None,
            "shardline-tests",
        )))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .build()
}

/// A name unique across parallel tests, test processes and runs: `prefix` (characters
/// other than `[A-Za-z0-9_.-]` become `-`, at most 64 kept), the process id, a
/// per-process counter and the time in milliseconds. Valid as a Kinesis stream name
/// and a DynamoDB table name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        clean.push_str("test");
    }
    format!("{clean}-{}-{count}-{millis}", std::process::id())
}

/// A fresh folder under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Makes `{temp}/{prefix}-...` (a [`unique_name`]).
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).expect("the temp dir is writable");
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_valid_name(name: &str) -> bool {
        (3..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }

    #[test]
    fn unique_names_differ_and_are_valid() {
        let first = unique_name("ledger");
        let second = unique_name("ledger");
        assert_ne!(first, second);
        assert!(first.starts_with("ledger-"), "{first}");
        assert!(is_valid_name(&first), "{first}");
    }

    #[test]
    fn unique_name_cleans_and_bounds_the_prefix() {
        let name = unique_name(&format!("a b/c:{}", "x".repeat(200)));
        assert!(name.starts_with("a-b-c-x"), "{name}");
        assert!(is_valid_name(&name), "{name}");
        assert!(is_valid_name(&unique_name("")));
    }

    #[test]
    fn endpoints_come_from_the_variables() {
        let emulators = Emulators::from_lookup(|name| match name {
            KINESIS_ENDPOINT_VAR => Some("http://127.0.0.1:1".into()),
            DYNAMODB_ENDPOINT_VAR => Some("http://127.0.0.1:2".into()),
            _ => None,
        });
        assert_eq!(emulators.kinesis_endpoint, "http://127.0.0.1:1");
        assert_eq!(emulators.dynamodb_endpoint, "http://127.0.0.1:2");
    }

    #[test]
    #[should_panic(expected = "SHARDLINE_TEST_KINESIS_ENDPOINT is not set")]
    fn missing_endpoints_panic_with_instructions() {
        Emulators::from_lookup(|_| None);
    }

    #[test]
    #[should_panic(expected = "scripts/test.sh")]
    fn empty_endpoint_panics_too() {
        Emulators::from_lookup(|name| (name == KINESIS_ENDPOINT_VAR).then(|| "http://x".into()));
    }
}

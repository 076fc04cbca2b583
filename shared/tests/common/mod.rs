//! Helpers shared by the engine's integration tests: event JSON built by hand,
//! a scripted handler that records what it was given, a store wrapper that
//! counts calls, and a temporary folder for the embedded store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use shardline::decode::decode_event;
use shardline::quarantine::QuarantinedRecord;
use shardline::state::{EmbeddedStore, ShardKey, ShardState, StateStore};
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Position, Record, RecordOrigin,
    ShardRef, process_event,
};

pub const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/shardline-test";
pub const SHARD: &str = "shardId-000000000000";

/// A 56-digit sequence number that grows with `n` (n < 1,000,000).
pub fn seq(n: u64) -> String {
    format!("49590338271490256608559692538361571095921575989136{n:06}")
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Epoch seconds of `ago` before now.
pub fn seconds_ago(ago: Duration) -> f64 {
    (SystemTime::now() - ago)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One record of a Lambda Kinesis event, as Lambda sends it.
#[derive(Clone, Debug)]
pub struct Rec {
    pub shard: String,
    pub sequence: String,
    pub partition_key: String,
    /// The `data` field exactly as it goes into the JSON (normally base64).
    pub data_field: String,
    /// `approximateArrivalTimestamp`; `None` leaves the field out.
    pub arrival: Option<f64>,
}

impl Rec {
    /// A plain record with `payload` (base64-encoded into the event), arriving now.
    pub fn new(sequence: impl Into<String>, payload: &[u8]) -> Self {
        Rec {
            shard: SHARD.into(),
            sequence: sequence.into(),
            partition_key: "pk".into(),
            data_field: b64(payload),
            arrival: Some(seconds_ago(Duration::ZERO)),
        }
    }

    /// A record whose `data` field is `raw` as is (not base64-encoded by the test).
    pub fn raw(sequence: impl Into<String>, raw: &str) -> Self {
        Rec {
            data_field: raw.into(),
            ..Rec::new(sequence, b"")
        }
    }

    pub fn arrived(mut self, arrival: Option<f64>) -> Self {
        self.arrival = arrival;
        self
    }

    pub fn key(mut self, partition_key: &str) -> Self {
        self.partition_key = partition_key.into();
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut kinesis = serde_json::json!({
            "kinesisSchemaVersion": "1.0",
            "partitionKey": self.partition_key,
            "sequenceNumber": self.sequence,
            "data": self.data_field,
        });
        if let Some(arrival) = self.arrival {
            kinesis["approximateArrivalTimestamp"] = arrival.into();
        }
        serde_json::json!({
            "kinesis": kinesis,
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{}:{}", self.shard, self.sequence),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/shardline-test",
            "awsRegion": "us-east-1",
            "eventSourceARN": STREAM,
        })
    }
}

/// The JSON bytes of a Lambda Kinesis event holding `records`.
pub fn event(records: &[Rec]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = records.iter().map(Rec::to_json).collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

/// What a handler was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub sequence: String,
    pub subsequence: u64,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    pub origin: RecordOrigin,
}

impl Seen {
    pub fn position(&self) -> (String, u64) {
        (self.sequence.clone(), self.subsequence)
    }
}

type Script = dyn Fn(&Record) -> Result<(), HandlerError> + Send + Sync;

/// A handler whose outcome per record is a closure, that records every record
/// it is handed, and that can sleep before answering.
#[derive(Clone)]
pub struct Scripted {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
    delay: Duration,
}

impl Scripted {
    pub fn new(
        script: impl Fn(&Record) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        Scripted {
            seen: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(script),
            delay: Duration::ZERO,
        }
    }

    /// Succeeds on every record.
    pub fn ok() -> Self {
        Scripted::new(|_| Ok(()))
    }

    /// Sleeps `delay` (tokio) in every call.
    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The sequence numbers handed over, in order (subsequences left out).
    pub fn seen_sequences(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.sequence).collect()
    }

    /// The payloads handed over, as text.
    pub fn seen_texts(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|s| String::from_utf8_lossy(&s.data).into_owned())
            .collect()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Handler for Scripted {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(Seen {
            sequence: record.position.sequence.to_string(),
            subsequence: record.position.subsequence,
            partition_key: record.partition_key.clone(),
            explicit_hash_key: record.explicit_hash_key.clone(),
            data: record.data.to_vec(),
            origin: record.origin,
        });
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (self.script)(record)
    }
}

/// A retryable failure, as `?` on an I/O error makes it.
pub fn retryable(what: &str) -> HandlerError {
    std::io::Error::other(what.to_owned()).into()
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "shardline-it-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temporary embedded store and the engine's configuration.
pub struct Env {
    pub store: EmbeddedStore,
    pub config: EngineConfig,
    // Dropped last: the folder goes after the store is closed.
    pub dir: TempDir,
}

impl Env {
    pub fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        Env {
            dir,
            store,
            config: EngineConfig::new(format!("consumer-{tag}")),
        }
    }

    /// Decodes `event` and runs the engine on it with no deadline.
    pub async fn run(&self, event: &[u8], handler: &Scripted) -> BatchOutcome {
        self.run_until(event, handler, Deadline::none()).await
    }

    pub async fn run_until(
        &self,
        event: &[u8],
        handler: &Scripted,
        deadline: Deadline,
    ) -> BatchOutcome {
        let decoded = decode_event(event).expect("the test event decodes");
        process_event(decoded, handler, &self.store, &self.config, deadline)
            .await
            .expect("the engine runs")
    }

    pub fn key(&self) -> ShardKey {
        ShardKey {
            consumer: self.config.consumer.clone(),
            shard: ShardRef {
                stream_arn: Arc::from(STREAM),
                shard_id: Arc::from(SHARD),
            },
        }
    }

    /// The stored state of the test shard.
    pub async fn state(&self) -> ShardState {
        self.store.load_shard(&self.key()).await.unwrap()
    }

    pub async fn checkpoint(&self) -> Option<(String, u64)> {
        self.state()
            .await
            .progress
            .checkpoint
            .map(|p| (p.sequence.to_string(), p.subsequence))
    }

    pub async fn quarantined(&self) -> Vec<QuarantinedRecord> {
        self.store.quarantined(&self.config.consumer).await.unwrap()
    }
}

/// The item identifiers of a response.
pub fn failures(outcome: &BatchOutcome) -> Vec<String> {
    outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

pub fn pos(sequence: &str, subsequence: u64) -> Position {
    Position::new(sequence.parse().unwrap(), subsequence)
}

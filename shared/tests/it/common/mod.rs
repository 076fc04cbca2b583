//! Helpers shared by the engine's integration tests: event JSON built by hand,
//! a scripted handler that records what it was given, a store wrapper that
//! counts calls, and a temporary folder for the embedded store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shardline::decode::decode_event;
use shardline::quarantine::QuarantinedRecord;
use shardline::state::{ConsumerShard, EmbeddedStore, ShardState, StateStore};
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Position, Record, RecordOrigin,
    ShardRef, process_event,
};

pub(crate) use shardline::sample::{SAMPLE_SHARD as SHARD, SAMPLE_STREAM_ARN as STREAM};

/// A 56-digit sequence number that grows with `n` (n < 1,000,000).
pub(crate) fn seq(n: u64) -> String {
    format!("49590338271490256608559692538361571095921575989136{n:06}")
}

/// Epoch seconds of `ago` before now.
pub(crate) fn seconds_ago(ago: Duration) -> f64 {
    shardline::sample::epoch_seconds(SystemTime::now() - ago)
}

/// One record of a Lambda Kinesis event: the framework's sample builder.
pub(crate) type Rec = shardline::sample::SampleRecord;

/// The JSON bytes of a Lambda Kinesis event holding `records`.
pub(crate) fn event(records: &[Rec]) -> Vec<u8> {
    shardline::sample::event_bytes(records)
}

/// What a handler was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub sequence: String,
    pub subsequence: u64,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    pub origin: RecordOrigin,
}

impl Seen {
    pub(crate) fn position(&self) -> (String, u64) {
        (self.sequence.clone(), self.subsequence)
    }
}

type Script = dyn Fn(&Record) -> Result<(), HandlerError> + Send + Sync;

/// A handler whose outcome per record is a closure, that records every record
/// it is handed, and that can sleep before answering.
#[derive(Clone)]
pub(crate) struct Scripted {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
    delay: Duration,
}

impl Scripted {
    pub(crate) fn new(
        script: impl Fn(&Record) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        Scripted {
            seen: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(script),
            delay: Duration::ZERO,
        }
    }

    /// Succeeds on every record.
    pub(crate) fn ok() -> Self {
        Scripted::new(|_| Ok(()))
    }

    /// Sleeps `delay` (tokio) in every call.
    pub(crate) fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The sequence numbers handed over, in order (subsequences left out).
    pub(crate) fn seen_sequences(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.sequence).collect()
    }

    /// The payloads handed over, as text.
    pub(crate) fn seen_texts(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|s| String::from_utf8_lossy(&s.data).into_owned())
            .collect()
    }

    pub(crate) fn clear(&self) {
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
pub(crate) fn retryable(what: &str) -> HandlerError {
    std::io::Error::other(what.to_owned()).into()
}

/// A fresh folder under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
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

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A temporary embedded store and the engine's configuration.
pub(crate) struct Env {
    pub store: EmbeddedStore,
    pub config: EngineConfig,
    // Dropped last: the folder goes after the store is closed.
    pub dir: TempDir,
}

impl Env {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        Env {
            dir,
            store,
            config: EngineConfig::new(format!("consumer-{tag}")),
        }
    }

    /// Decodes `event` and runs the engine on it with no deadline.
    pub(crate) async fn run(&self, event: &[u8], handler: &Scripted) -> BatchOutcome {
        self.run_until(event, handler, Deadline::none()).await
    }

    pub(crate) async fn run_until(
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

    pub(crate) fn key(&self) -> ConsumerShard {
        ConsumerShard {
            consumer: self.config.consumer.clone(),
            shard: ShardRef {
                stream_arn: Arc::from(STREAM),
                shard_id: Arc::from(SHARD),
            },
        }
    }

    /// The stored state of the test shard.
    pub(crate) async fn state(&self) -> ShardState {
        self.store.load_shard(&self.key()).await.unwrap()
    }

    pub(crate) async fn checkpoint(&self) -> Option<(String, u64)> {
        self.state()
            .await
            .progress
            .checkpoint
            .map(|p| (p.sequence.to_string(), p.subsequence))
    }

    pub(crate) async fn quarantined(&self) -> Vec<QuarantinedRecord> {
        self.store.quarantined(&self.config.consumer).await.unwrap()
    }
}

/// The item identifiers of a response.
pub(crate) fn failures(outcome: &BatchOutcome) -> Vec<String> {
    outcome
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

pub(crate) fn pos(sequence: &str, subsequence: u64) -> Position {
    Position::new(sequence.parse().unwrap(), subsequence)
}

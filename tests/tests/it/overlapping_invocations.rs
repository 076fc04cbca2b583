//! Overlapping invocations in one process, as on Lambda Managed Instances: one
//! store and one handler shared by every invocation (as `App` shares them), on
//! both stores. Batches of different shards run at once; and an old batch of a
//! shard, redelivered while a newer one of the same shard runs, is settled by
//! the version fence exactly as it is across processes (one store each).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shardline::decode::decode_event;
use shardline::state::{ConsumerShard, DynamoDbStore, EmbeddedStore, StateStore};
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Record, ShardRef, process_event,
};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::overlap::{Probe, jitter, number};
use shardline_tests::{Emulators, TempDir, unique_name};
use tokio::sync::Notify;

const STREAM: &str = "lmi";
const CONSUMER: &str = "lmi";

/// Which store: every invocation opens its own (`open`), sharing the folder or table.
enum Backend {
    Embedded(TempDir),
    DynamoDb(String),
}

impl Backend {
    fn embedded() -> Self {
        Backend::Embedded(TempDir::new("lmi-state"))
    }

    async fn dynamodb() -> Self {
        let table = unique_name("lmi-state");
        DynamoDbStore::new(Emulators::from_env().dynamodb(), &table)
            .create_table()
            .await
            .unwrap();
        Backend::DynamoDb(table)
    }

    /// A store of its own, as another process would open it.
    fn open(&self) -> Arc<dyn StateStore> {
        match self {
            Backend::Embedded(dir) => Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
            Backend::DynamoDb(table) => {
                Arc::new(DynamoDbStore::new(Emulators::from_env().dynamodb(), table))
            }
        }
    }
}

fn shard_event(shard: &str, count: u64) -> Vec<u8> {
    let records = made_up(
        0,
        count,
        |i| format!("k-{}", i % 3),
        |i| i.to_string().into(),
    );
    event(&stream_arn(STREAM), shard, &records)
}

async fn invoke<H: Handler>(
    json: &[u8],
    handler: Arc<H>,
    store: Arc<dyn StateStore>,
) -> BatchOutcome {
    let config = EngineConfig::new(CONSUMER);
    let decoded = decode_event(json).unwrap();
    process_event(decoded, &*handler, &*store, &config, Deadline::none())
        .await
        .unwrap()
}

async fn checkpoint(store: &dyn StateStore, shard: &str, count: u64) -> bool {
    let key = ConsumerShard {
        consumer: CONSUMER.into(),
        shard: ShardRef {
            stream_arn: Arc::from(stream_arn(STREAM)),
            shard_id: Arc::from(shard),
        },
    };
    let state = store.load_shard(&key).await.unwrap();
    let last = shardline::sample::sequence_number(count - 1);
    state
        .progress
        .checkpoint
        .is_some_and(|p| p.sequence.to_string() == last)
}

/// Eight shards' batches at once, on one store and one handler: every record
/// done once, every shard checkpointed at its last record.
async fn shards_at_once(backend: Backend) {
    let store = backend.open();
    let probe = Arc::new(Probe::new(jitter));
    let shards: Vec<String> = (0..8).map(|s| format!("shardId-{s:012}")).collect();
    let runs: Vec<_> = shards
        .iter()
        .map(|shard| {
            let (json, probe, store) = (shard_event(shard, 25), probe.clone(), store.clone());
            tokio::spawn(async move { invoke(&json, probe, store).await })
        })
        .collect();
    for run in runs {
        let outcome = run.await.unwrap();
        assert!(outcome.response.is_success(), "{:?}", outcome.report);
        assert_eq!(outcome.report.processed, 25);
    }
    assert!(
        probe.most.load(Ordering::SeqCst) > 1,
        "the batches overlapped"
    );
    let mut done = probe.done();
    done.sort_unstable();
    let expected: Vec<u64> = (0..25).flat_map(|n| [n; 8]).collect();
    assert_eq!(done, expected, "each shard's records once");
    for shard in &shards {
        assert!(checkpoint(&*store, shard, 25).await, "{shard}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_different_shards_at_once_on_the_embedded_store() {
    shards_at_once(Backend::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_different_shards_at_once_on_dynamodb() {
    shards_at_once(Backend::dynamodb().await).await;
}

/// Holds the first call of record 0 until released: the old invocation,
/// which Lambda gave up on, still running.
struct Held {
    held: AtomicBool,
    waiting: Notify,
    release: Notify,
    probe: Probe,
}

impl Handler for Held {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        if number(record) == 0 && !self.held.swap(true, Ordering::SeqCst) {
            self.waiting.notify_one();
            self.release.notified().await;
        }
        self.probe.handle(record).await
    }
}

/// What the old invocation and the redelivery after it came to.
#[derive(Debug, PartialEq)]
struct Settled {
    newer_success: bool,
    old_success: bool,
    old_superseded: u64,
    checkpointed: bool,
    retry_processed: u64,
    retry_skipped: u64,
}

/// The old batch (held at record 0) and a redelivery of it that runs to the
/// end meanwhile; then Lambda's retry of the old one. `stores` gives each
/// invocation its store: one shared, or one each.
async fn redelivered_while_running(stores: impl Fn() -> Arc<dyn StateStore>) -> Settled {
    let shard = "shardId-000000000000";
    let json = shard_event(shard, 10);
    let held = Arc::new(Held {
        held: AtomicBool::new(false),
        waiting: Notify::new(),
        release: Notify::new(),
        probe: Probe::new(|_| Duration::ZERO),
    });
    let old = tokio::spawn({
        let (json, held, store) = (json.clone(), held.clone(), stores());
        async move { invoke(&json, held, store).await }
    });
    held.waiting.notified().await;
    let newer = invoke(&json, held.clone(), stores()).await;
    held.release.notify_one();
    let old = old.await.unwrap();
    let store = stores();
    let retry = invoke(&json, held.clone(), store.clone()).await;
    Settled {
        newer_success: newer.response.is_success(),
        old_success: old.response.is_success(),
        old_superseded: old.report.superseded,
        checkpointed: checkpoint(&*store, shard, 10).await,
        retry_processed: retry.report.processed,
        retry_skipped: retry.report.skipped(),
    }
}

async fn the_fence_settles_a_redelivery_alike(backend: Backend) {
    let shared = backend.open();
    let in_one_process = redelivered_while_running(|| shared.clone()).await;
    let other = match backend {
        Backend::Embedded(_) => Backend::embedded(),
        Backend::DynamoDb(_) => Backend::dynamodb().await,
    };
    let across_processes = redelivered_while_running(|| other.open()).await;
    let expected = Settled {
        newer_success: true,
        old_success: false,
        old_superseded: 1,
        checkpointed: true,
        retry_processed: 0,
        retry_skipped: 10,
    };
    assert_eq!(in_one_process, expected, "in one process");
    assert_eq!(across_processes, expected, "across processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_batch_redelivered_while_a_newer_runs_is_fenced_in_one_process_as_across_on_the_embedded_store()
 {
    the_fence_settles_a_redelivery_alike(Backend::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_batch_redelivered_while_a_newer_runs_is_fenced_in_one_process_as_across_on_dynamodb()
 {
    the_fence_settles_a_redelivery_alike(Backend::dynamodb().await).await;
}

/// A fan-out whose batch `a` stops after buffering its first record until the
/// other batch has begun (two slots of one shard in one process).
struct Interleaved {
    fanout: shardline::sink::FanOut,
    begun: std::sync::atomic::AtomicUsize,
    both_begun: Notify,
}

impl Handler for Interleaved {
    async fn begin(&self, batch: &shardline::Batch<'_>) {
        self.fanout.begin(batch).await;
        if self.begun.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
            self.both_begun.notify_waiters();
        }
    }

    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.fanout.handle(record).await?;
        let waiting = self.both_begun.notified();
        if record.ordering_key() == "a" && self.begun.load(Ordering::SeqCst) < 2 {
            waiting.await;
        }
        Ok(())
    }

    async fn flush(&self, batch: &shardline::Batch<'_>) -> Result<(), shardline::FlushError> {
        self.fanout.flush(batch).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slots_of_one_shard_at_once_keep_their_fan_out_buffers_apart() {
    use shardline::sink::{FanOut, Sink, StaticDestinations, file::FileSink};
    let dir = TempDir::new("lmi-slots");
    let out = dir.path().join("copies.jsonl");
    let sink: Arc<dyn Sink> = Arc::new(FileSink::new("copies", &out));
    let handler = Arc::new(Interleaved {
        fanout: FanOut::new(StaticDestinations(vec![sink]), 1024 * 1024),
        begun: std::sync::atomic::AtomicUsize::new(0),
        both_begun: Notify::new(),
    });
    let store: Arc<dyn StateStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut config = EngineConfig::new(CONSUMER);
    config.progress = shardline::ProgressMode::PartitionKey;
    // The shard's records by key: slot `a` and slot `b`, as Lambda splits a
    // shard by partition key hash with ParallelizationFactor 2.
    let records = made_up(
        0,
        10,
        |i| if i % 2 == 0 { "a" } else { "b" }.into(),
        |i| i.to_string().into(),
    );
    let slots: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|key| {
            let mine: Vec<_> = records
                .iter()
                .filter(|r| r.partition_key == key)
                .cloned()
                .collect();
            let json = event(&stream_arn(STREAM), "shardId-000000000000", &mine);
            let (handler, store, config) = (handler.clone(), store.clone(), config.clone());
            tokio::spawn(async move {
                let decoded = decode_event(&json).unwrap();
                process_event(decoded, &*handler, &*store, &config, Deadline::none())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for slot in slots {
        let outcome = slot.await.unwrap();
        assert!(outcome.response.is_success(), "{:?}", outcome.report);
    }
    let copies = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(
        copies.lines().count(),
        10,
        "every record copied once:\n{copies}"
    );
}

/// A sink that notes the log span each of its sends runs in.
#[derive(Debug)]
struct SpanNoting {
    inner: Arc<dyn shardline::sink::Sink>,
    spans: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl shardline::sink::Sink for SpanNoting {
    fn destination(&self) -> &str {
        self.inner.destination()
    }

    fn max_record_bytes(&self) -> usize {
        self.inner.max_record_bytes()
    }

    async fn send(
        &self,
        records: &[shardline::sink::OutRecord],
        deadline: Deadline,
    ) -> shardline::sink::SendOutcome {
        let span = tracing::Span::current();
        let name = span.metadata().map(|m| m.name().to_owned());
        self.spans.lock().unwrap().push(name);
        self.inner.send(records, deadline).await
    }
}

/// A fan-out sends to its destinations on tasks of their own; their log lines
/// (a destination refusing writes, a retry) still carry the invocation's
/// span, so that on Lambda Managed Instances they name their request.
#[tokio::test]
async fn a_fan_outs_sends_stay_in_their_invocations_log_span() {
    use shardline::sink::{FanOut, Sink, StaticDestinations, file::FileSink};
    use tracing::Instrument as _;
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let dir = TempDir::new("lmi-spans");
    let noting = Arc::new(SpanNoting {
        inner: Arc::new(FileSink::new("copies", dir.path().join("copies.jsonl"))),
        spans: std::sync::Mutex::new(Vec::new()),
    });
    let sinks: Vec<Arc<dyn Sink>> = vec![noting.clone(), noting.clone()];
    let fanout = FanOut::new(StaticDestinations(sinks), 1024 * 1024);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let records = made_up(0, 4, |i| i.to_string(), |i| i.to_string().into());
    let json = event(&stream_arn(STREAM), "shardId-000000000000", &records);
    let decoded = decode_event(&json).unwrap();
    let config = EngineConfig::new(CONSUMER);
    let outcome = process_event(decoded, &fanout, &store, &config, Deadline::none())
        .instrument(tracing::info_span!("invocation-under-test"))
        .await
        .unwrap();
    assert!(outcome.response.is_success(), "{:?}", outcome.report);
    let spans = noting.spans.lock().unwrap().clone();
    assert!(!spans.is_empty());
    for span in spans {
        assert_eq!(span.as_deref(), Some("invocation-under-test"));
    }
}

//! `shardline-cli source` renews a shard iterator that Kinesis refuses as expired
//! (item 8 of issue 19).
//!
//! Kinesis expires a shard iterator 5 minutes after returning it ("A shard
//! iterator expires 5 minutes after it is returned to the requester",
//! <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html>),
//! and an expired iterator never works again. A reader meets one after a run
//! of failed GetRecords or a long back-pressure pause. The fault proxy in front
//! of kinesis-mock expires the iterator of chosen GetRecords calls (that call
//! and every later one with the same iterator get `ExpiredIteratorException`).
//! The source must take a new iterator just after the last record it read (at
//! the shard's starting position when it has read nothing yet), so every record
//! is delivered once, in order, the shard's children start, and
//! `--until-idle` returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use shardline_tests::fault_proxy::{FaultProxy, Faults};
use shardline_tests::kinesis;
use shardline_tests::source::{Running, binaries, clean_command};
use shardline_tests::{Emulators, unique_name};

/// Far more than a run needs (a few seconds): a reader stuck on an expired
/// iterator keeps the source from going idle, and the run is cut here.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// A stream, a fault proxy in front of kinesis-mock, and the probe's log.
struct Expiry {
    /// Straight to kinesis-mock: the test's own puts and splits.
    client: aws_sdk_kinesis::Client,
    proxy: FaultProxy,
    stream: String,
    dir: PathBuf,
}

/// What a run of the source came to.
struct Run {
    summary: Value,
    /// The labels the function was given, invocation after invocation.
    delivered: Vec<String>,
}

impl Expiry {
    /// A one-shard stream, and a proxy that expires the iterator of the
    /// GetRecords calls numbered `expire` (1-based).
    async fn new(expire: &[u32]) -> Expiry {
        let emulators = Emulators::from_env();
        let client = emulators.kinesis();
        let stream = unique_name("iterator-expiry");
        kinesis::create_stream(&client, &stream, 1).await;
        let faults = Faults {
            expire_get_records_nth: expire.to_vec(),
            ..Faults::default()
        };
        let proxy = FaultProxy::start(&emulators.kinesis_endpoint, &faults);
        let dir = std::env::temp_dir().join(unique_name("iterator-expiry"));
        std::fs::create_dir_all(&dir).expect("the probe's folder");
        Expiry {
            client,
            proxy,
            stream,
            dir,
        }
    }

    /// Puts `count` records round-robin over `keys` partition keys, each
    /// labelled `KEY/N` (N counting that key's records from `first`), in order.
    async fn put(&self, keys: usize, first: usize, count: usize) {
        let records: Vec<(String, String)> = (0..count)
            .map(|i| {
                let key = format!("k{}", i % keys);
                let label = format!("{key}/{:05}", first + i / keys);
                (key, label)
            })
            .collect();
        kinesis::put_records(
            &self.client,
            &self.stream,
            records.iter().map(|(k, l)| (k.as_str(), l.as_bytes())),
        )
        .await;
    }

    /// Runs the source, through the proxy, with the probe until idle.
    fn run(&self) -> Run {
        let log = self.dir.join("probe-log");
        let bins = binaries();
        let mut command = clean_command(&bins.shardline);
        command
            .args(["source", "--stream", &self.stream, "--seed", "1"])
            .args(["--until-idle", "2"])
            .arg("--")
            .arg(&bins.probe)
            .env("AWS_ENDPOINT_URL_KINESIS", &self.proxy.endpoint)
            .env("PROBE_LOG", &log);
        let summary = Running::start(command).summary(RUN_LIMIT);
        let delivered = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .flat_map(|line| {
                serde_json::from_str::<Vec<String>>(line)
                    .unwrap_or_else(|e| panic!("probe log line {line:?}: {e}"))
            })
            .collect();
        Run { summary, delivered }
    }

    /// How many GetRecords the proxy refused as expired.
    fn expired_answers(&self) -> u64 {
        self.proxy.stats()["injected_expired_iterators"]
            .as_u64()
            .unwrap_or_default()
    }
}

impl Run {
    fn count(&self, what: &str) -> u64 {
        self.summary[what]
            .as_u64()
            .unwrap_or_else(|| panic!("{what} in {}", self.summary))
    }

    /// The labels delivered per partition key, in delivery order.
    fn per_key(&self) -> BTreeMap<String, Vec<String>> {
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for label in &self.delivered {
            let key = label.split('/').next().unwrap_or_default();
            keys.entry(key.to_owned()).or_default().push(label.clone());
        }
        keys
    }
}

/// The labels `Expiry::put` gives `count` records of one key from 0.
fn labels_of(key: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{key}/{n:05}")).collect()
}

#[tokio::test]
async fn an_iterator_expiring_mid_stream_is_renewed_after_the_last_record_read() {
    // GetRecords pages 1,000 records on kinesis-mock: the second and fourth
    // calls come after the first and the second thousand.
    let expiry = Expiry::new(&[2, 4]).await;
    expiry.put(1, 0, 2_500).await;
    let run = expiry.run();
    assert_eq!(
        run.delivered,
        labels_of("k0", 2_500),
        "every record once, in order"
    );
    assert_eq!(run.count("records_read"), 2_500, "{}", run.summary);
    assert!(
        expiry.expired_answers() >= 2,
        "the reader met both expired iterators: {}",
        expiry.proxy.stats()
    );
}

#[tokio::test]
async fn an_iterator_expiring_before_the_first_record_is_renewed_at_the_starting_position() {
    let expiry = Expiry::new(&[1]).await;
    expiry.put(1, 0, 300).await;
    let run = expiry.run();
    assert_eq!(run.delivered, labels_of("k0", 300), "every record once");
    assert_eq!(run.count("records_read"), 300, "{}", run.summary);
    assert!(expiry.expired_answers() >= 1, "{}", expiry.proxy.stats());
}

#[tokio::test]
async fn a_parent_whose_iterator_expires_is_read_to_its_end_and_its_children_start() {
    let expiry = Expiry::new(&[2]).await;
    expiry.put(8, 0, 1_600).await;
    let shards = kinesis::list_shards(&expiry.client, &expiry.stream).await;
    kinesis::split_shard(&expiry.client, &expiry.stream, &shards[0].shard_id).await;
    // The children hold the keys' later records (200 a key after 200 in the parent).
    expiry.put(8, 200, 1_600).await;
    // Children start only once their parent is finished: the first GetRecords
    // calls are the parent's, and the second meets the expired iterator.
    let run = expiry.run();
    let per_key = run.per_key();
    assert_eq!(per_key.len(), 8, "{}", run.summary);
    for (key, delivered) in &per_key {
        assert_eq!(
            delivered,
            &labels_of(key, 400),
            "{key}: once each, in order"
        );
    }
    assert_eq!(run.count("records_read"), 3_200, "{}", run.summary);
    assert_eq!(
        run.count("shards_finished"),
        1,
        "the parent: {}",
        run.summary
    );
    assert!(expiry.expired_answers() >= 1, "{}", expiry.proxy.stats());
}

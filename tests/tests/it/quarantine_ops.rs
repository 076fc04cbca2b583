//! Quarantine operations, every case on both stores (the embedded SQLite store
//! and the DynamoDB store on moto; redrive also on kinesis-mock): filters and
//! purge, replay in shard order with failures kept, a dry run, an interrupted
//! replay that applies no record twice, and redrive with partition and
//! explicit hash keys. `quarantine_ops/replay_keys.rs`: a key's order across a
//! failure, and replays running at the same time.

#[path = "quarantine_ops/old_paths.rs"]
mod old_paths;
#[path = "quarantine_ops/replay_keys.rs"]
mod replay_keys;

use replay_keys::{
    a_key_waits_behind_its_record_that_is_not_applied,
    a_take_over_takes_only_claims_started_at_or_before_its_cut_off,
    include_interrupted_leaves_alone_a_record_another_replay_is_applying,
};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use shardline::quarantine::{QuarantineFilter, QuarantineReason, QuarantinedRecord};
use shardline::quarantine::{RedriveOutcome, ReplayOptions, ReplayOutcome, redrive, replay};
use shardline::state::{
    ConsumerShard, DynamoDbStore, EmbeddedStore, Progress, Settled, StateStore,
};
use shardline::{Handler, HandlerError, Record, ShardRef};
use shardline_tests::kinesis::{create_stream, list_shards, read_shard};
use shardline_tests::{Emulators, TempDir, unique_name};

const CONSUMER: &str = "ops";
const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/ops";

fn seq(n: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{n:010}")
}

/// A quarantined record of `shard` at sequence `n` with payload `data`,
/// quarantined at `at`.
fn entry(shard: &str, n: u64, data: &str, reason: QuarantineReason, at: u64) -> QuarantinedRecord {
    QuarantinedRecord {
        stream_arn: STREAM.into(),
        shard_id: shard.into(),
        sequence_number: seq(n),
        subsequence_number: 0,
        partition_key: format!("key-{data}"),
        reason,
        detail: "first failure".into(),
        attempts: 3,
        quarantined_at: at,
        data: Bytes::from(data.to_owned()),
        explicit_hash_key: None,
        replay_started_at: None,
    }
}

/// Stores `records` as the engine does: with a commit of their shard.
async fn seed(store: &dyn StateStore, records: Vec<QuarantinedRecord>) {
    let mut shards: Vec<String> = records.iter().map(|r| r.shard_id.clone()).collect();
    shards.dedup();
    for shard in shards {
        let key = ConsumerShard {
            consumer: CONSUMER.into(),
            shard: ShardRef {
                stream_arn: Arc::from(STREAM),
                shard_id: Arc::from(shard.as_str()),
            },
        };
        let settled = Settled {
            quarantine: records
                .iter()
                .filter(|r| r.shard_id == shard)
                .cloned()
                .collect(),
            released: Vec::new(),
            ..Settled::default()
        };
        let read = store.load_shard(&key).await.unwrap();
        store
            .commit(&key, read.progress.version, &Progress::default(), &settled)
            .await
            .unwrap();
    }
}

async fn listed(store: &dyn StateStore) -> Vec<QuarantinedRecord> {
    QuarantineFilter::default().select(store.quarantined(CONSUMER).await.unwrap())
}

fn payloads(records: &[QuarantinedRecord]) -> Vec<String> {
    let mut texts: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    texts.sort();
    texts
}

/// Applies records by payload: `bad*` fails for good, `flaky*` fails for now,
/// `hang*` is applied and then never answers (as if the process were killed
/// after the record took effect) while `hang` is set; the rest succeed. While
/// `gated` is set, the first `gate*` record's handler says it is `inside` and
/// waits for `gate` before it applies the record.
#[derive(Default)]
struct Applier {
    applied: Mutex<Vec<String>>,
    hang: AtomicBool,
    gated: AtomicBool,
    inside: tokio::sync::Notify,
    gate: tokio::sync::Notify,
}

impl Handler for Applier {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let text = record.text().unwrap_or_default().to_owned();
        if text.starts_with("bad") {
            return Err(HandlerError::permanent(format!("{text} is still bad")));
        }
        if text.starts_with("flaky") {
            return Err(HandlerError::retryable(format!("{text}: try later")));
        }
        if text.starts_with("gate") && self.gated.swap(false, Ordering::SeqCst) {
            self.inside.notify_one();
            self.gate.notified().await;
        }
        self.applied.lock().unwrap().push(text.clone());
        if text.starts_with("hang") && self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

impl Applier {
    fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }
}

async fn filters_select_and_purge_removes_only_what_they_select(store: &dyn StateStore) {
    use QuarantineReason::{Exhausted, Permanent, Undecodable};
    seed(
        store,
        vec![
            entry("shardId-a", 1, "a1", Permanent, 1_000),
            entry("shardId-a", 2, "a2", Exhausted, 2_000),
            entry("shardId-b", 1, "b1", Permanent, 3_000),
            entry("shardId-b", 2, "b2", Undecodable, 4_000),
        ],
    )
    .await;
    let select = |filter: QuarantineFilter| async move {
        payloads(&filter.select(store.quarantined(CONSUMER).await.unwrap()))
    };
    let shard_b = QuarantineFilter {
        shard: Some("shardId-b".into()),
        ..Default::default()
    };
    assert_eq!(select(shard_b).await, ["b1", "b2"]);
    let window = QuarantineFilter {
        since: Some(2_000),
        until: Some(4_000),
        ..Default::default()
    };
    assert_eq!(select(window).await, ["a2", "b1"]);
    let permanent = QuarantineFilter {
        reason: Some(Permanent),
        limit: Some(1),
        ..Default::default()
    };
    let doomed = permanent.select(store.quarantined(CONSUMER).await.unwrap());
    assert_eq!(payloads(&doomed), ["a1"], "the oldest permanent one");
    for record in &doomed {
        assert!(
            store
                .remove_quarantined(CONSUMER, &record.key())
                .await
                .unwrap()
        );
        assert!(
            !store
                .remove_quarantined(CONSUMER, &record.key())
                .await
                .unwrap()
        );
    }
    assert_eq!(payloads(&listed(store).await), ["a2", "b1", "b2"]);
}

async fn replay_runs_each_shard_in_order_and_keeps_what_fails_again(store: &dyn StateStore) {
    use QuarantineReason::{Exhausted, Permanent};
    // Quarantined in the reverse of their order in the shard.
    seed(
        store,
        vec![
            entry("shardId-a", 3, "a3", Exhausted, 10),
            entry("shardId-a", 2, "bad-a2", Permanent, 20),
            entry("shardId-a", 1, "a1", Exhausted, 30),
            entry("shardId-b", 2, "b2", Exhausted, 40),
            entry("shardId-b", 1, "flaky-b1", Exhausted, 50),
        ],
    )
    .await;
    let handler = Applier::default();
    let mut seen = Vec::new();
    let records = listed(store).await;
    let outcomes = replay(
        store,
        &handler,
        CONSUMER,
        records,
        &ReplayOptions::default(),
        |r, _| seen.push(String::from_utf8_lossy(&r.data).into_owned()),
    )
    .await
    .unwrap();
    assert_eq!(
        seen,
        ["a1", "bad-a2", "a3", "flaky-b1", "b2"],
        "shard order"
    );
    assert_eq!(handler.applied(), ["a1", "a3", "b2"]);
    assert_eq!(outcomes[0], ReplayOutcome::Replayed);
    assert_eq!(
        outcomes[1],
        ReplayOutcome::Failed {
            reason: Permanent,
            detail: "bad-a2 is still bad".into(),
            attempts: 4
        }
    );
    let left = listed(store).await;
    assert_eq!(payloads(&left), ["bad-a2", "flaky-b1"]);
    let flaky = left.iter().find(|r| r.data == "flaky-b1").unwrap();
    assert_eq!(
        (flaky.reason, flaky.detail.as_str(), flaky.attempts),
        (Exhausted, "flaky-b1: try later", 4)
    );
    assert!(
        left.iter().all(|r| r.replay_started_at.is_none()),
        "claims released"
    );
}

async fn a_dry_run_calls_no_handler_and_changes_nothing(store: &dyn StateStore) {
    seed(
        store,
        vec![
            entry("shardId-a", 1, "a1", QuarantineReason::Permanent, 1),
            entry("shardId-a", 2, "u2", QuarantineReason::Undecodable, 2),
        ],
    )
    .await;
    let before = listed(store).await;
    let handler = Applier::default();
    let options = ReplayOptions {
        dry_run: true,
        ..ReplayOptions::default()
    };
    let outcomes = replay(
        store,
        &handler,
        CONSUMER,
        before.clone(),
        &options,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(outcomes[0], ReplayOutcome::WouldRun);
    assert!(
        matches!(&outcomes[1], ReplayOutcome::Skipped { why } if why.starts_with("undecodable"))
    );
    assert!(handler.applied().is_empty());
    assert_eq!(listed(store).await, before);
}

async fn an_interrupted_replay_applies_no_record_twice(store: &dyn StateStore) {
    let records = ["r1", "r2", "hang-r3", "r4", "r5"];
    let entries = records
        .iter()
        .zip(1..)
        .map(|(data, n)| entry("shardId-a", n, data, QuarantineReason::Exhausted, n))
        .collect();
    seed(store, entries).await;
    let handler = Applier::default();
    handler.hang.store(true, Ordering::SeqCst);
    let options = ReplayOptions::default();
    let first = replay(
        store,
        &handler,
        CONSUMER,
        listed(store).await,
        &options,
        |_, _| {},
    );
    // The replay is stopped while r3's handler has applied it and not answered.
    let stopped = tokio::time::timeout(Duration::from_secs(3), first).await;
    assert!(stopped.is_err(), "the first replay was interrupted");
    assert_eq!(handler.applied(), ["r1", "r2", "hang-r3"]);
    handler.hang.store(false, Ordering::SeqCst);
    let outcomes = replay(
        store,
        &handler,
        CONSUMER,
        listed(store).await,
        &ReplayOptions::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcomes[0], ReplayOutcome::Skipped { why } if why.contains("may have been applied"))
    );
    assert_eq!(
        &outcomes[1..],
        [ReplayOutcome::Replayed, ReplayOutcome::Replayed]
    );
    assert_eq!(
        handler.applied(),
        ["r1", "r2", "hang-r3", "r4", "r5"],
        "each once"
    );
    let left = listed(store).await;
    assert_eq!(payloads(&left), ["hang-r3"]);
    assert!(left[0].replay_started_at.is_some(), "shown as claimed");
    // Two replays cannot both hold a record; the operator's override takes
    // only a claim older than a running replay holds one.
    let key = left[0].key();
    assert!(!store.claim_replay(CONSUMER, &key, 1, None).await.unwrap());
    let options = ReplayOptions {
        include_interrupted: true,
        ..ReplayOptions::default()
    };
    let early = replay(store, &handler, CONSUMER, left, &options, |_, _| {})
        .await
        .unwrap();
    assert!(
        matches!(&early[0], ReplayOutcome::Skipped { why } if why.contains("may still be running"))
    );
    // An hour on (the claim set back an hour), the override takes it over.
    let an_hour_ago = listed(store).await[0].replay_started_at.unwrap() - 3_600_000;
    assert!(
        store
            .claim_replay(CONSUMER, &key, an_hour_ago, Some(u64::MAX))
            .await
            .unwrap()
    );
    let left = listed(store).await;
    let forced = replay(store, &handler, CONSUMER, left, &options, |_, _| {})
        .await
        .unwrap();
    assert_eq!(forced, [ReplayOutcome::Replayed]);
    assert!(listed(store).await.is_empty());
}

async fn redrive_puts_records_back_with_their_keys_and_removes_each_after_its_put(
    store: &dyn StateStore,
) {
    let kinesis = Emulators::from_env().kinesis();
    let stream = unique_name("redrive");
    create_stream(&kinesis, &stream, 2).await;
    let shards = list_shards(&kinesis, &stream).await;
    let mut aimed = entry("shardId-a", 1, "aimed", QuarantineReason::Permanent, 1);
    aimed.explicit_hash_key = Some(shards[1].starting_hash_key.to_string());
    let mut other = entry("shardId-a", 2, "other", QuarantineReason::Permanent, 2);
    other.explicit_hash_key = Some(shards[0].starting_hash_key.to_string());
    let plain = entry("shardId-b", 1, "plain", QuarantineReason::Exhausted, 3);
    seed(store, vec![aimed, other, plain]).await;
    let outcomes = redrive(
        store,
        &kinesis,
        &stream,
        CONSUMER,
        listed(store).await,
        false,
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RedriveOutcome::Redriven { .. })),
        "{outcomes:?}"
    );
    assert!(listed(store).await.is_empty());
    let first = read_shard(&kinesis, &stream, &shards[0].shard_id)
        .await
        .records;
    let second = read_shard(&kinesis, &stream, &shards[1].shard_id)
        .await
        .records;
    let find = |records: &[shardline_tests::kinesis::ReadRecord], data: &str| {
        records
            .iter()
            .find(|r| r.data == data.as_bytes())
            .map(|r| r.partition_key.clone())
    };
    assert_eq!(
        find(&second, "aimed").as_deref(),
        Some("key-aimed"),
        "on its hash key's shard"
    );
    assert_eq!(find(&first, "other").as_deref(), Some("key-other"));
    assert_eq!(first.len() + second.len(), 3);

    // A stream that is not there: nothing leaves the quarantine, and the rest
    // of a failed shard waits behind its first record.
    seed(
        store,
        vec![
            entry("shardId-c", 1, "c1", QuarantineReason::Permanent, 4),
            entry("shardId-c", 2, "c2", QuarantineReason::Permanent, 5),
        ],
    )
    .await;
    let missing = unique_name("missing");
    let outcomes = redrive(
        store,
        &kinesis,
        &missing,
        CONSUMER,
        listed(store).await,
        false,
        |_, _| {},
    )
    .await
    .unwrap();
    assert!(
        matches!(outcomes[0], RedriveOutcome::PutFailed { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], RedriveOutcome::Skipped { .. }),
        "{outcomes:?}"
    );
    assert_eq!(payloads(&listed(store).await), ["c1", "c2"]);
}

/// A fresh store of each kind (the embedded one with its folder).
struct Embedded(EmbeddedStore, #[allow(dead_code)] TempDir);

fn embedded() -> Embedded {
    let dir = TempDir::new("quarantine-ops");
    Embedded(EmbeddedStore::open(dir.path()).unwrap(), dir)
}

async fn dynamodb() -> DynamoDbStore {
    let store = DynamoDbStore::new(
        Emulators::from_env().dynamodb(),
        unique_name("quarantine-ops"),
    );
    store.create_table().await.unwrap();
    store
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::embedded().0).await;
            })*
        }
        mod dynamodb_store {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::dynamodb().await).await;
            })*
        }
    };
}

on_both_stores!(
    filters_select_and_purge_removes_only_what_they_select,
    replay_runs_each_shard_in_order_and_keeps_what_fails_again,
    a_dry_run_calls_no_handler_and_changes_nothing,
    an_interrupted_replay_applies_no_record_twice,
    redrive_puts_records_back_with_their_keys_and_removes_each_after_its_put,
    a_key_waits_behind_its_record_that_is_not_applied,
    include_interrupted_leaves_alone_a_record_another_replay_is_applying,
    a_take_over_takes_only_claims_started_at_or_before_its_cut_off,
);

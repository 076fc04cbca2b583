//! The active-users rules against DynamoDB (moto), with every request to the
//! active-users table counted:
//!
//! - within a batch only each user's latest heartbeat is written, in
//!   `ceil(users / 100)` TransactWriteItems and nothing else;
//! - a user's last-seen time never moves back, across batches;
//! - stale records (arrived longer ago than the window) and expired heartbeats
//!   cause no request at all;
//! - `active` filters users whose TTL has passed but whose item is still there
//!   (moto, like DynamoDB, does not delete at once);
//! - the binary in AWS mode: `setup`, `invoke`, `active`.
//!
//! Shardline's own state is the embedded store here (a temporary folder), so the
//! counts are the function's writes only.
//!
//! Run with `scripts/test.sh`, or with the emulators' variables set (see
//! `shardline_tests::Emulators::from_env`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use active_users::ActiveUsers;
use active_users::dynamodb::DynamoActiveUsers;
use active_users::store::{ActiveUsersStore, Advanced};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use shardline::engine::{Deadline, EngineConfig, process_event};
use shardline::sample::{SampleRecord, event_bytes, sequence_number};
use shardline::state::EmbeddedStore;
use shardline::time::epoch_millis as epoch_ms;
use shardline::{BatchOutcome, BatchReport};
use shardline_tests::{Emulators, RequestCounter, dynamodb, unique_name};

const WINDOW: Duration = Duration::from_secs(120);
const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/heartbeats";

/// One heartbeat record: user, `ts` (epoch ms), arrival (epoch ms).
struct Beat {
    user: String,
    ts: u64,
    arrival: u64,
}

fn beat(user: impl Into<String>, ts: u64, arrival: u64) -> Beat {
    Beat {
        user: user.into(),
        ts,
        arrival,
    }
}

/// A Lambda Kinesis event of `beats`, with sequence numbers that grow from call
/// to call (so no batch is skipped as already checkpointed).
fn event(beats: &[Beat]) -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let records: Vec<SampleRecord> = beats
        .iter()
        .map(|b| {
            let seq = sequence_number(NEXT.fetch_add(1, Ordering::Relaxed));
            let payload = serde_json::json!({"user": b.user, "ts": b.ts}).to_string();
            SampleRecord::new(seq, payload)
                .key(if b.user.is_empty() { "none" } else { &b.user })
                .shard(STREAM, "shardId-000000000000")
                .arrived(Some(b.arrival as f64 / 1000.0))
        })
        .collect();
    event_bytes(&records)
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "active-users-it-{tag}-{}-{nanos}",
        std::process::id()
    ))
}

/// A fresh active-users table, the handler on a counted client, and
/// Shardline's embedded state: what `App` would run, minus Lambda.
struct Fixture {
    table: String,
    plain: Client,
    counter: RequestCounter,
    handler: ActiveUsers,
    state: EmbeddedStore,
    state_dir: PathBuf,
    config: EngineConfig,
}

impl Fixture {
    async fn new(tag: &str) -> Self {
        let emulators = Emulators::from_env();
        let plain = emulators.dynamodb();
        let table = unique_name(&format!("active-users-{tag}"));
        dynamodb::create_table(&plain, &table, "user_id", None).await;
        let (counted, counter) = emulators.dynamodb_counted();
        let store = ActiveUsersStore::DynamoDb(DynamoActiveUsers::new(counted, &table));
        let state_dir = temp_dir(tag);
        let mut config = EngineConfig::new("active-users");
        // As main.rs configures the App.
        config.skip.max_record_age = Some(WINDOW);
        Fixture {
            table,
            plain,
            counter,
            handler: ActiveUsers::new(store, WINDOW),
            state: EmbeddedStore::open(&state_dir).unwrap(),
            state_dir,
            config,
        }
    }

    /// Runs one batch through the engine; the requests it sent, per operation.
    async fn run(&self, beats: &[Beat]) -> (BatchOutcome, BTreeMap<String, u64>) {
        self.counter.reset();
        let decoded = shardline::decode::decode_event(&event(beats)).unwrap();
        let outcome = process_event(
            decoded,
            &self.handler,
            &self.state,
            &self.config,
            Deadline::none(),
        )
        .await
        .unwrap();
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "no failure expected: {:?} ({})",
            outcome.response,
            outcome.report
        );
        (outcome, self.counter.take())
    }

    /// Every item of the table: user -> (last_seen, expires_at).
    async fn items(&self) -> HashMap<String, (u64, u64)> {
        let out = self
            .plain
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(
            out.last_evaluated_key().is_none(),
            "one page is enough here"
        );
        let number = |item: &HashMap<String, AttributeValue>, name: &str| -> u64 {
            item[name].as_n().unwrap().parse().unwrap()
        };
        out.items()
            .iter()
            .map(|item| {
                (
                    item["user_id"].as_s().unwrap().clone(),
                    (number(item, "last_seen"), number(item, "expires_at")),
                )
            })
            .collect()
    }

    async fn put(&self, user: &str, last_seen: u64) {
        self.plain
            .put_item()
            .table_name(&self.table)
            .item("user_id", AttributeValue::S(user.into()))
            .item("last_seen", AttributeValue::N(last_seen.to_string()))
            .item(
                "expires_at",
                AttributeValue::N(
                    active_users::heartbeat::expires_at(last_seen, WINDOW).to_string(),
                ),
            )
            .send()
            .await
            .unwrap();
    }

    async fn drop_table(self) {
        dynamodb::delete_table(&self.plain, &self.table).await;
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn ttl(last_seen: u64) -> u64 {
    (last_seen + WINDOW.as_millis() as u64).div_ceil(1000)
}

fn only(operation: &str, count: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([(operation.to_owned(), count)])
}

#[tokio::test]
async fn the_latest_heartbeat_per_user_wins_in_one_transaction_per_100_users() {
    let f = Fixture::new("latest").await;
    let now = epoch_ms(SystemTime::now());
    // 1,000 heartbeats from 250 users, 4 each, the latest not last in the batch.
    let offsets = [40_000, 10_000, 30_000, 20_000];
    let mut beats = Vec::new();
    for round in offsets {
        for u in 0..250_u64 {
            beats.push(beat(format!("user-{u:03}"), now - round - u, now - 1_000));
        }
    }
    assert_eq!(beats.len(), 1_000);

    let (outcome, requests) = f.run(&beats).await;
    assert_eq!(outcome.report.processed, 1_000);
    // ceil(250 / 100) = 3 requests, nothing else: no read, no per-record write.
    assert_eq!(requests, only("TransactWriteItems", 3));

    let items = f.items().await;
    assert_eq!(items.len(), 250);
    for u in 0..250_u64 {
        let latest = now - 10_000 - u;
        assert_eq!(
            items[&format!("user-{u:03}")],
            (latest, ttl(latest)),
            "user-{u:03}"
        );
    }
    f.drop_table().await;
}

#[tokio::test]
async fn last_seen_never_moves_back_across_batches() {
    let f = Fixture::new("backwards").await;
    let now = epoch_ms(SystemTime::now());
    let (_, requests) = f
        .run(&[
            beat("u1", now - 5_000, now - 4_000),
            beat("u2", now - 50_000, now - 4_000),
        ])
        .await;
    assert_eq!(requests, only("TransactWriteItems", 1));

    // u1 older than stored (unchanged), u2 newer, u3 new. The first transaction
    // is cancelled by u1's condition; the second writes u2 and u3.
    let (_, requests) = f
        .run(&[
            beat("u1", now - 30_000, now - 1_000),
            beat("u2", now - 20_000, now - 1_000),
            beat("u3", now - 1_000, now - 1_000),
        ])
        .await;
    assert_eq!(requests, only("TransactWriteItems", 2));
    let items = f.items().await;
    assert_eq!(items["u1"], (now - 5_000, ttl(now - 5_000)));
    assert_eq!(items["u2"], (now - 20_000, ttl(now - 20_000)));
    assert_eq!(items["u3"], (now - 1_000, ttl(now - 1_000)));

    // Only older (or equal) heartbeats: one cancelled transaction, no change.
    let (_, requests) = f
        .run(&[
            beat("u1", now - 6_000, now - 500),
            beat("u2", now - 20_000, now - 500),
            beat("u3", now - 90_000, now - 500),
        ])
        .await;
    assert_eq!(requests, only("TransactWriteItems", 1));
    assert_eq!(f.items().await, items);

    // The store says what it did, directly as well.
    let store = f.handler.store();
    let done = store
        .advance(
            &BTreeMap::from([("u1".to_owned(), now - 7_000), ("u4".to_owned(), now)]),
            WINDOW,
        )
        .await
        .unwrap();
    assert_eq!(
        done,
        Advanced {
            written: 1,
            unchanged: 1
        }
    );
    f.drop_table().await;
}

#[tokio::test]
async fn stale_records_and_expired_heartbeats_cause_no_request_at_all() {
    let f = Fixture::new("stale").await;
    let now = epoch_ms(SystemTime::now());
    // 500 records that arrived 10 minutes ago (a consumer catching up after
    // downtime): the stale skip rule acknowledges them before the handler.
    let stale: Vec<Beat> = (0..500)
        .map(|u| beat(format!("s-{u}"), now - 600_000, now - 600_000))
        .collect();
    let (outcome, requests) = f.run(&stale).await;
    assert_eq!(outcome.report.skipped_stale, 500);
    assert_eq!(outcome.report.processed, 0);
    assert_eq!(requests, BTreeMap::new());

    // Fresh records carrying heartbeats already older than the window (a
    // producer that held them back): handled, but nothing to write.
    let expired: Vec<Beat> = (0..50)
        .map(|u| beat(format!("e-{u}"), now - 300_000, now - 1_000))
        .collect();
    let (outcome, requests) = f.run(&expired).await;
    assert_eq!(outcome.report.processed, 50);
    assert_eq!(requests, BTreeMap::new());
    assert!(f.items().await.is_empty());
    f.drop_table().await;
}

#[tokio::test]
async fn a_bad_payload_is_quarantined_and_the_rest_is_written() {
    let f = Fixture::new("poison").await;
    let now = epoch_ms(SystemTime::now());
    let mut beats = vec![beat("ok-1", now - 1_000, now - 1_000)];
    beats.push(beat("", now - 1_000, now - 1_000)); // empty user: permanent
    beats.push(beat("secs", now / 1000, now - 1_000)); // seconds, not ms: permanent
    beats.push(beat("ok-2", now - 2_000, now - 1_000));
    let (outcome, requests) = f.run(&beats).await;
    let BatchReport {
        processed,
        quarantined_permanent,
        ..
    } = outcome.report;
    assert_eq!((processed, quarantined_permanent), (2, 2));
    assert_eq!(requests, only("TransactWriteItems", 1));
    let users: Vec<String> = {
        let mut u: Vec<String> = f.items().await.into_keys().collect();
        u.sort();
        u
    };
    assert_eq!(users, ["ok-1", "ok-2"]);
    f.drop_table().await;
}

#[tokio::test]
async fn active_filters_users_whose_ttl_has_passed() {
    let f = Fixture::new("active").await;
    let now = 1_763_790_000_000_u64;
    f.put("fresh", now - 10_000).await;
    f.put("edge", now - 120_000).await;
    f.put("gone", now - 120_001).await;
    f.put("long-gone", now - 3_600_000).await;
    f.counter.reset();
    let active = f.handler.store().active(now, WINDOW).await.unwrap();
    assert_eq!(
        active,
        BTreeMap::from([
            ("edge".to_owned(), now - 120_000),
            ("fresh".to_owned(), now - 10_000)
        ])
    );
    assert_eq!(f.counter.take(), only("Scan", 1));
    f.drop_table().await;
}

/// The binary as an operator runs it in AWS mode: `setup` creates the table
/// (with its TTL), `invoke` writes through it, `active` reads it back.
#[tokio::test]
async fn the_binary_sets_up_writes_and_lists_in_aws_mode() {
    let emulators = Emulators::from_env();
    let table = unique_name("active-users-cli");
    let state_dir = temp_dir("cli-aws");
    std::fs::create_dir_all(&state_dir).unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_active-users"));
        command.args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("SHARDLINE_")
                || name.starts_with("AWS_")
                || name == "ACTIVE_USERS_TABLE"
            {
                command.env_remove(name);
            }
        }
        command
            .env("SHARDLINE_STATE_DIR", &state_dir)
            .env("ACTIVE_USERS_TABLE", &table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &emulators.dynamodb_endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let out = command.output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        stdout
    };

    run(&["setup"]);
    let client = emulators.dynamodb();
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description().unwrap();
    assert_eq!(spec.attribute_name(), Some("expires_at"));

    let event = run(&["event", "alice", "bob"]);
    let file = state_dir.join("event.json");
    std::fs::write(&file, event).unwrap();
    let response = run(&["invoke", file.to_str().unwrap()]);
    assert_eq!(response.trim(), r#"{"batchItemFailures":[]}"#);

    let active: BTreeMap<String, u64> = serde_json::from_str(&run(&["active"])).unwrap();
    assert_eq!(
        active.keys().collect::<Vec<_>>(),
        ["alice", "bob"],
        "{active:?}"
    );
    let now = epoch_ms(SystemTime::now());
    assert!(active.values().all(|&t| now - t < 60_000), "{active:?}");

    dynamodb::delete_table(&client, &table).await;
    let _ = std::fs::remove_dir_all(&state_dir);
}

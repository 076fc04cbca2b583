//! active-users back from downtime, through `shardline-cli source` against
//! kinesis-mock, with both tables in moto behind a proxy that fails 5% of
//! DynamoDB requests.
//!
//! The downtime: 10,000 heartbeats of 2,000 users, stamped over the two hours
//! before the test (`ts`), wait in a 2-shard stream that is split and merged
//! meanwhile; then the test waits past the active window, so by arrival time
//! too every one of them is older than the window (the window is 15 s here, not
//! the default 2 minutes, so the wait is short). The consumer starts with
//! BatchSize 10,000 and live heartbeats of 300 other users start coming.
//!
//! At the end: no stale user was written (a scan of the whole table), every
//! live user is there with its latest heartbeat, and the backlog took a few
//! invocations. Live heartbeats are only applied if the consumer reaches them
//! within the window of their arrival: every live user being active is the
//! proof that it got back to live in time.
//!
//! `SHARDLINE_FAULT_SEED` replays a run; `SHARDLINE_SOAK_MINUTES` repeats runs
//! with new seeds for that long.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardline_tests::fault_proxy::FaultProxy;
use shardline_tests::source::{Running, binaries, clean_command, report, runs, source_command};
use shardline_tests::workload::{put, put_while_resharding, resharded};
use shardline_tests::{Emulators, kinesis, unique_name};

const WINDOW_SECONDS: u64 = 15;
const STALE_BEATS: usize = 10_000;
const STALE_USERS: usize = 2_000;
const LIVE_USERS: usize = 300;
const LIVE_ROUNDS: usize = 3;
const DOWNTIME_MS: u64 = 2 * 3600 * 1000;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn beat(user: &str, ts: u64) -> (String, String) {
    (user.to_owned(), format!(r#"{{"user":"{user}","ts":{ts}}}"#))
}

/// The heartbeats of the downtime: over the two hours before now, each well
/// older than the window.
fn stale_beats() -> Vec<(String, String)> {
    let start = now_ms() - DOWNTIME_MS;
    let step = (DOWNTIME_MS - 60_000) / STALE_BEATS as u64;
    (0..STALE_BEATS)
        .map(|i| {
            beat(
                &format!("stale-{:04}", i % STALE_USERS),
                start + i as u64 * step,
            )
        })
        .collect()
}

/// Every item of the table: user and last-seen time.
async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<String, u64> {
    let items: Vec<_> = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    items
        .iter()
        .map(|item| {
            let user = item["user_id"].as_s().unwrap().clone();
            (user, item["last_seen"].as_n().unwrap().parse().unwrap())
        })
        .collect()
}

/// Puts the live heartbeats, a round a second; returns each user's latest.
async fn live(client: aws_sdk_kinesis::Client, stream: String) -> BTreeMap<String, u64> {
    let mut latest = BTreeMap::new();
    for _ in 0..LIVE_ROUNDS {
        let ts = now_ms();
        let beats: Vec<_> = (0..LIVE_USERS)
            .map(|u| beat(&format!("live-{u:03}"), ts))
            .collect();
        put(&client, &stream, &beats).await;
        for (user, _) in beats {
            latest.insert(user, ts);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    latest
}

async fn run(seed: u64) {
    let emulators = Emulators::from_env();
    let client = emulators.kinesis();
    let stream = unique_name("fault-active");
    kinesis::create_stream(&client, &stream, 2).await;
    let (state_table, users_table) = (unique_name("active-state"), unique_name("active-users"));
    let proxy = FaultProxy::dynamodb(&emulators.dynamodb_endpoint, 0.05, seed);
    let bins = binaries();
    let function = |command: &mut std::process::Command| {
        command
            .env("AWS_ENDPOINT_URL_KINESIS", &emulators.kinesis_endpoint)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.endpoint)
            .env("SHARDLINE_STATE_TABLE", &state_table)
            .env("ACTIVE_USERS_TABLE", &users_table)
            .env("ACTIVE_WINDOW_SECONDS", WINDOW_SECONDS.to_string())
            .env("SHARDLINE_METRICS", "off")
            .env("SHARDLINE_LOG", "error");
    };
    let mut setup = clean_command(&bins.active_users);
    function(&mut setup);
    assert!(
        setup.arg("setup").status().unwrap().success(),
        "active-users setup"
    );

    // The downtime: the backlog waits while the stream is resharded, then ages
    // past the window.
    let stale = stale_beats();
    let (first, rest) = stale.split_at(STALE_BEATS / 2);
    put(&client, &stream, first).await;
    let lineage = put_while_resharding(&client, &stream, rest).await;
    tokio::time::sleep(Duration::from_secs(WINDOW_SECONDS + 2)).await;

    let mut command = source_command(&stream, 5, seed);
    command
        .args([
            "--batch-size",
            "10000",
            "--maximum-batching-window-in-seconds",
            "1",
        ])
        .args(["--function-timeout", "60", "--"])
        .arg(&bins.active_users);
    function(&mut command);
    let started = Instant::now();
    let source = Running::start(command);
    let latest = live(client.clone(), stream.clone()).await;
    let summary = tokio::task::spawn_blocking(move || source.summary(Duration::from_secs(600)))
        .await
        .unwrap();

    let stored = scan(&emulators.dynamodb(), &users_table).await;
    let stale_written = stored.keys().filter(|u| u.starts_with("stale-")).count();
    let lost = latest.keys().filter(|u| !stored.contains_key(*u)).count();
    let went_back = latest
        .iter()
        .filter(|(u, ts)| stored.get(*u).is_some_and(|s| s != *ts))
        .count();
    let invocations = summary["invocations"].as_u64().unwrap();
    let injected = proxy.stats()["injected_dynamodb_failures"]
        .as_u64()
        .unwrap_or(0);
    report(&format!(
        "fault-active-users seed={seed}: records {} stale + {} live, invocations {invocations} crashes {} \
         injected DynamoDB faults {injected} | lost {lost} duplicated n/a (last-seen writes are idempotent) \
         out of order {went_back} stale users written {stale_written} | {:.1}s",
        STALE_BEATS,
        LIVE_USERS * LIVE_ROUNDS,
        summary["crashes"],
        started.elapsed().as_secs_f64()
    ));
    assert!(resharded(&lineage), "a split and a merge: {lineage:?}");
    assert_eq!((stale_written, lost, went_back), (0, 0, 0), "{summary}");
    // Five shards hold the backlog, a batch of up to 10,000 each; the live
    // heartbeats come in three rounds to the two open shards.
    assert!(
        invocations <= 5 + 2 * 2 * LIVE_ROUNDS as u64,
        "a few invocations: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_two_hours_down_and_a_reshard_it_is_live_in_a_few_invocations_and_writes_nothing_stale()
 {
    runs(21, run).await;
}

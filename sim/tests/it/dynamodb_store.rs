//! Shardline's real DynamoDB store (`shardline::state::DynamoDbStore`) over
//! the simulated DynamoDB, through the real SDK client, on tokio's paused
//! clock: what `tests/tests/it/state_contract.rs` promises against an emulator,
//! the requests each call costs, and (in `dynamodb_store/faults.rs`) what
//! each fault looks like to the store.

#[path = "dynamodb_store/faults.rs"]
mod faults;
#[path = "dynamodb_store/quarantine.rs"]
mod quarantine;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use shardline::quarantine::{QuarantineReason, QuarantinedRecord};
use shardline::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, DynamoDbStore, HeadAttempts, KeyCommit,
    Lineage, PositionRanges, Progress, Settled, ShardState, ShardStatus, StateStore,
};
use shardline::time::SimulatedWallClock;
use shardline::{Position, ShardRef};
use shardline_sim::dynamodb::{Attr, DynamoDb};

const TABLE: &str = "state";
const CONSUMER: &str = "sim";

/// The simulated service, a store on it with its table made, and the wall
/// clock at a fixed start (kept alive for the test).
async fn setup() -> (DynamoDb, DynamoDbStore, SimulatedWallClock) {
    let clock = SimulatedWallClock::start(start());
    let sim = DynamoDb::new();
    let store = DynamoDbStore::new(sim.client(), TABLE);
    store.create_table().await.unwrap();
    sim.take_request_counts();
    (sim, store, clock)
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn key(shard: &str) -> ConsumerShard {
    ConsumerShard {
        consumer: CONSUMER.into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/sim"),
            shard_id: Arc::from(shard),
        },
    }
}

fn pos(n: u64, sub: u64) -> Position {
    Position::new(
        format!("4959033827149025660855969253836157109592157598{n:010}")
            .parse()
            .unwrap(),
        sub,
    )
}

fn checkpoint(n: u64) -> Progress {
    Progress {
        checkpoint: Some(pos(n, 0)),
        ..Progress::default()
    }
}

fn quarantined(n: u64, bytes: usize) -> QuarantinedRecord {
    QuarantinedRecord {
        stream_arn: "arn:aws:kinesis:us-east-1:1:stream/sim".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: pos(n, 0).sequence.to_string(),
        subsequence_number: 0,
        partition_key: "k".into(),
        reason: QuarantineReason::Permanent,
        detail: format!("record {n} is bad"),
        attempts: 1,
        quarantined_at: 1_700_000_000_000 + n,
        data: Bytes::from((0..bytes).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
        explicit_hash_key: n.is_multiple_of(2).then(|| format!("{n}0000")),
        replay_started_at: None,
    }
}

fn claim(key: &str, owner: &str, ttl_secs: u64) -> DedupClaim {
    DedupClaim {
        key: key.into(),
        owner: owner.into(),
        expires_at: start() + Duration::from_secs(ttl_secs),
    }
}

/// Requests per operation since the last look.
fn counts(sim: &DynamoDb) -> Vec<(String, u64)> {
    sim.take_request_counts().into_iter().collect()
}

fn count(operation: &str, n: u64) -> (String, u64) {
    (operation.to_owned(), n)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_table_is_made_and_a_new_shard_reads_as_nothing() {
    let (sim, store, _clock) = setup().await;
    let described = sim.with_tables(|t| t.table(TABLE).map(|t| t.schema().clone()));
    let schema = described.unwrap();
    assert_eq!(
        (schema.hash_key.as_str(), schema.range_key.as_deref()),
        ("pk", Some("sk"))
    );
    assert_eq!(schema.ttl_attribute.as_deref(), Some("expires_at"));
    assert_eq!(
        store.load_shard(&key("fresh")).await.unwrap(),
        ShardState::default()
    );
    assert_eq!(counts(&sim), [count("GetItem", 1)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn commits_round_trip_and_a_stale_commit_is_superseded() {
    let (sim, store, _clock) = setup().await;
    let k = key("fence");
    let mut done = PositionRanges::new();
    done.insert(pos(7, 0), pos(9, 3));
    let progress = Progress {
        checkpoint: Some(pos(5, 2)),
        done,
        heads: vec![HeadAttempts {
            position: pos(6, 0),
            attempts: 2,
        }],
        ..Progress::default()
    };
    let none = Settled::default();
    let read = store.load_shard(&k).await.unwrap();
    let first = store
        .commit(&k, read.progress.version, &progress, &none)
        .await
        .unwrap();
    assert_eq!(first, CommitOutcome::Committed { version: 1 });
    assert_eq!(
        counts(&sim),
        [count("GetItem", 1), count("UpdateItem", 1)],
        "2 requests a batch"
    );
    let stale = store.commit(&k, 0, &checkpoint(9), &none).await.unwrap();
    assert_eq!(stale, CommitOutcome::Superseded);
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(
        state.progress,
        Progress {
            version: 1,
            ..progress
        }
    );
    let back = store.commit(&k, 1, &checkpoint(4), &none).await.unwrap();
    assert_eq!(
        back,
        CommitOutcome::Superseded,
        "a checkpoint never moves back"
    );
    let cleared = store.commit(&k, 1, &checkpoint(10), &none).await.unwrap();
    assert_eq!(cleared, CommitOutcome::Committed { version: 2 });
    let item = sim.item(
        TABLE,
        &format!("{CONSUMER}#shard#arn:aws:kinesis:us-east-1:1:stream/sim#fence"),
        Some("state"),
    );
    let item = item.unwrap();
    assert_eq!(item["version"], Attr::n(2));
    assert!(
        !item.contains_key("failing_heads") && !item.contains_key("done_after"),
        "cleared away"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dedup_claims_are_won_held_taken_over_and_released() {
    let (sim, store, _clock) = setup().await;
    let now = start();
    let claim_one = |c: DedupClaim, at: SystemTime| {
        let store = store.clone();
        async move { store.claim_dedup_keys(CONSUMER, &[c], at).await.unwrap() }
    };
    assert_eq!(
        claim_one(claim("order-1", "a", 60), now).await,
        [ClaimOutcome::Won]
    );
    assert_eq!(
        claim_one(claim("order-1", "a", 60), now).await,
        [ClaimOutcome::Won],
        "its own"
    );
    assert_eq!(
        claim_one(claim("order-1", "b", 60), now).await,
        [ClaimOutcome::InFlight("a".into())]
    );
    let later = now + Duration::from_secs(61);
    assert_eq!(
        claim_one(claim("order-1", "b", 120), later).await,
        [ClaimOutcome::Won],
        "expired"
    );
    assert_eq!(counts(&sim), [count("TransactWriteItems", 4)]);

    let mixed = [claim("order-1", "c", 60), claim("order-2", "c", 60)];
    let outcomes = store.claim_dedup_keys(CONSUMER, &mixed, now).await.unwrap();
    assert_eq!(
        outcomes,
        [ClaimOutcome::InFlight("b".into()), ClaimOutcome::Won]
    );
    assert_eq!(
        counts(&sim),
        [count("TransactWriteItems", 2)],
        "the winner is sent again alone"
    );

    let released = Settled {
        quarantine: vec![quarantined(40, 1)],
        released: vec![claim("order-1", "b", 60), claim("order-2", "not-c", 60)],
        ..Settled::default()
    };
    store
        .commit(&key("release"), 0, &checkpoint(40), &released)
        .await
        .unwrap();
    assert_eq!(
        counts(&sim),
        [count("TransactWriteItems", 2)],
        "with the commit; the claim not ours is dropped and the rest sent again"
    );
    assert_eq!(
        claim_one(claim("order-1", "d", 60), now).await,
        [ClaimOutcome::Won],
        "b gave it back"
    );
    assert_eq!(
        claim_one(claim("order-2", "d", 60), now).await,
        [ClaimOutcome::InFlight("c".into())]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn key_progress_round_trips_in_batches_and_is_fenced_per_key() {
    let (sim, store, _clock) = setup().await;
    let k = key("keys");
    let commits: Vec<KeyCommit> = (0..250)
        .map(|i| KeyCommit {
            partition_key: format!("user-{i}"),
            read_version: 0,
            progress: checkpoint(i),
            settled: Settled::default(),
        })
        .collect();
    assert!(
        store
            .commit_key_progress(&k, &commits)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        counts(&sim),
        [count("TransactWriteItems", 3)],
        "100 keys a transaction"
    );
    let mut wanted: Vec<String> = commits.iter().map(|c| c.partition_key.clone()).collect();
    wanted.push("never-seen".into());
    let read = store.load_key_progress(&k, &wanted).await.unwrap();
    assert_eq!(read.len(), 250);
    assert_eq!(
        read["user-7"],
        Progress {
            version: 1,
            ..checkpoint(7)
        }
    );
    assert_eq!(counts(&sim), [count("BatchGetItem", 3)], "100 keys a read");
    let expires = sim
        .items(TABLE)
        .iter()
        .find_map(|item| item.get("expires_at").and_then(Attr::as_n::<u64>));
    let ttl = shardline::state::DEFAULT_KEY_PROGRESS_TTL.as_secs();
    assert_eq!(
        expires,
        Some(1_700_000_000 + ttl),
        "a TTL from the simulated wall clock"
    );

    let race = |read_version: u64, attempts: u32| KeyCommit {
        partition_key: "user-1".into(),
        read_version,
        progress: Progress {
            heads: vec![HeadAttempts {
                position: pos(2, 0),
                attempts,
            }],
            ..checkpoint(1)
        },
        settled: Settled::default(),
    };
    assert!(
        store
            .commit_key_progress(&k, &[race(1, 1)])
            .await
            .unwrap()
            .is_empty()
    );
    let superseded = store.commit_key_progress(&k, &[race(1, 1)]).await.unwrap();
    assert_eq!(superseded, ["user-1"], "a stale writer of a key is refused");
    let read = store
        .load_key_progress(&k, &["user-1".into()])
        .await
        .unwrap();
    assert_eq!(
        (
            read["user-1"].version,
            read["user-1"].head().map(|h| h.attempts)
        ),
        (2, Some(1))
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn lineage_moves_forward_and_shard_ends_are_kept() {
    let (_sim, store, _clock) = setup().await;
    let k = key("lineage");
    let parents = vec!["shardId-000000000001".to_owned()];
    store
        .save_lineage(
            &k,
            &Lineage::Cleared {
                parents: parents.clone(),
            },
        )
        .await
        .unwrap();
    store
        .save_lineage(
            &k,
            &Lineage::Pending {
                parents: parents.clone(),
            },
        )
        .await
        .unwrap();
    store
        .mark_shard_end(&k, &["c1".into(), "c2".into()])
        .await
        .unwrap();
    let state = store.load_shard(&k).await.unwrap();
    assert_eq!(state.lineage, Lineage::Cleared { parents });
    assert_eq!(
        state.status,
        ShardStatus::Ended {
            children: vec!["c1".into(), "c2".into()]
        }
    );
    assert_eq!(state.progress.version, 0);
}

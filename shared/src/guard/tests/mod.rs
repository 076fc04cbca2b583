//! The guard's decisions on a made-up stream (the real resharding is tested
//! against kinesis-mock in `tests/tests/it/guard.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

mod tail_reads;

use super::*;
use crate::state::{EmbeddedStore, KeyCommit, Progress, Settled, ShardStatus};

/// A tail as a directory answers it; `resume`: the page to read on from.
fn tail(records: Vec<TailRecord>, end: TailEnd, resume: Option<usize>) -> Tail {
    Tail {
        records,
        end,
        resume: resume.map(|page| TailCursor(page.to_string())),
    }
}

/// A stream from a fixed listing, each shard with a fixed tail; counts reads.
struct Listing {
    shards: Vec<ListedShard>,
    tails: HashMap<String, Tail>,
    reads: Mutex<u32>,
}

#[async_trait]
impl ShardDirectory for Listing {
    async fn list_shards(&self, _: &str) -> Result<Vec<ListedShard>, BoxError> {
        Ok(self.shards.clone())
    }
    async fn read_after(
        &self,
        shard: &ShardRef,
        _: Option<&Position>,
        _: usize,
    ) -> Result<Tail, BoxError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self
            .tails
            .get(&*shard.shard_id)
            .cloned()
            .unwrap_or_else(|| tail(vec![], TailEnd::Open, None)))
    }
}

fn key(shard: &str) -> ConsumerShard {
    ConsumerShard {
        consumer: "c".into(),
        shard: ShardRef {
            stream_arn: Arc::from("arn:aws:kinesis:us-east-1:1:stream/s"),
            shard_id: Arc::from(shard),
        },
    }
}

fn store() -> EmbeddedStore {
    let dir = std::env::temp_dir().join(format!(
        "shardline-guard-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    EmbeddedStore::open(&dir).unwrap()
}

fn shard(id: &str, parents: &[&str]) -> ListedShard {
    ListedShard {
        shard_id: id.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
    }
}

fn pending(first: &str) -> Tail {
    tail(vec![record(first, "k")], TailEnd::More, None)
}

fn ended(children: &[&str]) -> Tail {
    let children = children.iter().map(|c| c.to_string()).collect();
    tail(vec![], TailEnd::Ended { children }, None)
}

fn record(sequence: &str, partition_key: &str) -> TailRecord {
    TailRecord {
        sequence: sequence.parse().unwrap(),
        last_subsequence: 0,
        partition_key: partition_key.into(),
    }
}

fn guard(shards: Vec<ListedShard>, tails: &[(&str, Tail)]) -> (ParentGuard, Arc<Listing>) {
    let listing = Arc::new(Listing {
        shards,
        tails: tails
            .iter()
            .map(|(id, tail)| (id.to_string(), tail.clone()))
            .collect(),
        reads: Mutex::new(0),
    });
    let guard = ParentGuard::new(listing.clone())
        .with_poll(Duration::from_millis(10), Duration::from_millis(20));
    (guard, listing)
}

async fn check(guard: &ParentGuard, store: &EmbeddedStore, shard: &str, time: Duration) -> Verdict {
    check_in(ProgressMode::Shard, guard, store, shard, time)
        .await
        .unwrap()
}

async fn check_in(
    mode: ProgressMode,
    guard: &ParentGuard,
    store: &EmbeddedStore,
    shard: &str,
    time: Duration,
) -> Result<Verdict, GuardError> {
    let state = store.load_shard(&key(shard)).await.unwrap();
    guard
        .check(
            store,
            &key(shard),
            &state,
            mode,
            Deadline::after(time),
            Duration::from_millis(20),
        )
        .await
}

#[tokio::test]
async fn an_expired_parent_does_not_block() {
    let store = store();
    // The parent is no longer listed: it expired from the stream.
    let (guard, listing) = guard(vec![shard("child", &["gone"])], &[]);
    let verdict = check(&guard, &store, "child", Duration::from_secs(5)).await;
    assert_eq!(verdict, Verdict::Clear);
    assert_eq!(*listing.reads.lock().unwrap(), 0);
    let state = store.load_shard(&key("child")).await.unwrap();
    assert_eq!(
        state.lineage,
        Lineage::Cleared {
            parents: vec!["gone".into()]
        }
    );
}

#[tokio::test]
async fn an_unfinished_parent_blocks_until_the_deadline_and_names_itself() {
    let store = store();
    let (guard, listing) = guard(
        vec![shard("parent", &[]), shard("child", &["parent"])],
        &[("parent", pending("42"))],
    );
    let started = std::time::Instant::now();
    let verdict = check(&guard, &store, "child", Duration::from_millis(200)).await;
    let Verdict::Blocked {
        waiting_for,
        detail,
    } = verdict
    else {
        panic!("expected blocked, got {verdict:?}");
    };
    assert_eq!(waiting_for, "parent");
    assert!(detail.contains("from 42"), "{detail}");
    assert!(
        *listing.reads.lock().unwrap() >= 2,
        "it polled while time allowed"
    );
    assert!(started.elapsed() < Duration::from_millis(400));
    let state = store.load_shard(&key("child")).await.unwrap();
    assert_eq!(
        state.lineage,
        Lineage::Pending {
            parents: vec!["parent".into()]
        }
    );
}

#[tokio::test]
async fn a_child_missing_from_the_listing_is_not_cleared() {
    let store = store();
    // ListShards lags behind a reshard (or names another stream): the child
    // is not listed, so its parents are not known yet.
    let (guard, _) = guard(vec![], &[]);
    let verdict = check(&guard, &store, "child", Duration::from_millis(150)).await;
    assert!(
        matches!(&verdict, Verdict::Blocked { waiting_for, .. } if waiting_for == "child"),
        "not listed is not cleared: {verdict:?}"
    );
    let state = store.load_shard(&key("child")).await.unwrap();
    assert_eq!(state.lineage, Lineage::Unknown);
}

#[tokio::test]
async fn a_parent_read_to_its_end_is_recorded_as_ended() {
    let store = store();
    let (guard, _) = guard(
        vec![shard("parent", &[]), shard("child", &["parent"])],
        &[("parent", ended(&["child"]))],
    );
    let verdict = check(&guard, &store, "child", Duration::from_secs(5)).await;
    assert_eq!(verdict, Verdict::Clear);
    let parent = store.load_shard(&key("parent")).await.unwrap();
    assert_eq!(
        parent.status,
        ShardStatus::Ended {
            children: vec!["child".into()]
        }
    );
}

#[tokio::test]
async fn an_empty_parent_is_finished_only_once_its_own_parent_is() {
    let store = store();
    // grand -> middle (closed empty) -> child; grand still has records.
    let (guard, _) = guard(
        vec![
            shard("grand", &[]),
            shard("middle", &["grand"]),
            shard("child", &["middle"]),
        ],
        &[("grand", pending("7")), ("middle", ended(&["child"]))],
    );
    let verdict = check(&guard, &store, "child", Duration::from_millis(100)).await;
    let Verdict::Blocked {
        waiting_for,
        detail,
    } = verdict
    else {
        panic!("expected blocked, got {verdict:?}");
    };
    assert_eq!(waiting_for, "middle");
    assert!(detail.contains("grand"), "{detail}");
    let middle = store.load_shard(&key("middle")).await.unwrap();
    assert_eq!(middle.status, ShardStatus::Active, "not recorded as ended");
}

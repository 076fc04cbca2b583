//! The guard's decisions on a made-up stream (the real resharding is tested
//! against kinesis-mock in `tests/tests/guard.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

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

/// A parent shard as Kinesis pages it: `pages` in order, many of them empty
/// (Kinesis answers empty pages before a shard's end and across gaps in time),
/// a read taking at most `pages_per_read` of them (`KinesisShards` makes at
/// most 10 GetRecords calls a read). A read from a position starts at the page
/// holding that record (`AT_SEQUENCE_NUMBER`); a cursor is a page index.
struct Paged {
    pages: Vec<Vec<TailRecord>>,
    closed: bool,
    pages_per_read: usize,
    /// Where each read started (page, from a cursor), failed ones included.
    reads: Mutex<Vec<(usize, bool)>>,
    /// Reads (counted from 1) that fail.
    failing: Mutex<Vec<usize>>,
}

impl Paged {
    /// `pages` of the closed shard `parent` (child: `child`).
    fn closed(pages: Vec<Vec<TailRecord>>, pages_per_read: usize) -> Arc<Paged> {
        Arc::new(Paged {
            pages,
            closed: true,
            pages_per_read,
            reads: Mutex::new(Vec::new()),
            failing: Mutex::new(Vec::new()),
        })
    }

    fn reads(&self) -> Vec<(usize, bool)> {
        self.reads.lock().unwrap().clone()
    }

    fn read_from(
        &self,
        mut page: usize,
        from_cursor: bool,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let mut reads = self.reads.lock().unwrap();
        reads.push((page, from_cursor));
        if self.failing.lock().unwrap().contains(&reads.len()) {
            return Err("GetRecords: ProvisionedThroughputExceededException".into());
        }
        let mut records = Vec::new();
        for _ in 0..self.pages_per_read {
            if page >= self.pages.len() {
                return Ok(tail(records, TailEnd::Open, Some(page)));
            }
            let fresh = self.pages[page]
                .iter()
                .filter(|r| after.is_none_or(|a| r.last() > *a));
            records.extend(fresh.cloned());
            page += 1;
            if page == self.pages.len() && self.closed {
                let children = vec!["child".to_owned()];
                return Ok(tail(records, TailEnd::Ended { children }, None));
            }
            if records.len() >= max_records {
                return Ok(tail(records, TailEnd::More, Some(page)));
            }
        }
        Ok(tail(records, TailEnd::More, Some(page)))
    }
}

#[async_trait]
impl ShardDirectory for Paged {
    async fn list_shards(&self, _: &str) -> Result<Vec<ListedShard>, BoxError> {
        Ok(vec![shard("parent", &[]), shard("child", &["parent"])])
    }

    async fn read_after(
        &self,
        _: &ShardRef,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let holding = |page: &Vec<TailRecord>| {
            after.is_some_and(|a| page.iter().any(|r| r.sequence == a.sequence))
        };
        let start = self.pages.iter().position(holding).unwrap_or(0);
        self.read_from(start, false, after, max_records)
    }

    async fn read_on(
        &self,
        _: &ShardRef,
        cursor: &TailCursor,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let page = cursor
            .0
            .parse()
            .map_err(|_| "not a cursor of this stream")?;
        self.read_from(page, true, after, max_records)
    }
}

/// `records` as pages of their own, each followed by `gap` empty pages.
fn with_gaps(records: &[(&str, &str)], gap: usize) -> Vec<Vec<TailRecord>> {
    let mut pages = Vec::new();
    for (sequence, partition_key) in records {
        pages.push(vec![record(sequence, partition_key)]);
        pages.extend(std::iter::repeat_n(Vec::new(), gap));
    }
    pages
}

fn paged_guard(paged: &Arc<Paged>) -> ParentGuard {
    ParentGuard::new(paged.clone()).with_poll(Duration::from_millis(10), Duration::from_millis(20))
}

/// Records that `partition_key` of the parent is done up to `sequence`.
async fn key_done(store: &EmbeddedStore, partition_key: &str, sequence: &str) {
    let parent = key("parent");
    let stored = store
        .load_key_progress(&parent, &[partition_key.to_owned()])
        .await
        .unwrap();
    let commit = KeyCommit {
        partition_key: partition_key.to_owned(),
        read_version: stored.get(partition_key).map_or(0, |p| p.version),
        progress: Progress {
            checkpoint: Some(Position::new(sequence.parse().unwrap(), 0)),
            ..Progress::default()
        },
        settled: Settled::default(),
    };
    let moved = store.commit_key_progress(&parent, &[commit]).await.unwrap();
    assert!(moved.is_empty());
}

async fn parent_checkpoint(store: &EmbeddedStore) -> Option<String> {
    let state = store.load_shard(&key("parent")).await.unwrap();
    state.progress.checkpoint.map(|p| p.to_string())
}

#[tokio::test]
async fn a_long_empty_tail_is_read_on_across_polls_in_per_key_mode() {
    let store = store();
    key_done(&store, "k1", "100").await;
    // One record, then 150 empty pages before the end: more than one poll reads.
    let paged = Paged::closed(with_gaps(&[("100", "k1")], 150), 10);
    let guard = paged_guard(&paged);
    let verdict = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(
        verdict,
        Verdict::Clear,
        "after {} reads",
        paged.reads().len()
    );
    let reads = paged.reads();
    assert_eq!(reads.len(), 16, "every page read once: {reads:?}");
    assert!(
        reads[1..].iter().all(|&(_, from_cursor)| from_cursor),
        "each read goes on where the last stopped: {reads:?}"
    );
    let parent = store.load_shard(&key("parent")).await.unwrap();
    assert!(matches!(parent.status, ShardStatus::Ended { .. }));
}

#[tokio::test]
async fn a_long_empty_tail_before_the_end_is_read_on_in_shard_mode() {
    let store = store();
    // The parent's batches are done up to its last record, 150 empty pages
    // before its end; a read takes 10 pages and a poll reads once.
    let progress = Progress {
        checkpoint: Some(Position::new("100".parse().unwrap(), 0)),
        ..Progress::default()
    };
    store
        .commit(&key("parent"), 0, &progress, &Settled::default())
        .await
        .unwrap();
    let paged = Paged::closed(with_gaps(&[("100", "k1")], 150), 10);
    let guard = paged_guard(&paged);
    let verdict = check(&guard, &store, "child", Duration::from_secs(3)).await;
    assert_eq!(
        verdict,
        Verdict::Clear,
        "after {} reads",
        paged.reads().len()
    );
    let reads = paged.reads();
    assert_eq!(reads.len(), 16, "every page read once: {reads:?}");
    let parent = store.load_shard(&key("parent")).await.unwrap();
    assert!(matches!(parent.status, ShardStatus::Ended { .. }));
}

#[tokio::test]
async fn records_verified_before_a_failed_read_are_kept() {
    let store = store();
    key_done(&store, "k1", "100").await;
    key_done(&store, "k2", "200").await;
    // A read takes one page; the second read fails (from the cursor and from
    // the position alike).
    let paged = Paged::closed(
        with_gaps(&[("100", "k1"), ("200", "k2"), ("300", "k3")], 0),
        1,
    );
    paged.failing.lock().unwrap().extend([2, 3]);
    let guard = paged_guard(&paged);
    let failed = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        matches!(failed, Err(GuardError::Directory { .. })),
        "{failed:?}"
    );
    assert_eq!(
        parent_checkpoint(&store).await.as_deref(),
        Some("100/0"),
        "the record verified before the failure is kept"
    );
    // The next check goes on from there and stops at the record not done.
    let verdict = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_millis(100),
    )
    .await
    .unwrap();
    assert!(
        matches!(&verdict, Verdict::Blocked { detail, .. } if detail.contains("300")),
        "{verdict:?}"
    );
    assert_eq!(parent_checkpoint(&store).await.as_deref(), Some("200/0"));
}

#[tokio::test]
async fn a_record_after_a_long_gap_is_read_again_from_its_page() {
    let store = store();
    key_done(&store, "k1", "100").await;
    // 30 empty pages before record 200 and after it; 200 is not done at first.
    let paged = Paged::closed(with_gaps(&[("100", "k1"), ("200", "k2")], 30), 10);
    let guard = paged_guard(&paged);
    let verdict = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_millis(150),
    )
    .await
    .unwrap();
    assert!(
        matches!(&verdict, Verdict::Blocked { detail, .. } if detail.contains("record 200")),
        "the guard gets past the gap to the record: {verdict:?}"
    );
    key_done(&store, "k2", "200").await;
    let before = paged.reads().len();
    let verdict = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(verdict, Verdict::Clear);
    let reads = paged.reads()[before..].to_vec();
    assert_eq!(
        reads.first(),
        Some(&(30, true)),
        "read again from the page holding 200, not from 100: {reads:?}"
    );
    assert!(reads.len() <= 4, "{reads:?}");
}

#[tokio::test]
async fn a_cursor_that_fails_is_replaced_by_a_read_from_the_position() {
    let store = store();
    key_done(&store, "k1", "100").await;
    // The read from the cursor fails (as an expired shard iterator does).
    let paged = Paged::closed(with_gaps(&[("100", "k1")], 15), 10);
    paged.failing.lock().unwrap().push(2);
    let guard = paged_guard(&paged);
    let verdict = check_in(
        ProgressMode::PartitionKey,
        &guard,
        &store,
        "child",
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(verdict, Verdict::Clear);
    assert_eq!(
        paged.reads(),
        vec![(0, false), (10, true), (0, false), (10, true)]
    );
}

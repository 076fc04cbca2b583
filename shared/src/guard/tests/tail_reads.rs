//! The guard's reads of a parent's tail across polls: a long run of empty
//! pages, a failed read, a record after a gap, a cursor that fails.

use std::sync::Mutex;

use super::*;

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

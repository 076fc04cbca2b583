//! A commit that loses to a newer writer must always send Lambda back, even
//! when the batch's only change came from records done before (in the done
//! ranges a key's failure left): else the response says done while nothing
//! of the batch was written.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use shardline::decode::decode_event;
use shardline::quarantine::QuarantinedRecord;
use shardline::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, EmbeddedStore, KeyCommit, Lineage,
    Progress, Settled, ShardState, StateError, StateStore,
};
use shardline::{Deadline, EngineConfig, process_event};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::overlap::Probe;

/// The embedded store, with a newer writer that commits just before each
/// commit of the engine (as an invocation Lambda gave up on, still running).
struct Overtaken(EmbeddedStore);

#[async_trait]
impl StateStore for Overtaken {
    async fn load_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        self.0.load_shard(key).await
    }
    async fn claim_dedup_keys(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        self.0.claim_dedup_keys(consumer, claims, now).await
    }
    async fn commit(
        &self,
        key: &ConsumerShard,
        read_version: u64,
        progress: &Progress,
        settled: &Settled,
    ) -> Result<CommitOutcome, StateError> {
        let current = self.0.load_shard(key).await?.progress;
        let newer = Progress {
            version: current.version,
            ..current.clone()
        };
        self.0
            .commit(key, current.version, &newer, &Settled::default())
            .await?;
        self.0.commit(key, read_version, progress, settled).await
    }
    async fn save_lineage(&self, key: &ConsumerShard, lineage: &Lineage) -> Result<(), StateError> {
        self.0.save_lineage(key, lineage).await
    }
    async fn mark_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        self.0.mark_shard_end(key, children).await
    }
    async fn load_key_progress(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        self.0.load_key_progress(key, partition_keys).await
    }
    async fn commit_key_progress(
        &self,
        key: &ConsumerShard,
        commits: &[KeyCommit],
    ) -> Result<Vec<String>, StateError> {
        self.0.commit_key_progress(key, commits).await
    }
    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        self.0.quarantined(consumer).await
    }
}

#[tokio::test]
async fn a_lost_commit_of_records_done_before_still_asks_for_a_retry() {
    let dir = shardline_tests::TempDir::new("race");
    let records = made_up(0, 10, |i| format!("k-{i}"), |i| i.to_string().into());
    let mut config = EngineConfig::new("race");
    config.concurrency = 8;
    let run = |store: &'static dyn StateStore, from: usize, probe: &'static Probe| {
        let json = event(
            &stream_arn("orders"),
            "shardId-000000000000",
            &records[from..],
        );
        let config = config.clone();
        async move {
            process_event(
                decode_event(&json).unwrap(),
                probe,
                store,
                &config,
                Deadline::none(),
            )
            .await
            .unwrap()
        }
    };
    let plain: &'static EmbeddedStore =
        Box::leak(Box::new(EmbeddedStore::open(dir.path()).unwrap()));
    // Record 2 fails: the state keeps 3 to 9 as done past checkpoint 1.
    let failing: &'static Probe = Box::leak(Box::new(
        Probe::new(|_| Duration::ZERO).failing(|t| t == "2"),
    ));
    let out = run(plain, 0, failing).await;
    assert!(!out.response.is_success());
    // A batch of only those records, whose commit loses to a newer writer.
    let overtaken: &'static Overtaken = Box::leak(Box::new(Overtaken(
        EmbeddedStore::open(dir.path()).unwrap(),
    )));
    let ok: &'static Probe = Box::leak(Box::new(Probe::new(|_| Duration::ZERO)));
    let out = run(overtaken, 3, ok).await;
    assert!(ok.done().is_empty(), "every record was done before");
    assert_eq!(out.report.superseded, 1, "{:?}", out.report);
    assert!(
        !out.response.is_success(),
        "nothing of the batch was written: Lambda must send it again"
    );
}

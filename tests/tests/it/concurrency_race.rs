//! A commit that loses to a newer writer must always send Lambda back, even
//! when the batch's only change came from records done before (in the done
//! ranges a key's failure left): else the response says done while nothing
//! of the batch was written.

use std::time::Duration;

use async_trait::async_trait;
use shardline::decode::decode_event;
use shardline::state::{
    CommitOutcome, ConsumerShard, EmbeddedStore, Progress, ProgressStore, Settled, StateError,
    StateStore, StoreLayer, UnitCommit,
};
use shardline::{Deadline, EngineConfig, process_event};
use shardline_tests::lambda::{event, made_up, stream_arn};
use shardline_tests::overlap::Probe;

/// The embedded store, with a newer writer that commits just before each
/// commit of the engine (as an invocation Lambda gave up on, still running).
struct Overtaken(EmbeddedStore);

#[async_trait]
impl StoreLayer for Overtaken {
    type Inner = EmbeddedStore;

    fn inner(&self) -> &EmbeddedStore {
        &self.0
    }

    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError> {
        let current = self.0.read_shard(key).await?.progress;
        let newer = Progress {
            version: current.version,
            ..current.clone()
        };
        self.0
            .commit(key, current.version, &newer, &Settled::default())
            .await?;
        self.0.commit_batch(key, commits).await
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

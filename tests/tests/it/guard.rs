//! The parent-shard-completion guard against real resharding in kinesis-mock,
//! with Shardline's state in moto.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline::decode::decode_event;
use shardline::guard::kinesis::KinesisShards;
use shardline::guard::{ParentGuard, ShardDirectory, TailEnd, TailRecord};
use shardline::state::{ConsumerShard, DynamoDbStore, ShardStatus, StateStore};
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Record, ShardRef, process_event,
};
use shardline_tests::kinesis::{self, ReadRecord};
use shardline_tests::lambda::{EventRecord, event};
use shardline_tests::{Emulators, RequestCounter, unique_name};

#[path = "guard/tail_read.rs"]
mod tail_read;

#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&record.data).into_owned());
        Ok(())
    }
}

struct World {
    kinesis: aws_sdk_kinesis::Client,
    kinesis_requests: RequestCounter,
    store: DynamoDbStore,
    stream: String,
    arn: String,
}

impl World {
    async fn new(shards: i32) -> World {
        let emulators = Emulators::from_env();
        let (kinesis, kinesis_requests) = emulators.kinesis_counted();
        let store = DynamoDbStore::new(emulators.dynamodb(), unique_name("guard"));
        store.create_table().await.unwrap();
        let stream = unique_name("guard");
        kinesis::create_stream(&kinesis, &stream, shards).await;
        let arn = kinesis::stream_arn(&kinesis, &stream).await;
        World {
            kinesis,
            kinesis_requests,
            store,
            stream,
            arn,
        }
    }

    fn config(&self, guard: bool) -> EngineConfig {
        let mut config = EngineConfig::new("ordered");
        config.time_reserve = Duration::from_millis(100);
        if guard {
            let directory = KinesisShards::new(self.kinesis.clone());
            config.guard = Some(Arc::new(
                ParentGuard::new(Arc::new(directory))
                    .with_poll(Duration::from_millis(100), Duration::from_millis(200)),
            ));
        }
        config
    }

    async fn put(&self, shard_hash_key: u128, texts: &[&str]) {
        for text in texts {
            kinesis::put_record_at_hash_key(
                &self.kinesis,
                &self.stream,
                "key",
                shard_hash_key,
                text.as_bytes(),
            )
            .await;
        }
    }

    async fn records(&self, shard_id: &str) -> Vec<ReadRecord> {
        kinesis::read_shard(&self.kinesis, &self.stream, shard_id)
            .await
            .records
    }

    async fn process(
        &self,
        shard_id: &str,
        records: &[ReadRecord],
        handler: &Recorder,
        config: &EngineConfig,
        time: Duration,
    ) -> BatchOutcome {
        let records: Vec<EventRecord> = records.iter().map(EventRecord::from).collect();
        let json = event(&self.arn, shard_id, &records);
        process_event(
            decode_event(&json).unwrap(),
            handler,
            &self.store,
            config,
            Deadline::after(time),
        )
        .await
        .unwrap()
    }

    fn key(&self, shard_id: &str) -> ConsumerShard {
        ConsumerShard {
            consumer: "ordered".into(),
            shard: ShardRef {
                stream_arn: Arc::from(self.arn.as_str()),
                shard_id: Arc::from(shard_id),
            },
        }
    }
}

fn texts(handler: &Recorder) -> Vec<String> {
    handler.seen.lock().unwrap().clone()
}

#[tokio::test]
async fn a_split_child_waits_for_its_parent() {
    let world = World::new(1).await;
    let parent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    world
        .put(parent.middle_hash_key() - 1, &["p1", "p2", "p3"])
        .await;
    let [low, _high] = kinesis::split_shard(&world.kinesis, &world.stream, &parent.shard_id).await;
    world.put(low.starting_hash_key, &["c1", "c2"]).await;
    let parent_records = world.records(&parent.shard_id).await;
    let child_records = world.records(&low.shard_id).await;
    assert_eq!(parent_records.len(), 3);
    assert_eq!(child_records.len(), 2);

    let handler = Recorder::default();
    let config = world.config(true);
    let blocked = world
        .process(
            &low.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_millis(800),
        )
        .await;
    assert_eq!(
        blocked.response.batch_item_failures[0].item_identifier, child_records[0].sequence_number,
        "the whole child batch is reported failed"
    );
    assert_eq!(blocked.report.blocked_on_parent, 2);
    assert!(texts(&handler).is_empty(), "nothing of the child ran");

    // The parent's batch arrives and is processed; now the child goes through.
    let done = world
        .process(
            &parent.shard_id,
            &parent_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(done.response.is_success());
    let child = world
        .process(
            &low.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(child.response.is_success(), "{:?}", child.report);
    assert_eq!(texts(&handler), ["p1", "p2", "p3", "c1", "c2"]);
    let parent_state = world
        .store
        .load_shard(&world.key(&parent.shard_id))
        .await
        .unwrap();
    assert!(
        matches!(parent_state.status, ShardStatus::Ended { .. }),
        "the parent's end is recorded: {parent_state:?}"
    );

    // Later batches of the child cost no Kinesis request.
    world.kinesis_requests.reset();
    world
        .process(
            &low.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(world.kinesis_requests.total(), 0);
}

#[tokio::test]
async fn a_merged_child_waits_for_both_parents() {
    let world = World::new(2).await;
    let shards = kinesis::list_shards(&world.kinesis, &world.stream).await;
    let (left, right) = (shards[0].clone(), shards[1].clone());
    world.put(left.starting_hash_key, &["l1"]).await;
    world.put(right.starting_hash_key, &["r1"]).await;
    let child = kinesis::merge_shards(
        &world.kinesis,
        &world.stream,
        &left.shard_id,
        &right.shard_id,
    )
    .await;
    world.put(child.starting_hash_key, &["m1"]).await;
    let child_records = world.records(&child.shard_id).await;

    let handler = Recorder::default();
    let config = world.config(true);
    let left_records = world.records(&left.shard_id).await;
    world
        .process(
            &left.shard_id,
            &left_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    let blocked = world
        .process(
            &child.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_millis(800),
        )
        .await;
    assert_eq!(
        blocked.report.blocked_on_parent, 1,
        "the right parent is unfinished"
    );
    assert_eq!(texts(&handler), ["l1"]);

    let right_records = world.records(&right.shard_id).await;
    world
        .process(
            &right.shard_id,
            &right_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    let through = world
        .process(
            &child.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(through.response.is_success(), "{:?}", through.report);
    assert_eq!(texts(&handler), ["l1", "r1", "m1"]);
}

#[tokio::test]
async fn a_parent_with_nothing_left_or_already_ended_does_not_block() {
    let world = World::new(1).await;
    let parent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    // An empty parent: reading from its start finds a closed shard.
    let [low, high] = kinesis::split_shard(&world.kinesis, &world.stream, &parent.shard_id).await;
    world.put(low.starting_hash_key, &["c1"]).await;
    let handler = Recorder::default();
    let config = world.config(true);
    let records = world.records(&low.shard_id).await;
    let out = world
        .process(
            &low.shard_id,
            &records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(out.response.is_success(), "{:?}", out.report);

    // The parent's end is now recorded: the sibling clears from state alone.
    world.put(high.starting_hash_key, &["c2"]).await;
    let records = world.records(&high.shard_id).await;
    world.kinesis_requests.reset();
    let out = world
        .process(
            &high.shard_id,
            &records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(out.response.is_success());
    assert_eq!(
        world.kinesis_requests.get("GetRecords"),
        0,
        "an ended parent is not read again: {:?}",
        world.kinesis_requests.snapshot()
    );
    assert_eq!(texts(&handler), ["c1", "c2"]);
}

#[tokio::test]
async fn the_guard_switched_off_does_not_block() {
    let world = World::new(1).await;
    let parent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    world.put(parent.middle_hash_key() - 1, &["p1"]).await;
    let [low, _] = kinesis::split_shard(&world.kinesis, &world.stream, &parent.shard_id).await;
    world.put(low.starting_hash_key, &["c1"]).await;
    let records = world.records(&low.shard_id).await;
    let handler = Recorder::default();
    world.kinesis_requests.reset();
    let out = world
        .process(
            &low.shard_id,
            &records,
            &handler,
            &world.config(false),
            Duration::from_secs(5),
        )
        .await;
    assert!(out.response.is_success());
    assert_eq!(texts(&handler), ["c1"]);
    assert_eq!(world.kinesis_requests.total(), 0);
}

#[tokio::test]
async fn an_empty_intermediate_parent_does_not_let_a_grandchild_overtake_its_grandparent() {
    let world = World::new(1).await;
    let grandparent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    world
        .put(grandparent.starting_hash_key, &["g1", "g2"])
        .await;
    let [low, _high] =
        kinesis::split_shard(&world.kinesis, &world.stream, &grandparent.shard_id).await;
    // `low` closes empty: split again before anything is put into it.
    let [grandchild, _] = kinesis::split_shard(&world.kinesis, &world.stream, &low.shard_id).await;
    world.put(grandchild.starting_hash_key, &["c1"]).await;
    let records = world.records(&grandchild.shard_id).await;
    let handler = Recorder::default();
    let config = world.config(true);
    let held = world
        .process(
            &grandchild.shard_id,
            &records,
            &handler,
            &config,
            Duration::from_millis(800),
        )
        .await;
    assert_eq!(
        held.report.blocked_on_parent, 1,
        "the grandparent still has unprocessed records: {:?}",
        held.report
    );
    assert!(texts(&handler).is_empty(), "{:?}", texts(&handler));

    let grandparent_records = world.records(&grandparent.shard_id).await;
    world
        .process(
            &grandparent.shard_id,
            &grandparent_records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    let through = world
        .process(
            &grandchild.shard_id,
            &records,
            &handler,
            &config,
            Duration::from_secs(20),
        )
        .await;
    assert!(through.response.is_success(), "{:?}", through.report);
    assert_eq!(texts(&handler), ["g1", "g2", "c1"]);
}

#[tokio::test]
async fn in_per_key_mode_a_parent_whose_records_are_all_done_lets_its_child_go() {
    let world = World::new(1).await;
    let parent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    for (i, key) in ["ka", "kb", "ka", "kb"].iter().enumerate() {
        kinesis::put_record_at_hash_key(
            &world.kinesis,
            &world.stream,
            key,
            parent.starting_hash_key,
            format!("p{i}").as_bytes(),
        )
        .await;
    }
    let [low, _] = kinesis::split_shard(&world.kinesis, &world.stream, &parent.shard_id).await;
    world.put(low.starting_hash_key, &["c1"]).await;
    let mut config = world.config(true);
    config.progress = shardline::ProgressMode::PartitionKey;
    let handler = Recorder::default();
    let parent_records = world.records(&parent.shard_id).await;
    // Two slots of the parent (ParallelizationFactor 2): one batch per key.
    for key in ["ka", "kb"] {
        let slot: Vec<ReadRecord> = parent_records
            .iter()
            .filter(|r| r.partition_key == key)
            .cloned()
            .collect();
        let out = world
            .process(
                &parent.shard_id,
                &slot,
                &handler,
                &config,
                Duration::from_secs(20),
            )
            .await;
        assert!(out.response.is_success(), "{:?}", out.report);
        if key == "ka" {
            // Half the parent is done: its child must still wait.
            let child_records = world.records(&low.shard_id).await;
            let held = world
                .process(
                    &low.shard_id,
                    &child_records,
                    &handler,
                    &config,
                    Duration::from_millis(800),
                )
                .await;
            assert_eq!(held.report.blocked_on_parent, 1, "{:?}", held.report);
        }
    }
    let child_records = world.records(&low.shard_id).await;
    let through = world
        .process(
            &low.shard_id,
            &child_records,
            &handler,
            &config,
            Duration::from_secs(30),
        )
        .await;
    assert!(through.response.is_success(), "{:?}", through.report);
    assert_eq!(texts(&handler), ["p0", "p2", "p1", "p3", "c1"]);
}

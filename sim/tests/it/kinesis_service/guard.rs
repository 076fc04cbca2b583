//! Shardline's `KinesisShards` (the parent guard's `ShardDirectory`) over the
//! simulated service.

use std::sync::Arc;

use bytes::Bytes;
use kpl::UserRecord;
use shardline::guard::kinesis::KinesisShards;
use shardline::guard::{ListedShard, ShardDirectory, TailEnd};
use shardline::time::SimulatedWallClock;
use shardline::{Position, SequenceNumber, ShardRef};
use shardline_sim::kinesis::KinesisService;

use super::start;

fn shard(id: &str) -> ShardRef {
    ShardRef {
        stream_arn: Arc::from(KinesisService::stream_arn("s")),
        shard_id: Arc::from(id),
    }
}

fn listed(id: u64, parents: &[u64]) -> ListedShard {
    ListedShard {
        shard_id: format!("shardId-{id:012}"),
        parents: parents.iter().map(|p| format!("shardId-{p:012}")).collect(),
    }
}

/// Stream `s`: shard 0 holds three plain records and an aggregate of four,
/// then is split into 2 and 3; 3 is merged with 1 into 4, which holds one record.
fn resharded() -> (KinesisService, Vec<SequenceNumber>) {
    let service = KinesisService::new();
    service.create_stream("s", 2).unwrap();
    let mut sequences = Vec::new();
    for data in ["a", "b", "c"] {
        let put = service.put_record("s", data, Some("0"), data).unwrap();
        sequences.push(put.sequence_number.parse().unwrap());
    }
    let users: Vec<UserRecord> = (0..4)
        .map(|i| UserRecord::new(format!("u{i}"), "x"))
        .collect();
    let aggregate = Bytes::from(kpl::aggregate(&users));
    let put = service.put_record("s", "u0", Some("0"), aggregate).unwrap();
    sequences.push(put.sequence_number.parse().unwrap());
    let [_, upper] = service
        .split_shard("s", "shardId-000000000000", 1 << 100)
        .unwrap();
    let merged = service
        .merge_shards("s", &upper, "shardId-000000000001")
        .unwrap();
    service
        .put_record("s", "z", Some(&(1u128 << 101).to_string()), "z")
        .unwrap();
    assert_eq!(merged, "shardId-000000000004");
    (service, sequences)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn list_shards_gives_every_shard_with_its_parents() {
    let (service, _) = resharded();
    let directory = KinesisShards::new(service.client());
    let shards = directory
        .list_shards(&KinesisService::stream_arn("s"))
        .await
        .unwrap();
    let expected = [
        listed(0, &[]),
        listed(1, &[]),
        listed(2, &[0]),
        listed(3, &[0]),
        listed(4, &[3, 1]),
    ];
    assert_eq!(shards, expected);
    assert_eq!(service.stats().requests["ListShards"], 2, "paged");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_closed_parent_is_read_to_its_end_with_its_children() {
    let _clock = SimulatedWallClock::start(start());
    let (service, sequences) = resharded();
    let directory = KinesisShards::new(service.client());
    let parent = shard("shardId-000000000000");
    let tail = directory.read_after(&parent, None, 100).await.unwrap();
    let children = vec![
        "shardId-000000000002".to_owned(),
        "shardId-000000000003".to_owned(),
    ];
    assert_eq!(
        tail.end,
        TailEnd::Ended {
            children: children.clone()
        }
    );
    let got: Vec<_> = tail
        .records
        .iter()
        .map(|r| {
            (
                r.sequence.clone(),
                r.last_subsequence,
                r.partition_key.as_str(),
            )
        })
        .collect();
    let want = [
        (sequences[0].clone(), 0, "a"),
        (sequences[1].clone(), 0, "b"),
        (sequences[2].clone(), 0, "c"),
        (sequences[3].clone(), 3, "u0"),
    ];
    assert_eq!(got, want);
    let after_b = Position::new(sequences[1].clone(), 0);
    let tail = directory
        .read_after(&parent, Some(&after_b), 100)
        .await
        .unwrap();
    assert_eq!(tail.records.len(), 2);
    assert_eq!(tail.records[0].sequence, sequences[2]);
    let inside = Position::new(sequences[3].clone(), 1);
    let tail = directory
        .read_after(&parent, Some(&inside), 100)
        .await
        .unwrap();
    assert_eq!(
        tail.records.len(),
        1,
        "user records follow inside the aggregate"
    );
    assert_eq!(tail.end, TailEnd::Ended { children });
    let short = directory.read_after(&parent, None, 2).await.unwrap();
    assert_eq!((short.records.len(), short.end), (2, TailEnd::More));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_open_shard_is_read_to_its_tip() {
    let (service, _) = resharded();
    let directory = KinesisShards::new(service.client());
    let tail = directory
        .read_after(&shard("shardId-000000000004"), None, 100)
        .await
        .unwrap();
    assert_eq!(tail.end, TailEnd::Open);
    assert_eq!(tail.records.len(), 1);
    let missing = directory
        .read_after(&shard("shardId-000000000009"), None, 100)
        .await;
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("ResourceNotFoundException")
    );
}

//! The guard's tail reads against kinesis-mock: each read goes on from where
//! the last one stopped.

use super::*;

#[tokio::test]
async fn a_tail_read_goes_on_from_where_the_last_one_stopped() {
    let world = World::new(1).await;
    let parent = kinesis::list_shards(&world.kinesis, &world.stream).await[0].clone();
    world
        .put(parent.starting_hash_key, &["p1", "p2", "p3", "p4", "p5"])
        .await;
    let [low, high] = kinesis::split_shard(&world.kinesis, &world.stream, &parent.shard_id).await;
    let directory = KinesisShards::new(world.kinesis.clone());
    let shard = world.key(&parent.shard_id).shard;
    let mut read = directory.read_after(&shard, None, 2).await.unwrap();
    let mut sequences: Vec<String> = Vec::new();
    let mut reads = 1;
    while read.end == TailEnd::More {
        sequences.extend(read.records.iter().map(|r| r.sequence.to_string()));
        let cursor = read
            .resume
            .clone()
            .expect("a read that stops hands back a cursor");
        let after = read.records.last().map(TailRecord::last);
        read = directory
            .read_on(&shard, &cursor, after.as_ref(), 2)
            .await
            .unwrap();
        reads += 1;
        assert!(reads <= 5, "the reads go on: {read:?}");
    }
    sequences.extend(read.records.iter().map(|r| r.sequence.to_string()));
    let written: Vec<String> = world
        .records(&parent.shard_id)
        .await
        .iter()
        .map(|r| r.sequence_number.clone())
        .collect();
    assert_eq!(sequences, written, "each record once, in order");
    assert_eq!(
        read.end,
        TailEnd::Ended {
            children: vec![low.shard_id, high.shard_id]
        }
    );
    assert_eq!(read.resume, None);
}

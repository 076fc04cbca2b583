//! Resharding on the Kinesis emulator: what the parent-shard-completion guard relies on.

use shardline_tests::kinesis::{self, ChildShardInfo, ShardInfo};
use shardline_tests::{Emulators, unique_name};

fn data_of(read: &kinesis::ShardRead) -> Vec<&[u8]> {
    read.records.iter().map(|r| r.data.as_slice()).collect()
}

#[tokio::test]
async fn split_closes_the_parent_and_lists_two_children() {
    let client = Emulators::from_env().kinesis();
    let stream = unique_name("split");
    kinesis::create_stream(&client, &stream, 1).await;
    kinesis::put_records(&client, &stream, [("a", b"p1"), ("b", b"p2"), ("c", b"p3")]).await;
    let parent = kinesis::list_shards(&client, &stream).await.remove(0);

    let [lower, upper] = kinesis::split_shard(&client, &stream, &parent.shard_id).await;

    // ListShards: two children whose ParentShardId is the parent, splitting its range.
    for child in [&lower, &upper] {
        assert_eq!(
            child.parent_shard_id.as_deref(),
            Some(parent.shard_id.as_str())
        );
        assert_eq!(child.adjacent_parent_shard_id, None);
        assert!(!child.is_closed(), "{child:?}");
    }
    assert_eq!(lower.starting_hash_key, parent.starting_hash_key);
    assert_eq!(lower.ending_hash_key + 1, upper.starting_hash_key);
    assert_eq!(upper.starting_hash_key, parent.middle_hash_key());
    assert_eq!(upper.ending_hash_key, parent.ending_hash_key);
    let shards = kinesis::list_shards(&client, &stream).await;
    assert_eq!(shards.len(), 3, "{shards:?}");
    let closed_parent = shards
        .iter()
        .find(|s| s.shard_id == parent.shard_id)
        .unwrap();
    assert!(
        closed_parent.is_closed(),
        "the split parent is closed: {closed_parent:?}"
    );

    // New records go to the children, by hash key.
    let low =
        kinesis::put_record_at_hash_key(&client, &stream, "x", lower.starting_hash_key, b"low")
            .await;
    let high =
        kinesis::put_record_at_hash_key(&client, &stream, "y", upper.ending_hash_key, b"high")
            .await;
    assert_eq!(low.shard_id, lower.shard_id);
    assert_eq!(high.shard_id, upper.shard_id);

    // Reading the closed parent: all its records, then a null NextShardIterator and
    // the ChildShards.
    let read = kinesis::read_shard(&client, &stream, &parent.shard_id).await;
    assert_eq!(data_of(&read), [b"p1", b"p2", b"p3"]);
    assert!(
        read.shard_ended,
        "a closed shard ends with a null NextShardIterator"
    );
    let expected_children: Vec<ChildShardInfo> = [&lower, &upper]
        .iter()
        .map(|child| ChildShardInfo {
            shard_id: child.shard_id.clone(),
            parent_shards: vec![parent.shard_id.clone()],
        })
        .collect();
    assert_eq!(read.child_shards, expected_children);

    // The open children read up to their current end, without a shard end.
    let read_lower = kinesis::read_shard(&client, &stream, &lower.shard_id).await;
    assert_eq!(data_of(&read_lower), [b"low"]);
    assert!(!read_lower.shard_ended);
    assert!(read_lower.child_shards.is_empty());
    let read_upper = kinesis::read_shard(&client, &stream, &upper.shard_id).await;
    assert_eq!(data_of(&read_upper), [b"high"]);
    assert!(!read_upper.shard_ended);

    kinesis::delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn merge_lists_parent_and_adjacent_parent() {
    let client = Emulators::from_env().kinesis();
    let stream = unique_name("merge");
    kinesis::create_stream(&client, &stream, 2).await;
    let mut shards = kinesis::list_shards(&client, &stream).await;
    shards.sort_by_key(|s| s.starting_hash_key);
    let [lower, upper]: [ShardInfo; 2] = shards.try_into().expect("two shards");
    assert_eq!(lower.ending_hash_key + 1, upper.starting_hash_key);
    kinesis::put_record_at_hash_key(&client, &stream, "a", lower.starting_hash_key, b"in-lower")
        .await;
    kinesis::put_record_at_hash_key(&client, &stream, "b", upper.starting_hash_key, b"in-upper")
        .await;

    let merged = kinesis::merge_shards(&client, &stream, &lower.shard_id, &upper.shard_id).await;

    assert_eq!(
        merged.parent_shard_id.as_deref(),
        Some(lower.shard_id.as_str())
    );
    assert_eq!(
        merged.adjacent_parent_shard_id.as_deref(),
        Some(upper.shard_id.as_str())
    );
    assert_eq!(merged.starting_hash_key, lower.starting_hash_key);
    assert_eq!(merged.ending_hash_key, upper.ending_hash_key);
    assert!(!merged.is_closed());
    let shards = kinesis::list_shards(&client, &stream).await;
    assert_eq!(shards.len(), 3, "{shards:?}");
    let open: Vec<&str> = shards
        .iter()
        .filter(|s| !s.is_closed())
        .map(|s| s.shard_id.as_str())
        .collect();
    assert_eq!(open, [merged.shard_id.as_str()]);

    // Both parents end with a null iterator and name the merged child with both parents.
    let expected_child = vec![ChildShardInfo {
        shard_id: merged.shard_id.clone(),
        parent_shards: vec![lower.shard_id.clone(), upper.shard_id.clone()],
    }];
    for (parent, data) in [(&lower, b"in-lower"), (&upper, b"in-upper")] {
        let read = kinesis::read_shard(&client, &stream, &parent.shard_id).await;
        assert_eq!(data_of(&read), [data], "{}", parent.shard_id);
        assert!(read.shard_ended, "{}", parent.shard_id);
        assert_eq!(read.child_shards, expected_child, "{}", parent.shard_id);
    }

    let put = kinesis::put_record(&client, &stream, "c", b"in-merged").await;
    assert_eq!(put.shard_id, merged.shard_id);
    let read = kinesis::read_shard(&client, &stream, &merged.shard_id).await;
    assert_eq!(data_of(&read), [b"in-merged"]);
    assert!(!read.shard_ended);

    kinesis::delete_stream(&client, &stream).await;
}

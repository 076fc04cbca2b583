use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shardline::SequenceNumber;

use super::*;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

fn number(text: &str) -> SequenceNumber {
    text.parse().unwrap()
}

fn put(stream: &mut Stream, hash: u128) -> PutResult {
    stream
        .put(hash, "k", None, Bytes::from_static(b"x"), at(1))
        .unwrap()
}

#[test]
fn creation_splits_the_hash_key_space_evenly() {
    assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
    let half = 1u128 << 127;
    assert_eq!(even_ranges(2), vec![(0, half - 1), (half, u128::MAX)]);
    for count in [3, 4, 5, 7, 16, 100] {
        let ranges = even_ranges(count);
        assert_eq!(ranges.len(), count as usize);
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u128::MAX);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0, "{count} shards: contiguous");
        }
        let width = ranges[0].1 - ranges[0].0;
        assert!(
            ranges[..ranges.len() - 1]
                .iter()
                .all(|r| r.1 - r.0 == width)
        );
    }
}

#[test]
fn sequence_numbers_are_56_digits_ordered_as_numbers() {
    let seq = Seq {
        counter: 12,
        shard: 3,
    };
    let text = seq.to_string();
    assert_eq!(text.len(), 56);
    assert!(text.starts_with("49"));
    assert_eq!(Seq::parse(&text), Some(seq));
    for bad in [
        "",
        "49",
        "1",
        &format!("{text}0"),
        &text.replace("49", "50"),
    ] {
        assert_eq!(Seq::parse(bad), None, "{bad}");
    }
    let pairs = [
        (
            Seq {
                counter: 1,
                shard: 9,
            },
            Seq {
                counter: 2,
                shard: 0,
            },
        ),
        (
            Seq {
                counter: 5,
                shard: 0,
            },
            Seq {
                counter: 5,
                shard: 1,
            },
        ),
        (
            Seq {
                counter: 9,
                shard: 0,
            },
            Seq {
                counter: 10,
                shard: 0,
            },
        ),
    ];
    for (low, high) in pairs {
        assert!(low < high);
        assert!(number(&low.to_string()) < number(&high.to_string()));
    }
}

#[test]
fn records_are_routed_by_hash_key_to_the_open_shard_holding_it() {
    let mut stream = Stream::new("s", 4, at(0));
    let quarter = 1u128 << 126;
    assert_eq!(put(&mut stream, 0).shard_id, "shardId-000000000000");
    assert_eq!(
        put(&mut stream, quarter - 1).shard_id,
        "shardId-000000000000"
    );
    assert_eq!(put(&mut stream, quarter).shard_id, "shardId-000000000001");
    assert_eq!(put(&mut stream, u128::MAX).shard_id, "shardId-000000000003");
    // MD5("a") = 0x0cc175b9..., in the first quarter.
    let hash = kpl::partition_key_hash("a");
    assert_eq!(stream.route(hash).unwrap().id, "shardId-000000000000");
    let [low, high] = stream
        .split("shardId-000000000000", quarter / 2, at(2))
        .unwrap();
    assert_eq!(put(&mut stream, 5).shard_id, low);
    assert_eq!(put(&mut stream, quarter / 2).shard_id, high);
}

#[test]
fn sequence_numbers_increase_in_a_shard_and_across_the_stream() {
    let mut stream = Stream::new("s", 2, at(0));
    let numbers: Vec<SequenceNumber> = (0..10u128)
        .map(|i| number(&put(&mut stream, i * (u128::MAX / 10)).sequence_number))
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    for shard in &stream.shards {
        assert!(shard.records.iter().all(|r| r.seq > shard.start_seq));
        assert!(shard.records.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}

#[test]
fn a_split_closes_its_parent_and_children_continue_above_it() {
    let mut stream = Stream::new("s", 1, at(0));
    let before = put(&mut stream, 7);
    let middle = 1u128 << 127;
    let [low, high] = stream.split("shardId-000000000000", middle, at(5)).unwrap();
    assert_eq!(
        (low.as_str(), high.as_str()),
        ("shardId-000000000001", "shardId-000000000002")
    );
    let parent = stream.shard("shardId-000000000000").unwrap().info();
    assert!(!parent.is_open());
    assert_eq!(parent.children, [low.clone(), high.clone()]);
    let end = number(parent.ending_sequence_number.as_deref().unwrap());
    assert!(number(&before.sequence_number) < end);
    for (id, range) in [(&low, (0, middle - 1)), (&high, (middle, u128::MAX))] {
        let child = stream.shard(id).unwrap().info();
        assert_eq!(child.parents(), ["shardId-000000000000"]);
        assert_eq!((child.starting_hash_key, child.ending_hash_key), range);
        assert!(number(&child.starting_sequence_number) > end);
        assert!(child.is_open());
    }
    let after = put(&mut stream, 7);
    assert_eq!(after.shard_id, low);
    assert!(number(&after.sequence_number) > end);
    assert!(!stream.shards[0].open_at(at(5)) && stream.shards[0].open_at(at(4)));
}

#[test]
fn a_merge_closes_both_parents_into_one_child() {
    let mut stream = Stream::new("s", 3, at(0));
    // Either order of two adjacent shards; the first named is the parent.
    let child = stream
        .merge("shardId-000000000002", "shardId-000000000001", at(1))
        .unwrap();
    let info = stream.shard(&child).unwrap().info();
    assert_eq!(
        info.parent_shard_id.as_deref(),
        Some("shardId-000000000002")
    );
    assert_eq!(
        info.adjacent_parent_shard_id.as_deref(),
        Some("shardId-000000000001")
    );
    let ranges = even_ranges(3);
    assert_eq!(
        (info.starting_hash_key, info.ending_hash_key),
        (ranges[1].0, u128::MAX)
    );
    for parent in ["shardId-000000000001", "shardId-000000000002"] {
        let parent = stream.shard(parent).unwrap().info();
        assert_eq!(parent.children, std::slice::from_ref(&child));
        assert!(
            number(parent.ending_sequence_number.as_deref().unwrap())
                < number(&info.starting_sequence_number)
        );
    }
    assert_eq!(put(&mut stream, u128::MAX).shard_id, child);
}

#[test]
fn resharding_refuses_closed_shards_bad_points_and_gaps() {
    let mut stream = Stream::new("s", 3, at(0));
    let start = stream.shards[1].start_hash;
    let end = stream.shards[1].end_hash;
    let id = "shardId-000000000001";
    assert!(matches!(
        stream.split(id, start, at(1)),
        Err(SimError::Invalid(_))
    ));
    assert!(matches!(
        stream.split(id, end + 1, at(1)),
        Err(SimError::Invalid(_))
    ));
    assert!(
        stream.split(id, end, at(1)).is_ok(),
        "a child of one hash key"
    );
    assert!(matches!(
        stream.split(id, end, at(1)),
        Err(SimError::ShardClosed { .. })
    ));
    let merge = stream.merge("shardId-000000000000", "shardId-000000000002", at(1));
    assert!(matches!(merge, Err(SimError::Invalid(_))), "not adjacent");
    let unknown = stream.merge("shardId-000000000000", "shardId-000000000099", at(1));
    assert!(matches!(unknown, Err(SimError::ShardNotFound { .. })));
    assert!(
        stream.shard("shardId-1").is_none(),
        "ids are spelled in full"
    );
}

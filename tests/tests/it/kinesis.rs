//! The Kinesis emulator through the harness: put, read back, and the request counter.

use shardline_tests::{Emulators, kinesis, unique_name};

/// Sequence numbers are decimal strings of up to 128 bits: compare length, then text.
fn sequence_key(sequence_number: &str) -> (usize, &str) {
    (sequence_number.len(), sequence_number)
}

#[tokio::test]
async fn records_come_back_in_order_with_their_data_and_partition_keys() {
    let emulators = Emulators::from_env();
    let (client, counter) = emulators.kinesis_counted();
    let stream = unique_name("roundtrip");
    kinesis::create_stream(&client, &stream, 1).await;

    let sent: [(&str, &[u8]); 3] = [
        ("account-1", b"first"),
        ("account-2", b"second \x00\xff binary"),
        ("account-1", b"third"),
    ];
    counter.reset();
    let put = kinesis::put_records(&client, &stream, sent).await;
    assert_eq!(
        counter.take().into_iter().collect::<Vec<_>>(),
        [("PutRecords".to_owned(), 1)]
    );

    let shards = kinesis::list_shards(&client, &stream).await;
    assert_eq!(shards.len(), 1, "{shards:?}");
    let shard = &shards[0];
    assert!(!shard.is_closed());
    assert_eq!(shard.parent_shard_id, None);
    assert_eq!(shard.starting_hash_key, 0);
    assert_eq!(shard.ending_hash_key, u128::MAX);
    assert!(put.iter().all(|p| p.shard_id == shard.shard_id), "{put:?}");

    let read = kinesis::read_shard(&client, &stream, &shard.shard_id).await;
    assert!(!read.shard_ended, "an open shard has no end");
    assert!(read.child_shards.is_empty());
    let got: Vec<(&str, &[u8])> = read
        .records
        .iter()
        .map(|r| (r.partition_key.as_str(), r.data.as_slice()))
        .collect();
    assert_eq!(got, sent);
    let read_sequence_numbers: Vec<&str> = read
        .records
        .iter()
        .map(|r| r.sequence_number.as_str())
        .collect();
    let put_sequence_numbers: Vec<&str> = put.iter().map(|p| p.sequence_number.as_str()).collect();
    assert_eq!(read_sequence_numbers, put_sequence_numbers);
    assert!(
        read_sequence_numbers
            .windows(2)
            .all(|pair| sequence_key(pair[0]) < sequence_key(pair[1])),
        "sequence numbers not increasing: {read_sequence_numbers:?}"
    );
    assert!(
        read.records
            .iter()
            .all(|r| r.approximate_arrival_timestamp.is_some())
    );

    // The counter saw exactly the requests of the read.
    let counts = counter.take();
    assert_eq!(counts.get("GetShardIterator"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("GetRecords").copied(),
        Some(read.get_records_calls as u64)
    );
    assert_eq!(counts.get("ListShards"), Some(&1), "{counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");

    let single = kinesis::put_record(&client, &stream, "account-3", b"fourth").await;
    assert!(sequence_key(&single.sequence_number) > sequence_key(put_sequence_numbers[2]));
    let read = kinesis::read_shard(&client, &stream, &shard.shard_id).await;
    assert_eq!(read.records.len(), 4);
    assert_eq!(read.records[3].data, b"fourth");

    kinesis::delete_stream(&client, &stream).await;
}

#[tokio::test]
async fn put_records_splits_calls_at_500_entries() {
    let emulators = Emulators::from_env();
    let (client, counter) = emulators.kinesis_counted();
    let stream = unique_name("put-many");
    kinesis::create_stream(&client, &stream, 2).await;
    counter.reset();
    let records: Vec<(String, Vec<u8>)> = (0..1001)
        .map(|i| (format!("key-{i}"), i.to_string().into_bytes()))
        .collect();
    let put = kinesis::put_records(&client, &stream, records.clone()).await;
    assert_eq!(put.len(), 1001);
    assert_eq!(counter.get("PutRecords"), 3);

    // Every record is in the shard PutRecords named, in the order it was put.
    let mut total = 0;
    for shard in kinesis::list_shards(&client, &stream).await {
        let read = kinesis::read_shard(&client, &stream, &shard.shard_id).await;
        let expected: Vec<&[u8]> = records
            .iter()
            .zip(&put)
            .filter(|(_, p)| p.shard_id == shard.shard_id)
            .map(|((_, data), _)| data.as_slice())
            .collect();
        let got: Vec<&[u8]> = read.records.iter().map(|r| r.data.as_slice()).collect();
        assert_eq!(got, expected, "shard {}", shard.shard_id);
        total += got.len();
    }
    assert_eq!(total, 1001);
    kinesis::delete_stream(&client, &stream).await;
}

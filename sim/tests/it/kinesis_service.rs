//! The simulated Kinesis service through the real SDK client: round trips,
//! resharding, iterator expiry, and every fault kind as the SDK reports it.
//! Shardline's sink and guard over it are in `kinesis_service/`.

mod faults;
mod guard;
mod sink;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use shardline::time::SimulatedWallClock;
use shardline_sim::kinesis::{KinesisService, ShardInfo};
use tokio::time::advance;

/// The wall clock the tests start at.
pub(crate) fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A service with stream `s` of `shards` shards, and a client without retries.
pub(crate) fn setup(shards: u32) -> (KinesisService, Client) {
    let service = KinesisService::new();
    service.create_stream("s", shards).unwrap();
    let client = service.client_with_retry(RetryConfig::disabled());
    (service, client)
}

/// A PutRecords entry.
pub(crate) fn entry(key: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

/// An iterator of shard `shard` of `s`.
pub(crate) async fn iterator(client: &Client, shard: &str, kind: ShardIteratorType) -> String {
    let out = client.get_shard_iterator().stream_name("s").shard_id(shard);
    let out = out.shard_iterator_type(kind).send().await.unwrap();
    out.shard_iterator().unwrap().to_owned()
}

/// Reads `shard` of `s` from its trim horizon to its end or its tip; returns
/// every page.
pub(crate) async fn read_pages(client: &Client, shard: &str, limit: i32) -> Vec<GetRecordsOutput> {
    let mut next = Some(iterator(client, shard, ShardIteratorType::TrimHorizon).await);
    let mut pages = Vec::new();
    while let Some(current) = next {
        let page = client.get_records().shard_iterator(current).limit(limit);
        let page = page.send().await.unwrap();
        next = page.next_shard_iterator().map(str::to_owned);
        let caught_up = page.records().is_empty() && page.millis_behind_latest() == Some(0);
        pages.push(page);
        if caught_up {
            break;
        }
    }
    pages
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn put_records_and_get_records_round_trip() {
    let _clock = SimulatedWallClock::start(start());
    let (service, client) = setup(2);
    let mut entries: Vec<_> = (0..20u8)
        .map(|i| entry(&format!("key-{i}"), &[i, 0, 255, b'\n', i]))
        .collect();
    entries[3] = PutRecordsRequestEntry::builder()
        .partition_key("pinned")
        .explicit_hash_key(u128::MAX.to_string())
        .data(Blob::new("last shard"))
        .build()
        .unwrap();
    advance(Duration::from_millis(1_234)).await;
    let out = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries.clone()));
    let out = out.send().await.unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    let shards = service.shards("s").unwrap();
    let holder = |hash: u128| {
        shards
            .iter()
            .find(|s| s.starting_hash_key <= hash && hash <= s.ending_hash_key)
            .unwrap()
    };
    for (sent, result) in entries.iter().zip(out.records()) {
        let hash = match sent.explicit_hash_key() {
            Some(key) => key.parse().unwrap(),
            None => kpl::partition_key_hash(sent.partition_key()),
        };
        assert_eq!(result.shard_id(), Some(holder(hash).shard_id.as_str()));
        assert_eq!(result.sequence_number().unwrap().len(), 56);
    }
    let single = client
        .put_record()
        .stream_name("s")
        .partition_key("one")
        .data(Blob::new("x"));
    let single = single.send().await.unwrap();
    assert_eq!(single.sequence_number().len(), 56);
    let stored = service.stream_records("s").unwrap();
    assert_eq!(
        stored["shardId-000000000001"]
            .iter()
            .filter(|r| r.explicit_hash_key.is_some())
            .count(),
        1
    );
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let pages = read_pages(&client, shard, 3).await;
        let read: Vec<_> = pages.iter().flat_map(|p| p.records()).collect();
        assert_eq!(read.len(), stored[shard].len());
        assert!(pages.len() > 2, "paged by Limit");
        for (got, want) in read.iter().zip(&stored[shard]) {
            assert_eq!(got.data().as_ref(), &want.data[..]);
            assert_eq!(got.partition_key(), want.partition_key);
            assert_eq!(got.sequence_number(), want.sequence_number);
            let arrival = got.approximate_arrival_timestamp().unwrap();
            let expected = DateTime::from(start() + Duration::from_millis(1_234));
            assert!(
                (arrival.as_secs_f64() - expected.as_secs_f64()).abs() < 0.001,
                "{arrival}"
            );
        }
    }
    assert_eq!(service.stats().entries_put, 21);
}

/// The first record's data of a read of two records from `iterator`, and
/// how far behind the read is.
async fn first_of(client: &Client, iterator: Option<String>) -> (Vec<u8>, Option<i64>) {
    let request = client.get_records().set_shard_iterator(iterator).limit(2);
    let page = request.send().await.unwrap();
    let data = page.records()[0].data().as_ref().to_vec();
    (data, page.millis_behind_latest())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn iterators_start_where_asked_and_report_how_far_behind() {
    let _clock = SimulatedWallClock::start(start());
    let (service, client) = setup(1);
    let shard = "shardId-000000000000";
    let latest = iterator(&client, shard, ShardIteratorType::Latest).await;
    let mut puts = Vec::new();
    for i in 0..5 {
        puts.push(service.put_record("s", "k", None, format!("r{i}")).unwrap());
        advance(Duration::from_secs(10)).await;
    }
    // Two read, three left: behind by the age of the first unread (r2, 30 s).
    let read = first_of(&client, Some(latest)).await;
    assert_eq!(read, (b"r0".to_vec(), Some(30_000)));
    let request = || client.get_shard_iterator().stream_name("s").shard_id(shard);
    let at = |kind: ShardIteratorType| {
        let request = request().shard_iterator_type(kind);
        request
            .starting_sequence_number(&puts[2].sequence_number)
            .send()
    };
    let it = at(ShardIteratorType::AtSequenceNumber).await.unwrap();
    assert_eq!(first_of(&client, it.shard_iterator).await.0, b"r2");
    let it = at(ShardIteratorType::AfterSequenceNumber).await.unwrap();
    let read = first_of(&client, it.shard_iterator).await;
    assert_eq!(read, (b"r3".to_vec(), Some(0)), "read to the tip");
    let stamp = DateTime::from(start() + Duration::from_secs(15));
    let it = request().shard_iterator_type(ShardIteratorType::AtTimestamp);
    let it = it.timestamp(stamp).send().await.unwrap();
    assert_eq!(first_of(&client, it.shard_iterator).await.0, b"r2");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn iterators_refuse_positions_outside_the_shard() {
    let (service, client) = setup(1);
    service.put_record("s", "k", None, "x").unwrap();
    let request = |shard: &str, kind: ShardIteratorType| {
        let request = client.get_shard_iterator().stream_name("s").shard_id(shard);
        request.shard_iterator_type(kind)
    };
    let at = |seq: &str| {
        let request = request("shardId-000000000000", ShardIteratorType::AtSequenceNumber);
        request.starting_sequence_number(seq).send()
    };
    let other_shard = format!("49{:054}", 3);
    let error = at(&other_shard).await.unwrap_err();
    assert_eq!(error.code(), Some("InvalidArgumentException"));
    let error = at("007").await.unwrap_err();
    assert_eq!(error.code(), Some("ValidationException"));
    let missing = request("shardId-000000000009", ShardIteratorType::TrimHorizon);
    let error = missing.send().await.unwrap_err();
    assert_eq!(error.code(), Some("ResourceNotFoundException"));
}

/// Every shard through the SDK's ListShards, page by page.
async fn list_all(client: &Client, stream: &str) -> (Vec<ShardInfo>, usize) {
    let mut shards = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_arn(stream),
        };
        let page = request.send().await.unwrap();
        pages += 1;
        for shard in page.shards() {
            let range = shard.hash_key_range().unwrap();
            let seqs = shard.sequence_number_range().unwrap();
            shards.push(ShardInfo {
                shard_id: shard.shard_id().to_owned(),
                parent_shard_id: shard.parent_shard_id().map(str::to_owned),
                adjacent_parent_shard_id: shard.adjacent_parent_shard_id().map(str::to_owned),
                starting_hash_key: range.starting_hash_key().parse().unwrap(),
                ending_hash_key: range.ending_hash_key().parse().unwrap(),
                starting_sequence_number: seqs.starting_sequence_number().to_owned(),
                ending_sequence_number: seqs.ending_sequence_number().map(str::to_owned),
                children: Vec::new(),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return (shards, pages);
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn splits_and_merges_show_in_list_shards_and_get_records() {
    let _clock = SimulatedWallClock::start(start());
    let (service, client) = setup(1);
    let parent = "shardId-000000000000";
    service.put_record("s", "a", None, "before").unwrap();
    let [low, high] = service.split_shard("s", parent, 1 << 127).unwrap();
    service.put_record("s", "a", Some("1"), "low").unwrap();
    service
        .put_record("s", "a", Some(&u128::MAX.to_string()), "high")
        .unwrap();
    let merged = service.merge_shards("s", &low, &high).unwrap();
    service.put_record("s", "a", None, "merged").unwrap();
    let (listed, pages) = list_all(&client, &KinesisService::stream_arn("s")).await;
    assert_eq!(pages, 2, "four shards, three a page");
    let mut expected = service.shards("s").unwrap();
    expected.iter_mut().for_each(|s| s.children.clear());
    assert_eq!(listed, expected);
    assert_eq!(listed[3].parents(), [low.clone(), high.clone()]);
    assert!(listed[..3].iter().all(|s| !s.is_open()) && listed[3].is_open());
    let ends = |shard: &str| {
        let client = client.clone();
        let shard = shard.to_owned();
        async move {
            let pages = read_pages(&client, &shard, 100).await;
            let last = pages.last().unwrap().clone();
            let data: Vec<Vec<u8>> = pages
                .iter()
                .flat_map(|p| p.records())
                .map(|r| r.data().as_ref().to_vec())
                .collect();
            (data, last)
        }
    };
    let (data, last) = ends(parent).await;
    assert_eq!(data, [b"before".to_vec()]);
    assert_eq!(
        last.next_shard_iterator(),
        None,
        "closed and read to its end"
    );
    let children: Vec<_> = last
        .child_shards()
        .iter()
        .map(|c| (c.shard_id(), c.parent_shards().to_vec()))
        .collect();
    assert_eq!(
        children,
        [
            (low.as_str(), vec![parent.to_owned()]),
            (high.as_str(), vec![parent.to_owned()])
        ]
    );
    let (data, last) = ends(&low).await;
    assert_eq!(data, [b"low".to_vec()]);
    let child = &last.child_shards()[0];
    assert_eq!(
        (child.shard_id(), child.parent_shards()),
        (merged.as_str(), &[low.clone(), high.clone()][..])
    );
    assert_eq!(
        child.hash_key_range().unwrap().ending_hash_key(),
        u128::MAX.to_string()
    );
    let (data, last) = ends(&merged).await;
    assert_eq!(data, [b"merged".to_vec()]);
    assert!(
        last.next_shard_iterator().is_some() && last.child_shards().is_empty(),
        "open"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn iterators_expire_five_minutes_after_they_were_issued() {
    let (service, client) = setup(1);
    service.put_record("s", "k", None, "x").unwrap();
    let first = iterator(
        &client,
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    advance(Duration::from_secs(299)).await;
    let page = client
        .get_records()
        .shard_iterator(&first)
        .send()
        .await
        .unwrap();
    let next = page.next_shard_iterator().unwrap().to_owned();
    advance(Duration::from_secs(2)).await;
    let error = client
        .get_records()
        .shard_iterator(&first)
        .send()
        .await
        .unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_expired_iterator_exception())
    );
    client
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .unwrap();
    let error = client
        .get_records()
        .shard_iterator("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("InvalidArgumentException"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn describe_stream_summary_counts_the_open_shards() {
    let _clock = SimulatedWallClock::start(start());
    let (service, client) = setup(3);
    service
        .split_shard("s", "shardId-000000000001", 1 << 127)
        .unwrap();
    let arn = KinesisService::stream_arn("s");
    let out = client.describe_stream_summary().stream_arn(&arn).send();
    let summary = out.await.unwrap().stream_description_summary.unwrap();
    assert_eq!(
        (summary.stream_name(), summary.stream_arn()),
        ("s", arn.as_str())
    );
    assert_eq!(summary.open_shard_count(), 4);
    assert_eq!(summary.stream_status().as_str(), "ACTIVE");
    assert_eq!(summary.stream_creation_timestamp().secs(), 1_700_000_000);
    let missing = client.describe_stream_summary().stream_name("nope").send();
    let error = missing.await.unwrap_err();
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
}

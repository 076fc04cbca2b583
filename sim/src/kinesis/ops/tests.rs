//! The JSON operations, driven through the service without the SDK.

use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Reply, Service};
use crate::kinesis::KinesisService;

async fn call(service: &KinesisService, operation: &str, body: Value) -> (u16, Value) {
    match service
        .call(operation.to_owned(), body.to_string().into_bytes())
        .await
    {
        Reply::Answer { status, body } => (status, serde_json::from_slice(&body).unwrap()),
        Reply::Lost => panic!("{operation}: answer lost"),
    }
}

/// Every shard id ListShards lists from `first`, page by page; the page sizes.
async fn pages(service: &KinesisService, first: Value) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    let mut request = first;
    loop {
        let (status, page) = call(service, "ListShards", request.clone()).await;
        assert_eq!(status, 200, "{page}");
        let shards = page["Shards"].as_array().unwrap();
        sizes.push(shards.len());
        ids.extend(
            shards
                .iter()
                .map(|s| s["ShardId"].as_str().unwrap().to_owned()),
        );
        match page["NextToken"].as_str() {
            Some(token) => {
                let max = request.get("MaxResults").cloned();
                request = json!({"NextToken": token});
                if let Some(max) = max {
                    request["MaxResults"] = max;
                }
            }
            None => return (ids, sizes),
        }
    }
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("shardId-{i:012}")).collect()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn list_shards_pages_with_next_tokens() {
    let service = KinesisService::new();
    service.create_stream("s", 7).unwrap();
    let (listed, sizes) = pages(&service, json!({"StreamName": "s"})).await;
    assert_eq!(listed, ids(0..7));
    assert_eq!(sizes, [3, 3, 1]);
    let (_, sizes) = pages(&service, json!({"StreamName": "s", "MaxResults": 2})).await;
    assert_eq!(sizes, [2, 2, 2, 1]);
    let after = json!({"StreamName": "s", "ExclusiveStartShardId": "shardId-000000000004"});
    assert_eq!(pages(&service, after).await.0, ids(5..7));
    service.set_list_page_size(100);
    let arn = KinesisService::stream_arn("s");
    let (_, sizes) = pages(&service, json!({"StreamARN": arn})).await;
    assert_eq!(sizes, [7]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn next_tokens_stand_alone_and_expire() {
    let service = KinesisService::new();
    service.create_stream("s", 4).unwrap();
    let (_, first) = call(&service, "ListShards", json!({"StreamName": "s"})).await;
    let token = first["NextToken"].as_str().unwrap();
    let both = json!({"StreamName": "s", "NextToken": token});
    let (status, error) = call(&service, "ListShards", both).await;
    assert_eq!(
        (status, error["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );
    let (_, error) = call(&service, "ListShards", json!({"NextToken": "garbage"})).await;
    assert_eq!(error["__type"], "InvalidArgumentException");
    tokio::time::advance(Duration::from_secs(301)).await;
    let (_, error) = call(&service, "ListShards", json!({"NextToken": token})).await;
    assert_eq!(error["__type"], "ExpiredNextTokenException");
    let (_, error) = call(
        &service,
        "ListShards",
        json!({"StreamName": "s", "MaxResults": 0}),
    )
    .await;
    assert_eq!(error["__type"], "ValidationException");
    let (_, error) = call(&service, "ListShards", json!({"StreamName": "nope"})).await;
    assert_eq!(error["__type"], "ResourceNotFoundException");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shard_filters_follow_resharding() {
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let _clock = shardline::time::SimulatedWallClock::start(start);
    let service = KinesisService::new();
    service.create_stream("s", 2).unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    service
        .split_shard("s", "shardId-000000000000", 1 << 100)
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    service
        .merge_shards("s", "shardId-000000000003", "shardId-000000000001")
        .unwrap();
    service.set_list_page_size(10);
    let filter = |kind: &str| json!({"StreamName": "s", "ShardFilter": {"Type": kind}});
    let listed = |kind: &'static str| {
        let service = service.clone();
        async move { pages(&service, filter(kind)).await.0 }
    };
    assert_eq!(
        listed("AT_LATEST").await,
        ["shardId-000000000002", "shardId-000000000004"]
    );
    assert_eq!(listed("AT_TRIM_HORIZON").await, ids(0..2));
    assert_eq!(listed("FROM_TRIM_HORIZON").await, ids(0..5));
    let after = json!({"StreamName": "s", "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000002"}});
    assert_eq!(pages(&service, after).await.0, ids(3..5));
    let at = |kind: &str, seconds: u64| {
        let stamp = 1_700_000_000 + seconds;
        json!({"StreamName": "s", "ShardFilter": {"Type": kind, "Timestamp": stamp}})
    };
    assert_eq!(pages(&service, at("AT_TIMESTAMP", 5)).await.0, ids(0..2));
    assert_eq!(pages(&service, at("AT_TIMESTAMP", 15)).await.0, ids(1..4));
    assert_eq!(pages(&service, at("FROM_TIMESTAMP", 15)).await.0, ids(1..5));
    let (_, all) = call(&service, "ListShards", json!({"StreamName": "s"})).await;
    let merged = &all["Shards"][4];
    assert_eq!(merged["ParentShardId"], "shardId-000000000003");
    assert_eq!(merged["AdjacentParentShardId"], "shardId-000000000001");
    assert!(
        merged["SequenceNumberRange"]
            .get("EndingSequenceNumber")
            .is_none()
    );
    assert!(all["Shards"][0]["SequenceNumberRange"]["EndingSequenceNumber"].is_string());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn put_records_is_validated_whole() {
    let service = KinesisService::new();
    service.create_stream("s", 1).unwrap();
    let entry = |key: &str| json!({"PartitionKey": key, "Data": "eA=="});
    let put = |records: Vec<Value>| json!({"StreamName": "s", "Records": records});
    let cases = [
        (put(vec![]), "ValidationException"),
        (put(vec![entry("k"); 501]), "ValidationException"),
        (put(vec![entry("k"), entry("")]), "ValidationException"),
        (put(vec![entry(&"é".repeat(257))]), "ValidationException"),
        (
            put(vec![json!({"PartitionKey": "k"})]),
            "ValidationException",
        ),
        (
            put(vec![
                json!({"PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": "01"}),
            ]),
            "ValidationException",
        ),
        (
            put(vec![
                json!({"PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": u128::MAX.to_string() + "0"}),
            ]),
            "ValidationException",
        ),
        (
            put(vec![
                json!({"PartitionKey": "k", "Data": "eA==", "ExplicitHashKey": "340282366920938463463374607431768211456"}),
            ]),
            "InvalidArgumentException",
        ),
        (
            put(vec![json!({"PartitionKey": "k", "Data": "!!"})]),
            "SerializationException",
        ),
    ];
    for (body, code) in cases {
        let (status, error) = call(&service, "PutRecords", body).await;
        assert_eq!(
            (status, error["__type"].as_str()),
            (400, Some(code)),
            "{error}"
        );
    }
    assert_eq!(service.stats().entries_put, 0, "nothing written");
    assert_eq!(service.stats().requests["PutRecords"], 9);
    let (status, _) = call(
        &service,
        "PutRecords",
        put(vec![entry(&"é".repeat(256)); 500]),
    )
    .await;
    assert_eq!(status, 200);
}

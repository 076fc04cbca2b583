//! Query and Scan.

use serde_json::{Value, json};

use super::{call, code, key, s, sim};
use crate::dynamodb::DynamoDb;

/// Items `p`/`0`..`p`/`{count-1}` (zero-padded) with `bytes` of data each, and one in `other`.
async fn fill(sim: &DynamoDb, count: usize, bytes: usize) {
    for i in 0..count {
        let mut item = key("p", &format!("{i:03}"));
        item["data"] = json!({"S": "x".repeat(bytes)});
        item["n"] = json!({"N": i.to_string()});
        call(sim, "PutItem", json!({"TableName": "t", "Item": item})).await;
    }
    call(
        sim,
        "PutItem",
        json!({"TableName": "t", "Item": key("other", "000")}),
    )
    .await;
}

fn query(extra: Value) -> Value {
    let mut body = json!({"TableName": "t", "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "p"}}});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn sort_keys(answer: &Value) -> Vec<&str> {
    answer["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["sk"]["S"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn queries_read_one_partition_in_range_key_order_with_pages() {
    let sim = sim();
    fill(&sim, 5, 10).await;
    let (_, answer) = call(&sim, "Query", query(json!({}))).await;
    assert_eq!(sort_keys(&answer), ["000", "001", "002", "003", "004"]);
    assert_eq!(
        (answer["Count"].clone(), answer.get("LastEvaluatedKey")),
        (json!(5), None)
    );
    let (_, first) = call(&sim, "Query", query(json!({"Limit": 2}))).await;
    assert_eq!(sort_keys(&first), ["000", "001"]);
    assert_eq!(first["LastEvaluatedKey"], key("p", "001"));
    let start = json!({"Limit": 3, "ExclusiveStartKey": first["LastEvaluatedKey"]});
    let (_, second) = call(&sim, "Query", query(start)).await;
    assert_eq!(sort_keys(&second), ["002", "003", "004"]);
    assert_eq!(
        second["LastEvaluatedKey"],
        key("p", "004"),
        "a full page has a key, even at the end"
    );
    let (_, backwards) = call(
        &sim,
        "Query",
        query(json!({"ScanIndexForward": false, "Limit": 2})),
    )
    .await;
    assert_eq!(sort_keys(&backwards), ["004", "003"]);
    let (_, filtered) = call(
        &sim,
        "Query",
        query(json!({"FilterExpression": "n >= :two",
        "ExpressionAttributeValues": {":pk": {"S": "p"}, ":two": {"N": "2"}}})),
    )
    .await;
    assert_eq!(
        (filtered["Count"].clone(), filtered["ScannedCount"].clone()),
        (json!(3), json!(5))
    );
    let (_, counted) = call(&sim, "Query", query(json!({"Select": "COUNT"}))).await;
    assert_eq!(
        (counted["Count"].clone(), counted.get("Items")),
        (json!(5), None)
    );
}

#[tokio::test]
async fn range_conditions_and_projections() {
    let sim = sim();
    fill(&sim, 5, 10).await;
    let ranged = |condition: &str, values: Value| {
        json!({"TableName": "t", "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#k": "pk"}, "ExpressionAttributeValues": values,
            "ProjectionExpression": "sk"})
    };
    let values = json!({":pk": {"S": "p"}, ":a": {"S": "001"}, ":b": {"S": "003"}});
    let (_, between) = call(
        &sim,
        "Query",
        ranged("#k = :pk AND sk BETWEEN :a AND :b", values),
    )
    .await;
    assert_eq!(sort_keys(&between), ["001", "002", "003"]);
    assert_eq!(
        between["Items"][0],
        json!({"sk": {"S": "001"}}),
        "projected"
    );
    let values = json!({":pk": {"S": "p"}, ":a": {"S": "003"}});
    let (_, above) = call(&sim, "Query", ranged("sk > :a AND #k = :pk", values)).await;
    assert_eq!(sort_keys(&above), ["004"]);
    let values = json!({":pk": {"S": "p"}, ":a": {"S": "00"}});
    let (_, prefixed) = call(
        &sim,
        "Query",
        ranged("(#k = :pk) AND begins_with(sk, :a)", values),
    )
    .await;
    assert_eq!(sort_keys(&prefixed).len(), 5);
}

#[tokio::test]
async fn key_conditions_are_checked() {
    let sim = sim();
    let bad = |condition: &str| {
        json!({"TableName": "t", "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {":v": {"S": "p"}}})
    };
    for condition in [
        "sk = :v",
        "pk <> :v",
        "pk = :v OR pk = :v",
        "pk = :v AND sk = :v AND sk = :v",
        "v = :v",
        "pk > :v",
    ] {
        let (status, answer) = call(&sim, "Query", bad(condition)).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "ValidationException"),
            "{condition}: {answer}"
        );
    }
    let (_, answer) = call(
        &sim,
        "Query",
        json!({"TableName": "t", "KeyConditionExpression": "pk = :v",
        "ExpressionAttributeValues": {":v": {"N": "1"}}}),
    )
    .await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("does not match schema type")
    );
    let (_, answer) = call(
        &sim,
        "Query",
        query(json!({"ExclusiveStartKey": key("q", "1")})),
    )
    .await;
    assert_eq!(code(&answer), "ValidationException");
    let (_, answer) = call(&sim, "Query", query(json!({"Limit": 0}))).await;
    assert_eq!(code(&answer), "ValidationException");
    let (_, answer) = call(&sim, "Query", query(json!({"IndexName": "gsi"}))).await;
    assert_eq!(code(&answer), "ValidationException");
}

#[tokio::test]
async fn pages_stop_at_one_megabyte_and_the_sdk_paginator_reads_them_all() {
    let sim = sim();
    fill(&sim, 12, 300 * 1024).await;
    let (_, first) = call(&sim, "Query", query(json!({}))).await;
    assert_eq!(
        sort_keys(&first).len(),
        3,
        "three 300 KB items to a 1 MB page"
    );
    assert_eq!(first["LastEvaluatedKey"], key("p", "002"));
    let client = sim.client();
    let items: Vec<_> = client
        .query()
        .table_name("t")
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s("p"))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(items.len(), 12);
    assert_eq!(sim.request_count("Query"), 1 + 4, "12 items in 4 pages");
    let scanned: Vec<_> = client
        .scan()
        .table_name("t")
        .limit(5)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(scanned.len(), 13);
    assert_eq!(scanned[0]["pk"], s("other"), "scans go in key order");
}

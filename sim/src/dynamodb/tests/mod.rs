//! Tests of the service: the wire format (raw JSON through [`Service::call`])
//! and the SDK's parsing of every answer (through the real client).

mod batch;
mod faults;
mod items;
mod query;
mod transact;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

use super::{DynamoDb, KeySchema};
use crate::http::{Reply, Service};

/// A service with table `t` (hash `pk`, range `sk`) and table `h` (hash `id` only).
fn sim() -> DynamoDb {
    let sim = DynamoDb::new();
    let schema = |hash: &str, range: Option<&str>| KeySchema {
        hash_key: hash.into(),
        range_key: range.map(Into::into),
        ttl_attribute: None,
    };
    sim.create_table("t", schema("pk", Some("sk"))).unwrap();
    sim.create_table("h", schema("id", None)).unwrap();
    sim
}

/// One request on the wire: the status and the JSON answer.
async fn call(sim: &DynamoDb, operation: &str, body: Value) -> (u16, Value) {
    match sim
        .call(operation.into(), body.to_string().into_bytes())
        .await
    {
        Reply::Answer { status, body } => (status, serde_json::from_slice(&body).unwrap()),
        Reply::Lost => panic!("{operation}: the answer was lost"),
    }
}

/// The error code of an error answer, without DynamoDB's prefix.
fn code(answer: &Value) -> &str {
    answer["__type"]
        .as_str()
        .and_then(|t| t.split('#').nth(1))
        .unwrap_or("")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// A key or item of table `t` in the wire format.
fn key(pk: &str, sk: &str) -> Value {
    json!({"pk": {"S": pk}, "sk": {"S": sk}})
}

/// A key of table `t` for the SDK.
fn sdk_key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The SDK error's code.
fn sdk_code<E: ProvideErrorMetadata>(error: &E) -> String {
    error.code().unwrap_or("none").to_owned()
}

#[tokio::test]
async fn error_answers_have_the_json_protocol_shape() {
    let sim = sim();
    let (status, answer) = call(
        &sim,
        "GetItem",
        json!({"TableName": "nope", "Key": key("a", "b")}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            "message": "Requested resource not found"})
    );
    let (status, answer) = call(&sim, "GetItem", json!({"Key": key("a", "b")})).await;
    assert_eq!((status, code(&answer)), (400, "ValidationException"));
    let (_, answer) = call(&sim, "Frobnicate", json!({})).await;
    assert_eq!(code(&answer), "UnknownOperationException");
    let reply = sim.call("GetItem".into(), b"{not json".to_vec()).await;
    let Reply::Answer { status: 400, body } = reply else {
        panic!("{reply:?}")
    };
    assert!(String::from_utf8_lossy(&body).contains("SerializationException"));
    assert_eq!(
        sim.request_count("GetItem"),
        3,
        "bad requests are counted too"
    );
}

#[tokio::test]
async fn tables_are_created_described_and_given_a_ttl_through_the_sdk() {
    let sim = DynamoDb::new();
    let client = sim.client();
    let store = shardline::state::DynamoDbStore::new(client.clone(), "state");
    store.create_table().await.unwrap();
    let described = client
        .describe_table()
        .table_name("state")
        .send()
        .await
        .unwrap();
    let table = described.table().unwrap();
    assert_eq!(table.table_status().map(|s| s.as_str()), Some("ACTIVE"));
    assert_eq!(table.key_schema().len(), 2);
    let ttl = client
        .describe_time_to_live()
        .table_name("state")
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );
    let again = client
        .create_table()
        .table_name("state")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_code(&again), "ValidationException", "no key schema");
    let (_, answer) = call(
        &sim,
        "CreateTable",
        json!({"TableName": "state", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}),
    )
    .await;
    assert_eq!(code(&answer), "ResourceInUseException");
    let (_, answer) = call(
        &sim,
        "UpdateTimeToLive",
        json!({"TableName": "state", "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true}}),
    )
    .await;
    assert_eq!(answer["message"], "TimeToLive is already enabled");
    let listed = client.list_tables().send().await.unwrap();
    assert_eq!(listed.table_names(), ["state"]);
}

#[tokio::test]
async fn table_definitions_are_checked() {
    let sim = DynamoDb::new();
    let create = |name: &str, keys: Value, definitions: Value| {
        json!({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": keys, "AttributeDefinitions": definitions})
    };
    let hash = json!([{"AttributeName": "pk", "KeyType": "HASH"}]);
    for body in [
        create("okay", hash.clone(), json!([])),
        create(
            "okay",
            hash.clone(),
            json!([{"AttributeName": "pk", "AttributeType": "N"}]),
        ),
        create(
            "x",
            hash.clone(),
            json!([{"AttributeName": "pk", "AttributeType": "S"}]),
        ),
        create(
            "okay",
            json!([{"AttributeName": "pk", "KeyType": "RANGE"}]),
            json!([{"AttributeName": "pk", "AttributeType": "S"}]),
        ),
    ] {
        let (status, answer) = call(&sim, "CreateTable", body).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "ValidationException"),
            "{answer}"
        );
    }
    let (status, answer) = call(
        &sim,
        "CreateTable",
        create(
            "okay",
            hash,
            json!([{"AttributeName": "pk", "AttributeType": "S"}]),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["TableDescription"]["TableStatus"], "CREATING");
    let (status, _) = call(&sim, "DeleteTable", json!({"TableName": "okay"})).await;
    assert_eq!(status, 200);
    assert!(sim.with_tables(|t| t.names()).is_empty());
}

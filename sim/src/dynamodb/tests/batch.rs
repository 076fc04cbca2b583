//! BatchGetItem and BatchWriteItem.

use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};
use serde_json::{Value, json};

use super::{call, code, key, n, sdk_key, sim};
use crate::dynamodb::Fault;

fn get_body(keys: Vec<Value>) -> Value {
    json!({"RequestItems": {"t": {"Keys": keys, "ConsistentRead": true}}})
}

fn put_request(pk: &str) -> Value {
    json!({"PutRequest": {"Item": key(pk, "1")}})
}

#[tokio::test]
async fn batch_gets_find_what_exists_and_refuse_too_many_or_repeats() {
    let sim = sim();
    for pk in ["a", "b"] {
        call(
            &sim,
            "PutItem",
            json!({"TableName": "t", "Item": key(pk, "1")}),
        )
        .await;
    }
    let keys = ["a", "b", "c"].map(|pk| key(pk, "1")).to_vec();
    let (status, answer) = call(&sim, "BatchGetItem", get_body(keys)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["Responses"]["t"].as_array().unwrap().len(), 2);
    assert_eq!(answer["UnprocessedKeys"], json!({}));
    let too_many = (0..101).map(|i| key(&i.to_string(), "1")).collect();
    let (_, answer) = call(&sim, "BatchGetItem", get_body(too_many)).await;
    assert_eq!(
        answer["message"],
        "Too many items requested for the BatchGetItem call"
    );
    let (_, answer) = call(
        &sim,
        "BatchGetItem",
        get_body(vec![key("a", "1"), key("a", "1")]),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Provided list of item keys contains duplicates"
    );
    let (_, answer) = call(&sim, "BatchGetItem", json!({"RequestItems": {}})).await;
    assert_eq!(code(&answer), "ValidationException");
}

#[tokio::test(start_paused = true)]
async fn batch_gets_leave_keys_unprocessed_when_the_hook_says() {
    let sim = sim();
    call(
        &sim,
        "PutItem",
        json!({"TableName": "t", "Item": key("a", "1")}),
    )
    .await;
    sim.on_request(|_, _| Fault::Unprocessed { share: 0.5 });
    let keys = ["a", "b", "c"].map(|pk| key(pk, "1")).to_vec();
    let (_, answer) = call(&sim, "BatchGetItem", get_body(keys)).await;
    assert_eq!(answer["Responses"]["t"].as_array().unwrap().len(), 1);
    assert_eq!(
        answer["UnprocessedKeys"]["t"],
        json!({"Keys": [key("b", "1"), key("c", "1")], "ConsistentRead": true}),
        "the last ceil(3 / 2) keys, with the table's options"
    );
    sim.on_request(|_, _| Fault::Unprocessed { share: 1.0 });
    let (_, answer) = call(&sim, "BatchGetItem", get_body(vec![key("a", "1")])).await;
    assert_eq!(code(&answer), "ProvisionedThroughputExceededException");

    // Through the SDK and Shardline's reader: unprocessed keys are asked again.
    let mut first = true;
    sim.on_request(move |r, _| {
        let share = if std::mem::take(&mut first) { 0.5 } else { 0.0 };
        assert_eq!(r.operation, "BatchGetItem");
        Fault::Unprocessed { share }
    });
    let client = sim.client();
    let keys = ["a", "b"].map(|pk| sdk_key(pk, "1")).to_vec();
    let found = shardline::aws::dynamodb::read::get_all(&client, "t", keys, "test")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        sim.request_count("BatchGetItem"),
        4,
        "2 above, 1 with a key left, 1 more"
    );
    let direct = client
        .batch_get_item()
        .request_items(
            "t",
            KeysAndAttributes::builder()
                .keys(sdk_key("a", "1"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(direct.responses().unwrap()["t"].len(), 1);
}

#[tokio::test]
async fn batch_writes_put_delete_and_leave_items_unprocessed() {
    let sim = sim();
    let body = |requests: Vec<Value>| json!({"RequestItems": {"t": requests}});
    let (status, answer) = call(
        &sim,
        "BatchWriteItem",
        body(vec![put_request("a"), put_request("b")]),
    )
    .await;
    assert_eq!((status, answer), (200, json!({"UnprocessedItems": {}})));
    let delete = json!({"DeleteRequest": {"Key": key("a", "1")}});
    call(&sim, "BatchWriteItem", body(vec![delete])).await;
    assert_eq!(sim.items("t").len(), 1);
    let too_many = (0..26).map(|i| put_request(&i.to_string())).collect();
    let (_, answer) = call(&sim, "BatchWriteItem", body(too_many)).await;
    assert_eq!(code(&answer), "ValidationException");
    let (_, answer) = call(
        &sim,
        "BatchWriteItem",
        body(vec![put_request("x"), put_request("x")]),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Provided list of item keys contains duplicates"
    );
    let (_, answer) = call(
        &sim,
        "BatchWriteItem",
        body(vec![json!({"PutRequest": {"Item": {"pk": {"S": "a"}}}})]),
    )
    .await;
    assert_eq!(code(&answer), "ValidationException");

    sim.on_request(|_, _| Fault::Unprocessed { share: 0.25 });
    let four = ["p", "q", "r", "s"].map(put_request).to_vec();
    let (_, answer) = call(&sim, "BatchWriteItem", body(four)).await;
    assert_eq!(answer["UnprocessedItems"]["t"], json!([put_request("s")]));
    assert!(sim.item("t", "r", Some("1")).is_some());
    assert!(sim.item("t", "s", Some("1")).is_none());
    sim.clear_fault_hook();

    let client = sim.client();
    let request = WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(sdk_key("w", "1")))
                .item("v", n(1))
                .build()
                .unwrap(),
        )
        .build();
    let out = client
        .batch_write_item()
        .request_items("t", vec![request])
        .send()
        .await
        .unwrap();
    assert!(out.unprocessed_items().unwrap().is_empty());
}

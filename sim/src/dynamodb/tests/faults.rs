//! Faults through the SDK client: what the caller sees of each.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use serde_json::json;
use tokio::time::Instant;

use super::{call, code, key, n, sdk_code, sdk_key, sim};
use crate::dynamodb::{Attr, DynamoDb, Fault, Item, first_requests};
use crate::http::{Reply, Service};

async fn put(sim: &DynamoDb, pk: &str) -> Result<(), String> {
    sim.client()
        .put_item()
        .table_name("t")
        .set_item(Some(sdk_key(pk, "1")))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_code(&e))
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_applies_nothing_and_the_sdk_retries_it() {
    let sim = sim();
    sim.set_fault_hook(first_requests("PutItem", 3, Fault::throttling()));
    assert_eq!(put(&sim, "a").await, Err("ThrottlingException".into()));
    assert_eq!(
        sim.request_count("PutItem"),
        3,
        "the SDK's standard 3 attempts"
    );
    assert!(sim.items("t").is_empty());
    sim.take_request_counts();
    sim.set_fault_hook(first_requests("PutItem", 2, Fault::internal_error()));
    assert_eq!(put(&sim, "a").await, Ok(()), "the third attempt lands");
    assert_eq!(sim.take_request_counts()["PutItem"], 3);
    let client = sim.client_with(|c| c.retry_config(RetryConfig::disabled()));
    sim.set_fault_hook(first_requests("PutItem", 1, Fault::throughput_exceeded()));
    let once = client
        .put_item()
        .table_name("t")
        .set_item(Some(sdk_key("b", "1")))
        .send()
        .await;
    assert_eq!(
        sdk_code(&once.unwrap_err()),
        "ProvisionedThroughputExceededException"
    );
    assert_eq!(sim.request_count("PutItem"), 1, "no retries when disabled");
}

#[tokio::test(start_paused = true)]
async fn a_lost_answer_lands_and_the_retry_sees_it() {
    let sim = sim();
    sim.set_fault_hook(first_requests("PutItem", 1, Fault::LoseAnswer));
    assert_eq!(
        put(&sim, "a").await,
        Err("ConditionalCheckFailedException".into())
    );
    assert!(
        sim.item("t", "a", Some("1")).is_some(),
        "the first attempt landed"
    );
    let reply = sim.call("PutItem".into(), b"{}".to_vec()).await;
    assert!(
        matches!(reply, Reply::Answer { status: 400, .. }),
        "only the first was lost"
    );
    sim.take_request_counts();
    sim.set_fault_hook(first_requests(
        "PutItem",
        1,
        Fault::FailAfter {
            status: 500,
            code: "InternalServerError".into(),
        },
    ));
    let (status, answer) = call(
        &sim,
        "PutItem",
        json!({"TableName": "t", "Item": key("b", "1")}),
    )
    .await;
    assert_eq!((status, code(&answer)), (500, "InternalServerError"));
    assert!(
        sim.item("t", "b", Some("1")).is_some(),
        "applied before the 500"
    );
}

#[tokio::test(start_paused = true)]
async fn delays_pass_on_tokios_clock_before_the_request_applies() {
    let sim = sim();
    let writer = sim.clone();
    sim.set_fault_hook(first_requests(
        "PutItem",
        1,
        Fault::DelayThen(
            Duration::from_secs(2),
            Box::new(Fault::Delay(Duration::from_secs(1))),
        ),
    ));
    let started = Instant::now();
    let slow = tokio::spawn(async move { put(&writer, "a").await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sim.items("t").is_empty(), "still in flight");
    assert_eq!(slow.await.unwrap(), Ok(()));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_concurrent_writer_gets_there_first() {
    let sim = sim();
    sim.on_request(|request, tables| {
        if request.operation == "UpdateItem" && request.tables() == ["t"] {
            let mut rival = Item::from([
                ("pk".to_owned(), Attr::s("a")),
                ("sk".to_owned(), Attr::s("1")),
            ]);
            rival.insert("version".into(), Attr::n(7));
            tables.put("t", rival).unwrap();
        }
        Fault::None
    });
    let result = sim
        .client()
        .update_item()
        .table_name("t")
        .set_key(Some(sdk_key("a", "1")))
        .update_expression("SET version = :one")
        .condition_expression("attribute_not_exists(version)")
        .expression_attribute_values(":one", n(1))
        .send()
        .await;
    assert_eq!(
        sdk_code(&result.unwrap_err()),
        "ConditionalCheckFailedException"
    );
    assert_eq!(
        sim.item("t", "a", Some("1")).unwrap()["version"],
        Attr::n(7)
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_transactions_name_the_item_and_apply_nothing() {
    let sim = sim();
    sim.set_fault_hook(first_requests("TransactWriteItems", 1, Fault::conflict(5)));
    let items = json!({"TransactItems": [
        {"Put": {"TableName": "t", "Item": key("a", "1")}},
        {"Put": {"TableName": "t", "Item": key("b", "1")}}]});
    let (_, answer) = call(&sim, "TransactWriteItems", items.clone()).await;
    assert_eq!(code(&answer), "TransactionCanceledException");
    assert_eq!(
        answer["CancellationReasons"],
        json!([{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}])
    );
    assert!(sim.items("t").is_empty());
    let (status, _) = call(&sim, "TransactWriteItems", items).await;
    assert_eq!(status, 200);
    assert_eq!(sim.items("t").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_same_requests_and_faults_give_the_same_bytes() {
    async fn run() -> Vec<Reply> {
        let sim = sim();
        let mut replies = Vec::new();
        sim.on_request(|r, _| match r.sequence % 3 {
            0 => Fault::Unprocessed { share: 0.5 },
            _ => Fault::None,
        });
        for i in 0..6 {
            let mut item = key(&format!("k{i}"), "1");
            item["m"] = json!({"M": {"z": {"N": "1.0"}, "a": {"SS": ["y", "x"]}}});
            let body = json!({"RequestItems": {"t": [{"PutRequest": {"Item": item}}, {"DeleteRequest": {"Key": key("zz", "1")}}]}});
            replies.push(
                sim.call("BatchWriteItem".into(), body.to_string().into_bytes())
                    .await,
            );
            let query = json!({"TableName": "t", "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": format!("k{i}")}}});
            replies.push(
                sim.call("Query".into(), query.to_string().into_bytes())
                    .await,
            );
        }
        replies
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    let Reply::Answer { body, .. } = &a[1] else {
        panic!()
    };
    assert!(String::from_utf8_lossy(body).contains(r#"{"a":{"SS":["x","y"]},"z":{"N":"1"}}"#));
}

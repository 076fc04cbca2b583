//! TransactWriteItems.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde_json::{Value, json};

use super::{call, code, key, n, s, sdk_key, sim};
use crate::dynamodb::{Attr, MAX_ITEM_BYTES};

fn put(pk: &str, sk: &str, condition: Option<&str>) -> TransactWriteItem {
    let put = Put::builder()
        .table_name("t")
        .set_item(Some(sdk_key(pk, sk)))
        .item("v", n(1))
        .set_condition_expression(condition.map(str::to_owned))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .unwrap();
    TransactWriteItem::builder().put(put).build()
}

fn raw_put(pk: &str) -> Value {
    json!({"Put": {"TableName": "t", "Item": key(pk, "1")}})
}

#[tokio::test]
async fn all_or_nothing_with_a_reason_per_item() {
    let sim = sim();
    let client = sim.client();
    client
        .transact_write_items()
        .transact_items(put("a", "1", None))
        .transact_items(put("b", "1", None))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.items("t").len(), 2);
    let check = ConditionCheck::builder()
        .table_name("t")
        .set_key(Some(sdk_key("a", "1")))
        .condition_expression("v = :one")
        .expression_attribute_values(":one", n(1))
        .build()
        .unwrap();
    let update = Update::builder()
        .table_name("t")
        .set_key(Some(sdk_key("c", "1")))
        .update_expression("SET v = :two")
        .expression_attribute_values(":two", n(2))
        .build()
        .unwrap();
    let error = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().condition_check(check).build())
        .transact_items(TransactWriteItem::builder().update(update).build())
        .transact_items(put("b", "1", Some("attribute_not_exists(pk)")))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        panic!("{error:?}")
    };
    let reasons = cancelled.cancellation_reasons();
    let codes: Vec<_> = reasons.iter().map(|r| r.code().unwrap_or("")).collect();
    assert_eq!(codes, ["None", "None", "ConditionalCheckFailed"]);
    assert_eq!(reasons[2].item().unwrap()["pk"], s("b"));
    assert!(reasons[0].item().is_none());
    assert!(
        cancelled
            .message()
            .unwrap()
            .contains("[None, None, ConditionalCheckFailed]")
    );
    assert!(
        sim.item("t", "c", Some("1")).is_none(),
        "nothing was applied"
    );
}

#[tokio::test]
async fn transactions_are_validated_as_dynamodb_does() {
    let sim = sim();
    let transact = |items: Vec<Value>| json!({"TransactItems": items});
    let (_, answer) = call(
        &sim,
        "TransactWriteItems",
        transact(vec![raw_put("a"), raw_put("a")]),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Transaction request cannot include multiple operations on one item"
    );
    let many = (0..101).map(|i| raw_put(&i.to_string())).collect();
    let (_, answer) = call(&sim, "TransactWriteItems", transact(many)).await;
    assert_eq!(code(&answer), "ValidationException");
    let (_, answer) = call(&sim, "TransactWriteItems", transact(vec![])).await;
    assert_eq!(code(&answer), "ValidationException");
    let big = |pk: &str| {
        let mut item = key(pk, "1");
        item["data"] = json!({"S": "x".repeat(MAX_ITEM_BYTES - 100)});
        json!({"Put": {"TableName": "t", "Item": item}})
    };
    let (_, answer) = call(
        &sim,
        "TransactWriteItems",
        transact((0..11).map(|i| big(&i.to_string())).collect()),
    )
    .await;
    assert_eq!(
        answer["message"],
        "Transaction request cannot be larger than 4 MB"
    );
    let (status, _) = call(
        &sim,
        "TransactWriteItems",
        transact((0..10).map(|i| big(&i.to_string())).collect()),
    )
    .await;
    assert_eq!(status, 200, "10 items of 400 KB fit");
    let two_actions = json!({"Put": {"TableName": "t", "Item": key("z", "1")},
        "Delete": {"TableName": "t", "Key": key("z", "1")}});
    let (_, answer) = call(&sim, "TransactWriteItems", transact(vec![two_actions])).await;
    assert_eq!(code(&answer), "ValidationException");
    let no_condition = json!({"ConditionCheck": {"TableName": "t", "Key": key("z", "1")}});
    let (_, answer) = call(&sim, "TransactWriteItems", transact(vec![no_condition])).await;
    assert_eq!(code(&answer), "ValidationException");
    let missing_table = json!({"Put": {"TableName": "nope", "Item": key("z", "1")}});
    let (_, answer) = call(&sim, "TransactWriteItems", transact(vec![missing_table])).await;
    assert_eq!(code(&answer), "ResourceNotFoundException");
}

#[tokio::test]
async fn an_invalid_update_cancels_with_a_validation_error() {
    let sim = sim();
    let update = json!({"Update": {"TableName": "t", "Key": key("a", "1"),
        "UpdateExpression": "SET v = v + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}});
    let (_, answer) = call(
        &sim,
        "TransactWriteItems",
        json!({"TransactItems": [raw_put("b"), update]}),
    )
    .await;
    assert_eq!(code(&answer), "TransactionCanceledException");
    assert_eq!(answer["CancellationReasons"][0], json!({"Code": "None"}));
    assert_eq!(answer["CancellationReasons"][1]["Code"], "ValidationError");
    assert!(
        answer["Message"]
            .as_str()
            .unwrap()
            .contains("[None, ValidationError]")
    );
    assert!(sim.items("t").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_client_request_token_makes_a_transaction_idempotent_for_ten_minutes() {
    let sim = sim();
    let conditional = json!({"Put": {"TableName": "t", "Item": key("a", "1"),
        "ConditionExpression": "attribute_not_exists(pk)"}});
    let body = json!({"TransactItems": [conditional], "ClientRequestToken": "tok"});
    let (status, _) = call(&sim, "TransactWriteItems", body.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = call(&sim, "TransactWriteItems", body.clone()).await;
    assert_eq!(status, 200, "the same token: success, not applied again");
    let other = json!({"TransactItems": [raw_put("b")], "ClientRequestToken": "tok"});
    let (_, answer) = call(&sim, "TransactWriteItems", other).await;
    assert_eq!(code(&answer), "IdempotentParameterMismatchException");
    tokio::time::sleep(std::time::Duration::from_secs(601)).await;
    let (_, answer) = call(&sim, "TransactWriteItems", body).await;
    assert_eq!(
        code(&answer),
        "TransactionCanceledException",
        "the token lapsed"
    );
    assert_eq!(sim.item("t", "a", Some("1")).unwrap()["pk"], Attr::s("a"));
}

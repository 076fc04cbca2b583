//! GetItem, PutItem, UpdateItem, DeleteItem.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde_json::json;

use super::{call, code, key, n, s, sdk_code, sdk_key, sim};
use crate::dynamodb::{Attr, MAX_ITEM_BYTES};

#[tokio::test]
async fn every_type_round_trips_through_the_sdk() {
    let sim = sim();
    let client = sim.client();
    let map = std::collections::HashMap::from([("inner".to_owned(), n(1))]);
    client
        .put_item()
        .table_name("t")
        .set_item(Some(sdk_key("a", "1")))
        .item("s", s("text"))
        .item("n", AttributeValue::N("1.50".into()))
        .item("b", AttributeValue::B(Blob::new(vec![0, 1, 255])))
        .item("t", AttributeValue::Bool(true))
        .item("z", AttributeValue::Null(true))
        .item("m", AttributeValue::M(map.clone()))
        .item("l", AttributeValue::L(vec![s("x"), n(2)]))
        .item("ss", AttributeValue::Ss(vec!["b".into(), "a".into()]))
        .item("ns", AttributeValue::Ns(vec!["10".into(), "9".into()]))
        .item("bs", AttributeValue::Bs(vec![Blob::new(vec![1])]))
        .send()
        .await
        .unwrap();
    let got = client
        .get_item()
        .table_name("t")
        .set_key(Some(sdk_key("a", "1")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = got.item().unwrap();
    assert_eq!(
        item["n"],
        AttributeValue::N("1.5".into()),
        "numbers come back normalized"
    );
    assert_eq!(item["b"], AttributeValue::B(Blob::new(vec![0, 1, 255])));
    assert_eq!(item["m"], AttributeValue::M(map));
    assert_eq!(item["ss"], AttributeValue::Ss(vec!["a".into(), "b".into()]));
    assert_eq!(
        item["ns"],
        AttributeValue::Ns(vec!["9".into(), "10".into()])
    );
    assert_eq!(item.len(), 12);
    let projected = client
        .get_item()
        .table_name("t")
        .set_key(Some(sdk_key("a", "1")))
        .projection_expression("s, #n")
        .expression_attribute_names("#n", "n")
        .send()
        .await
        .unwrap();
    assert_eq!(projected.item().unwrap().len(), 2);
    let missing = client
        .get_item()
        .table_name("t")
        .set_key(Some(sdk_key("a", "2")))
        .send()
        .await
        .unwrap();
    assert!(missing.item().is_none());
}

#[tokio::test]
async fn a_failed_condition_returns_the_item_when_asked() {
    let sim = sim();
    let client = sim.client();
    let put = || {
        client
            .put_item()
            .table_name("t")
            .set_item(Some(sdk_key("a", "1")))
            .item("owner", s("x"))
            .condition_expression("attribute_not_exists(pk)")
    };
    put().send().await.unwrap();
    let plain = put().send().await.unwrap_err();
    let plain = plain.into_service_error();
    assert!(plain.is_conditional_check_failed_exception());
    let with_item = put()
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
        failed,
    ) = with_item
    else {
        panic!("{with_item:?}")
    };
    assert_eq!(failed.item().unwrap()["owner"], s("x"));
    assert_eq!(failed.message(), Some("The conditional request failed"));
}

#[tokio::test]
async fn updates_create_items_and_return_what_is_asked() {
    let sim = sim();
    let client = sim.client();
    let update = |expression: &str, returns: ReturnValue| {
        client
            .update_item()
            .table_name("t")
            .set_key(Some(sdk_key("a", "1")))
            .update_expression(expression)
            .expression_attribute_values(":one", n(1))
            .return_values(returns)
    };
    let created = update("SET c = :one", ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    let attributes = created.attributes().unwrap();
    assert_eq!(attributes.len(), 3, "the key and c: {attributes:?}");
    let added = update("ADD c :one, d :one", ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap();
    let attributes = added.attributes().unwrap();
    assert_eq!((attributes["c"].clone(), attributes.len()), (n(2), 2));
    let old = update("SET c = c + :one", ReturnValue::UpdatedOld)
        .send()
        .await
        .unwrap();
    assert_eq!(old.attributes().unwrap()["c"], n(2));
    let none = update("SET c = c + :one", ReturnValue::None)
        .send()
        .await
        .unwrap();
    assert!(none.attributes().is_none());
    assert_eq!(sim.item("t", "a", Some("1")).unwrap()["c"], Attr::n(4));
    let keyless = client
        .update_item()
        .table_name("t")
        .set_key(Some(sdk_key("b", "1")))
        .send()
        .await;
    assert!(
        keyless.is_ok(),
        "no expression: the item is created with its key"
    );
    assert_eq!(sim.item("t", "b", Some("1")).unwrap().len(), 2);
    let on_key = update("SET sk = :one", ReturnValue::None)
        .send()
        .await
        .unwrap_err();
    assert!(format!("{:?}", on_key.into_service_error()).contains("part of the key"));
}

#[tokio::test]
async fn deletes_return_the_old_item() {
    let sim = sim();
    let client = sim.client();
    let (status, _) = call(
        &sim,
        "PutItem",
        json!({"TableName": "t", "Item": key("a", "1")}),
    )
    .await;
    assert_eq!(status, 200);
    let delete = || {
        client
            .delete_item()
            .table_name("t")
            .set_key(Some(sdk_key("a", "1")))
            .return_values(ReturnValue::AllOld)
    };
    let first = delete().send().await.unwrap();
    assert_eq!(first.attributes().unwrap()["pk"], s("a"));
    let second = delete().send().await.unwrap();
    assert!(second.attributes().is_none());
    let (_, answer) = call(
        &sim,
        "DeleteItem",
        json!({"TableName": "t", "Key": key("a", "1"), "ReturnValues": "ALL_NEW"}),
    )
    .await;
    assert_eq!(code(&answer), "ValidationException");
    let conditional = client
        .delete_item()
        .table_name("t")
        .set_key(Some(sdk_key("a", "1")))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .unwrap_err();
    assert_eq!(sdk_code(&conditional), "ConditionalCheckFailedException");
}

#[tokio::test]
async fn keys_and_sizes_are_validated() {
    let sim = sim();
    let cases = [
        (
            "PutItem",
            json!({"TableName": "t", "Item": {"pk": {"S": "a"}}}),
            "Missing the key sk",
        ),
        (
            "PutItem",
            json!({"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}}}),
            "Type mismatch for key sk",
        ),
        (
            "PutItem",
            json!({"TableName": "t", "Item": key("", "1")}),
            "cannot contain an empty string",
        ),
        (
            "GetItem",
            json!({"TableName": "t", "Key": {"pk": {"S": "a"}}}),
            "does not match the schema",
        ),
        (
            "GetItem",
            json!({"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}, "x": {"S": "y"}}}),
            "does not match the schema",
        ),
        (
            "UpdateItem",
            json!({"TableName": "t", "Key": key("a", "1"), "Expected": {}}),
            "legacy parameter Expected",
        ),
        (
            "PutItem",
            json!({"TableName": "t", "Item": key("a", "1"), "ExpressionAttributeValues": {}}),
            "must not be empty",
        ),
        (
            "PutItem",
            json!({"TableName": "t", "Item": key("a", "1"), "ReturnValues": "ALL_NEW"}),
            "Return values set to invalid value",
        ),
    ];
    for (operation, body, message) in cases {
        let (status, answer) = call(&sim, operation, body).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "ValidationException"),
            "{answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{answer}"
        );
    }
    let big = "x".repeat(MAX_ITEM_BYTES);
    let mut item = key("a", "1");
    item["data"] = json!({"S": big});
    let (_, answer) = call(&sim, "PutItem", json!({"TableName": "t", "Item": item})).await;
    assert_eq!(
        answer["message"],
        "Item size has exceeded the maximum allowed size"
    );
    let half = json!({"S": "x".repeat(MAX_ITEM_BYTES / 2)});
    let update = json!({"TableName": "t", "Key": key("a", "1"),
        "UpdateExpression": "SET a = :v, b = :v", "ExpressionAttributeValues": {":v": half}});
    let (_, answer) = call(&sim, "UpdateItem", update).await;
    assert_eq!(
        answer["message"],
        "Item size to update has exceeded the maximum allowed size"
    );
    assert!(sim.items("t").is_empty(), "nothing was written");
}

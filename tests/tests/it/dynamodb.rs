//! The DynamoDB emulator through the harness: conditions, transactions, request counts.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, KeysAndAttributes, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, WriteRequest,
};
use shardline_tests::dynamodb::{self, n, s};
use shardline_tests::{Emulators, unique_name};

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(op, count)| ((*op).to_owned(), *count))
        .collect()
}

async fn new_table(client: &Client, prefix: &str) -> String {
    let table = unique_name(prefix);
    dynamodb::create_table(client, &table, "pk", Some("sk")).await;
    table
}

fn conditional_put(table: &str, pk: &str, sk: &str) -> Put {
    Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s(sk))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .expect("Put has its required fields")
}

#[tokio::test]
async fn a_conditional_put_fails_the_second_time() {
    let emulators = Emulators::from_env();
    let table = new_table(&emulators.dynamodb(), "conditional").await;
    let (client, counter) = emulators.dynamodb_counted();

    let put = || {
        client
            .put_item()
            .table_name(&table)
            .item("pk", s("shard-1"))
            .item("sk", s("checkpoint"))
            .item("seq", s("0042"))
            .condition_expression("attribute_not_exists(pk)")
    };
    put()
        .send()
        .await
        .expect("the first conditional put succeeds");
    let error = put()
        .send()
        .await
        .expect_err("the second conditional put fails");
    let error = error.into_service_error();
    assert!(error.is_conditional_check_failed_exception(), "{error:?}");

    // The failed put changed nothing.
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", s("shard-1"))
        .key("sk", s("checkpoint"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists");
    assert_eq!(item.get("seq"), Some(&s("0042")));

    assert_eq!(counter.take(), counts(&[("PutItem", 2), ("GetItem", 1)]));
    dynamodb::delete_table(&emulators.dynamodb(), &table).await;
}

#[tokio::test]
async fn a_failed_transaction_returns_cancellation_reasons_and_writes_nothing() {
    let emulators = Emulators::from_env();
    let table = new_table(&emulators.dynamodb(), "transaction").await;
    let (client, counter) = emulators.dynamodb_counted();
    client
        .put_item()
        .table_name(&table)
        .item("pk", s("shard-1"))
        .item("sk", s("checkpoint"))
        .item("seq", s("0042"))
        .send()
        .await
        .unwrap();

    // Item 0 would succeed; item 1 checks a checkpoint value that is not there.
    let stale_check = ConditionCheck::builder()
        .table_name(&table)
        .key("pk", s("shard-1"))
        .key("sk", s("checkpoint"))
        .condition_expression("seq = :expected")
        .expression_attribute_values(":expected", s("0041"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .expect("ConditionCheck has its required fields");
    let error = client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(conditional_put(&table, "dedup-1", "key"))
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(stale_check)
                .build(),
        )
        .send()
        .await
        .expect_err("the transaction is cancelled")
        .into_service_error();
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        panic!("expected TransactionCanceledException, got {error:?}");
    };
    let codes: Vec<Option<&str>> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|reason| reason.code())
        .collect();
    assert_eq!(
        codes,
        [Some("None"), Some("ConditionalCheckFailed")],
        "{cancelled:?}"
    );
    // ReturnValuesOnConditionCheckFailure=ALL_OLD: the reason carries the current item.
    let current = cancelled.cancellation_reasons()[1]
        .item()
        .expect("ALL_OLD item");
    assert_eq!(current.get("seq"), Some(&s("0042")));
    assert_eq!(cancelled.cancellation_reasons()[0].item(), None);

    // One failure cancels all: the put of item 0 did not happen.
    let missing = client
        .get_item()
        .table_name(&table)
        .key("pk", s("dedup-1"))
        .key("sk", s("key"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.item, None);

    // The same transaction with the right checkpoint value commits both.
    let good_check = ConditionCheck::builder()
        .table_name(&table)
        .key("pk", s("shard-1"))
        .key("sk", s("checkpoint"))
        .condition_expression("seq = :expected")
        .expression_attribute_values(":expected", s("0042"))
        .build()
        .unwrap();
    client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(conditional_put(&table, "dedup-1", "key"))
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(good_check)
                .build(),
        )
        .send()
        .await
        .expect("the transaction commits");

    assert_eq!(
        counter.take(),
        counts(&[("PutItem", 1), ("TransactWriteItems", 2), ("GetItem", 1)])
    );
    dynamodb::delete_table(&emulators.dynamodb(), &table).await;
}

#[tokio::test]
async fn batch_calls_are_counted_once_per_request() {
    let emulators = Emulators::from_env();
    let table = new_table(&emulators.dynamodb(), "batch").await;
    let (client, counter) = emulators.dynamodb_counted();

    let writes: Vec<WriteRequest> = (0..25)
        .map(|i| {
            let put = PutRequest::builder()
                .item("pk", s(format!("key-{i:02}")))
                .item("sk", s("v"))
                .item("n", n(i))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    let written = client
        .batch_write_item()
        .request_items(&table, writes)
        .send()
        .await
        .unwrap();
    assert!(
        written
            .unprocessed_items()
            .is_none_or(|items| items.is_empty())
    );

    let mut keys = KeysAndAttributes::builder().consistent_read(true);
    for i in 0..25 {
        keys = keys.keys(
            [
                ("pk".to_owned(), s(format!("key-{i:02}"))),
                ("sk".to_owned(), s("v")),
            ]
            .into(),
        );
    }
    let read = client
        .batch_get_item()
        .request_items(&table, keys.build().unwrap())
        .send()
        .await
        .unwrap();
    let mut numbers: Vec<String> = read.responses().unwrap()[&table]
        .iter()
        .map(|item| item["n"].as_n().unwrap().clone())
        .collect();
    numbers.sort_by_key(|number| number.parse::<u32>().unwrap());
    assert_eq!(numbers, (0..25).map(|i| i.to_string()).collect::<Vec<_>>());

    assert_eq!(
        counter.snapshot(),
        counts(&[("BatchWriteItem", 1), ("BatchGetItem", 1)])
    );
    assert_eq!(counter.total(), 2);
    dynamodb::delete_table(&emulators.dynamodb(), &table).await;
}

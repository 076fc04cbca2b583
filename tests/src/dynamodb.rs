//! DynamoDB helpers for tests: tables with string keys.
//!
//! The helpers panic with the operation, the table and the SDK error's full context.
//!
//! moto (the emulator) quirks to design tests around:
//! - TransactWriteItems deep-copies the whole table once per transaction item (for its
//!   rollback), so its cost grows with items x table size: a 100-item transaction takes
//!   ~0.2 s on an empty table, ~4 s at 1,000 items, ~37 s at 6,000. Keep tables small:
//!   one fresh table per test, a few hundred items at most where transactions run.
//! - It does not validate the BatchWriteItem 25-item limit or the 38-digit Number
//!   limit; it does validate TransactWriteItems (100 items, one operation per item) and
//!   BatchGetItem (100 keys). It does not expire TTL items.

use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};

use crate::WAIT_TIMEOUT;

fn fail(operation: &str, table: &str, error: impl std::error::Error) -> ! {
    panic!(
        "DynamoDB {operation} on table {table} failed: {}",
        DisplayErrorContext(error)
    )
}

fn string_key(name: &str, key_type: KeyType) -> (AttributeDefinition, KeySchemaElement) {
    let definition = AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("AttributeDefinition has its required fields");
    let element = KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("KeySchemaElement has its required fields");
    (definition, element)
}

/// Creates a pay-per-request table with a string hash key and an optional string range
/// key, and waits until it is ACTIVE.
pub async fn create_table(client: &Client, table: &str, hash_key: &str, range_key: Option<&str>) {
    let mut keys = vec![string_key(hash_key, KeyType::Hash)];
    keys.extend(range_key.map(|name| string_key(name, KeyType::Range)));
    let (definitions, schema): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(schema))
        .send()
        .await
        .unwrap_or_else(|e| fail("CreateTable", table, e));
    wait_for_table_active(client, table).await;
}

/// Waits until the table is ACTIVE (moto creates tables ACTIVE at once).
pub async fn wait_for_table_active(client: &Client, table: &str) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap_or_else(|e| fail("DescribeTable", table, e));
        let status = output.table().and_then(|t| t.table_status()).cloned();
        if status == Some(TableStatus::Active) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT_TIMEOUT:?} waiting for table {table} to be ACTIVE; last status {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Deletes the table.
pub async fn delete_table(client: &Client, table: &str) {
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| fail("DeleteTable", table, e));
}

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value (DynamoDB numbers travel as decimal strings).
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

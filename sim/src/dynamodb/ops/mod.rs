//! The operations: each takes the request's JSON and the database, and gives
//! the answer's JSON or an error.

mod admin;
mod batch;
mod item;
mod query;
mod transact;
mod write;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::error::ApiError;
use super::table::Tables;

/// What the simulator holds: the tables, and the client request tokens of
/// recent transactions (for their idempotency).
#[derive(Debug, Default)]
pub(super) struct Db {
    /// Every table.
    pub tables: Tables,
    /// Client request token → (the transaction's items, when it was applied).
    pub tokens: BTreeMap<String, (Value, Instant)>,
}

/// A fault that changes how an operation is applied.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Twist {
    /// Applied as asked.
    None,
    /// A transaction cancelled with `code` on item `item`.
    Cancel {
        /// The item the reason is given for.
        item: usize,
        /// The cancellation code.
        code: String,
    },
    /// A batch with this share of its keys or items unprocessed.
    Unprocessed(f64),
}

/// Applies `operation` with `body` to `db`.
///
/// # Errors
/// The error answer for the request.
pub(super) fn apply(
    db: &mut Db,
    operation: &str,
    body: &Value,
    twist: &Twist,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::serialization(
            "the request body must be a JSON object",
        ));
    }
    match operation {
        "CreateTable" => admin::create_table(db, body),
        "DescribeTable" => admin::describe_table(db, body),
        "DeleteTable" => admin::delete_table(db, body),
        "ListTables" => Ok(admin::list_tables(db)),
        "UpdateTimeToLive" => admin::update_time_to_live(db, body),
        "DescribeTimeToLive" => admin::describe_time_to_live(db, body),
        "GetItem" => item::get_item(db, body),
        "PutItem" => item::put_item(db, body),
        "UpdateItem" => item::update_item(db, body),
        "DeleteItem" => item::delete_item(db, body),
        "TransactWriteItems" => transact::transact_write_items(db, body, twist),
        "BatchGetItem" => batch::batch_get_item(db, body, twist),
        "BatchWriteItem" => batch::batch_write_item(db, body, twist),
        "Query" => query::query(db, body),
        "Scan" => query::scan(db, body),
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("the simulator does not implement {other}"),
        )),
    }
}

/// DynamoDB's message for a missing required member.
fn missing(field: &str) -> ApiError {
    let mut camel = field.to_owned();
    if let Some(first) = camel.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{camel}' failed to satisfy constraint: Member must not be null"
    ))
}

fn wrong_type(field: &str, kind: &str) -> ApiError {
    ApiError::serialization(format!("{field} must be {kind}"))
}

/// An optional string member.
fn string<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

/// A required string member.
fn required<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    string(body, field)?.ok_or_else(|| missing(field))
}

/// An optional boolean member.
fn boolean(body: &Value, field: &str) -> Result<Option<bool>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(wrong_type(field, "a boolean")),
    }
}

/// An optional object member.
fn object<'a>(body: &'a Value, field: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(wrong_type(field, "an object")),
    }
}

/// An optional array member.
fn array<'a>(body: &'a Value, field: &str) -> Result<Option<&'a [Value]>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(_) => Err(wrong_type(field, "an array")),
    }
}

/// Refuses the parameters of the legacy API (`Expected`, `AttributeUpdates`...).
fn refuse_legacy(body: &Value) -> Result<(), ApiError> {
    const LEGACY: [&str; 7] = [
        "Expected",
        "AttributeUpdates",
        "ConditionalOperator",
        "AttributesToGet",
        "KeyConditions",
        "QueryFilter",
        "ScanFilter",
    ];
    match LEGACY.iter().find(|field| body.get(**field).is_some()) {
        Some(field) => Err(ApiError::validation(format!(
            "the simulator does not support the legacy parameter {field}; use expressions"
        ))),
        None => Ok(()),
    }
}

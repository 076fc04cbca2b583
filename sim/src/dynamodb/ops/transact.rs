//! `TransactWriteItems`: up to 100 writes (`Put`, `Update`, `Delete`,
//! `ConditionCheck`) on distinct items, at most 4 MB, all or nothing, with
//! one cancellation reason per item; idempotent under a `ClientRequestToken`
//! for 10 minutes, as DynamoDB is.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::write::{Kind, Refusal, Write};
use super::{Db, Twist, array, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::value::map_to_json;

/// Items a transaction may hold.
pub(super) const MAX_ITEMS: usize = 100;
/// A transaction's largest size.
pub(super) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long a client request token makes a transaction idempotent.
const TOKEN_WINDOW: Duration = Duration::from_secs(600);

/// `TransactWriteItems`.
pub(super) fn transact_write_items(
    db: &mut Db,
    body: &Value,
    twist: &Twist,
) -> Result<Value, ApiError> {
    let items = array(body, "TransactItems")?.ok_or_else(|| super::missing("TransactItems"))?;
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_ITEMS} and greater than or equal to 1"
        )));
    }
    let now = Instant::now();
    db.tokens
        .retain(|_, (_, at)| now.duration_since(*at) < TOKEN_WINDOW);
    let token = string(body, "ClientRequestToken")?;
    if let Some((earlier, _)) = token.and_then(|t| db.tokens.get(t)) {
        if earlier == &body["TransactItems"] {
            return Ok(json!({}));
        }
        return Err(ApiError::new(
            400,
            "IdempotentParameterMismatchException",
            "The request uses the same client token as a previous, but non-identical request.",
        ));
    }
    let writes = items
        .iter()
        .map(|item| parse_item(db, item))
        .collect::<Result<Vec<_>, _>>()?;
    check_distinct_and_size(&writes)?;
    if let Twist::Cancel { item, code } = twist {
        return Err(injected_cancel(writes.len(), *item, code));
    }
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut reasons = Vec::with_capacity(writes.len());
    for write in &writes {
        match write.evaluate(&db.tables) {
            Ok(outcome) => {
                outcomes.push(outcome);
                reasons.push(json!({"Code": "None"}));
            }
            Err(refusal) => reasons.push(reason(refusal)),
        }
    }
    if outcomes.len() < writes.len() {
        return Err(ApiError::cancelled(reasons));
    }
    for (write, outcome) in writes.iter().zip(&outcomes) {
        write.commit(&mut db.tables, outcome);
    }
    if let Some(token) = token {
        db.tokens
            .insert(token.to_owned(), (body["TransactItems"].clone(), now));
    }
    Ok(json!({}))
}

/// One transaction item: exactly one of its four actions.
fn parse_item(db: &Db, item: &Value) -> Result<Write, ApiError> {
    let actions: Vec<(&str, &Value)> = ["ConditionCheck", "Put", "Delete", "Update"]
        .into_iter()
        .filter_map(|name| item.get(name).filter(|v| !v.is_null()).map(|v| (name, v)))
        .collect();
    let [(name, action)] = actions.as_slice() else {
        return Err(ApiError::validation(
            "TransactItems can only contain one of Check, Put, Update or Delete",
        ));
    };
    let kind = match *name {
        "ConditionCheck" => Kind::Check,
        "Put" => Kind::Put,
        "Delete" => Kind::Delete,
        _ => Kind::Update,
    };
    Write::parse(&db.tables, action, kind)
}

/// One write per item, and at most 4 MB in all.
fn check_distinct_and_size(writes: &[Write]) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for write in writes {
        if !seen.insert((write.table.as_str(), &write.key)) {
            return Err(ApiError::validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
    }
    if writes.iter().map(|w| w.size).sum::<usize>() > MAX_BYTES {
        return Err(ApiError::validation(
            "Transaction request cannot be larger than 4 MB",
        ));
    }
    Ok(())
}

/// The cancellation reason of a refused write.
fn reason(refusal: Refusal) -> Value {
    match refusal {
        Refusal::Condition(old) => {
            let mut reason = json!({
                "Code": "ConditionalCheckFailed",
                "Message": "The conditional request failed",
            });
            if let (Some(old), Some(fields)) = (old, reason.as_object_mut()) {
                fields.insert("Item".into(), map_to_json(&old));
            }
            reason
        }
        Refusal::Invalid(message) => json!({"Code": "ValidationError", "Message": message}),
    }
}

/// A cancellation the fault hook asked for: `code` on item `item`.
fn injected_cancel(count: usize, item: usize, code: &str) -> ApiError {
    let target = item.min(count.saturating_sub(1));
    let message = match code {
        "TransactionConflict" => "Transaction is ongoing for the item",
        "ThrottlingError" => "Throughput exceeds the current capacity of your table or index.",
        _ => "Cancelled by the simulation",
    };
    let reasons = (0..count)
        .map(|i| {
            if i == target {
                json!({"Code": code, "Message": message})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect();
    ApiError::cancelled(reasons)
}

//! The single-item operations: `GetItem`, `PutItem`, `UpdateItem`, `DeleteItem`.

use serde_json::{Value, json};

use super::write::{Action, Kind, Outcome, Write};
use super::{Db, boolean, refuse_legacy, required, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::expr::{Context, parse_projection, project};
use crate::dynamodb::value::{Item, item_from_json, map_to_json};

/// `GetItem`: the item at `Key`, projected; `ConsistentRead` is accepted
/// (every read is consistent here).
pub(super) fn get_item(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    refuse_legacy(body)?;
    let table = db.tables.existing(required(body, "TableName")?)?;
    let key = item_from_json(body.get("Key").ok_or_else(|| super::missing("Key"))?)?;
    let key = table.key_of(&key)?;
    boolean(body, "ConsistentRead")?;
    let mut ctx = Context::from_request(body)?;
    let projection = string(body, "ProjectionExpression")?
        .map(|text| parse_projection(text, &mut ctx))
        .transpose()?;
    ctx.check_all_used()?;
    Ok(match table.get(&key) {
        Some(item) => {
            let item = match &projection {
                Some(paths) => project(item, paths),
                None => item.clone(),
            };
            json!({ "Item": map_to_json(&item) })
        }
        None => json!({}),
    })
}

/// `PutItem`: `ReturnValues` `NONE` or `ALL_OLD`.
pub(super) fn put_item(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let returns = return_values(body, &["NONE", "ALL_OLD"])?;
    let write = Write::parse(&db.tables, body, Kind::Put)?;
    let outcome = write.run(&mut db.tables)?;
    Ok(answer(returns, &write, &outcome))
}

/// `UpdateItem`: `ReturnValues` `NONE`, `ALL_OLD`, `UPDATED_OLD`, `ALL_NEW`,
/// `UPDATED_NEW`.
pub(super) fn update_item(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let returns = return_values(
        body,
        &["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"],
    )?;
    let write = Write::parse(&db.tables, body, Kind::Update)?;
    let outcome = write.run(&mut db.tables)?;
    Ok(answer(returns, &write, &outcome))
}

/// `DeleteItem`: `ReturnValues` `NONE` or `ALL_OLD`.
pub(super) fn delete_item(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let returns = return_values(body, &["NONE", "ALL_OLD"])?;
    let write = Write::parse(&db.tables, body, Kind::Delete)?;
    let outcome = write.run(&mut db.tables)?;
    Ok(answer(returns, &write, &outcome))
}

/// The `ReturnValues` asked for, among those `allowed`.
fn return_values<'a>(body: &'a Value, allowed: &[&str]) -> Result<&'a str, ApiError> {
    let asked = string(body, "ReturnValues")?.unwrap_or("NONE");
    if allowed.contains(&asked) {
        Ok(asked)
    } else {
        Err(ApiError::validation("Return values set to invalid value"))
    }
}

/// The answer: `{"Attributes": ..}` as `ReturnValues` asks, else `{}`.
fn answer(returns: &str, write: &Write, outcome: &Outcome) -> Value {
    let touched = |item: &Item| -> Item {
        let Action::Update(Some(update)) = &write.action else {
            return Item::new();
        };
        let names = update.touched();
        item.iter()
            .filter(|(name, _)| names.contains(*name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    };
    let attributes = match returns {
        "ALL_OLD" => outcome.old.clone(),
        "ALL_NEW" => outcome.new.clone(),
        "UPDATED_OLD" => outcome.old.as_ref().map(touched),
        "UPDATED_NEW" => outcome.new.as_ref().map(touched),
        _ => None,
    };
    match attributes.filter(|a| !a.is_empty()) {
        Some(attributes) => json!({ "Attributes": map_to_json(&attributes) }),
        None => json!({}),
    }
}

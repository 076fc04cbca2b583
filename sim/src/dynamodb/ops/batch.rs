//! `BatchGetItem` (at most 100 keys, 16 MB of answer) and `BatchWriteItem`
//! (at most 25 puts and deletes, 16 MB), with unprocessed keys and items
//! when the fault hook asks for them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{Db, Twist, array, boolean, object, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::expr::{Context, Path, parse_projection, project};
use crate::dynamodb::table::{Key, Tables};
use crate::dynamodb::value::{Item, item_from_json, item_size, map_to_json};

/// Keys a `BatchGetItem` may ask for.
pub(super) const MAX_GET_KEYS: usize = 100;
/// Requests a `BatchWriteItem` may hold.
pub(super) const MAX_WRITES: usize = 25;
/// The largest answer of a `BatchGetItem`, and request of a `BatchWriteItem`.
pub(super) const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// How many of `count` entries a fault leaves unprocessed; all of them is
/// DynamoDB's throughput error.
fn unprocessed_count(twist: &Twist, count: usize) -> Result<usize, ApiError> {
    let Twist::Unprocessed(share) = twist else {
        return Ok(0);
    };
    let left = ((count as f64) * share.clamp(0.0, 1.0)).ceil() as usize;
    if left >= count && count > 0 {
        return Err(ApiError::new(
            400,
            "ProvisionedThroughputExceededException",
            "Throughput exceeds the current capacity for one or more tables in the request",
        ));
    }
    Ok(left)
}

fn request_items(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    let items = object(body, "RequestItems")?.ok_or_else(|| super::missing("RequestItems"))?;
    if items.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    Ok(items)
}

/// The keys asked of one table.
struct GetRequest<'a> {
    table: &'a str,
    keys: Vec<Key>,
    projection: Option<Vec<Path>>,
    /// The table's request, echoed (its keys replaced) when keys are left.
    echo: Map<String, Value>,
}

fn parse_get<'a>(
    tables: &Tables,
    table: &'a str,
    request: &Value,
) -> Result<GetRequest<'a>, ApiError> {
    let target = tables.existing(table)?;
    let mut keys = Vec::new();
    for key in array(request, "Keys")?.ok_or_else(|| super::missing("Keys"))? {
        keys.push(target.key_of(&item_from_json(key)?)?);
    }
    if keys.iter().collect::<BTreeSet<_>>().len() != keys.len() {
        return Err(ApiError::validation(
            "Provided list of item keys contains duplicates",
        ));
    }
    boolean(request, "ConsistentRead")?;
    let mut ctx = Context::from_request(request)?;
    let projection = string(request, "ProjectionExpression")?
        .map(|text| parse_projection(text, &mut ctx))
        .transpose()?;
    ctx.check_all_used()?;
    let mut echo = request.as_object().cloned().unwrap_or_default();
    echo.remove("Keys");
    Ok(GetRequest {
        table,
        keys,
        projection,
        echo,
    })
}

/// `BatchGetItem`.
pub(super) fn batch_get_item(db: &mut Db, body: &Value, twist: &Twist) -> Result<Value, ApiError> {
    let mut requests = Vec::new();
    for (table, request) in request_items(body)? {
        requests.push(parse_get(&db.tables, table, request)?);
    }
    let count: usize = requests.iter().map(|r| r.keys.len()).sum();
    if count > MAX_GET_KEYS {
        return Err(ApiError::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    let mut budget = count - unprocessed_count(twist, count)?;
    let mut bytes = 0;
    let mut responses = Map::new();
    let mut unprocessed = Map::new();
    for request in &requests {
        let mut found = Vec::new();
        let mut left = Vec::new();
        let table = db.tables.existing(request.table)?;
        for key in &request.keys {
            if budget == 0 || bytes > MAX_BATCH_BYTES {
                left.push(map_to_json(&table.key_item(key)));
                continue;
            }
            budget -= 1;
            if let Some(item) = table.get(key) {
                bytes += item_size(item);
                let item = match &request.projection {
                    Some(paths) => project(item, paths),
                    None => item.clone(),
                };
                found.push(map_to_json(&item));
            }
        }
        responses.insert(request.table.to_owned(), Value::Array(found));
        if !left.is_empty() {
            let mut echo = request.echo.clone();
            echo.insert("Keys".into(), Value::Array(left));
            unprocessed.insert(request.table.to_owned(), Value::Object(echo));
        }
    }
    Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
}

/// One request of a `BatchWriteItem`.
enum WriteRequest {
    Put(Key, Item),
    Delete(Key),
}

impl WriteRequest {
    fn key(&self) -> &Key {
        match self {
            WriteRequest::Put(key, _) | WriteRequest::Delete(key) => key,
        }
    }

    fn to_json(&self, tables: &Tables, table: &str) -> Value {
        match self {
            WriteRequest::Put(_, item) => json!({"PutRequest": {"Item": map_to_json(item)}}),
            WriteRequest::Delete(key) => {
                let key = tables
                    .table(table)
                    .map(|t| t.key_item(key))
                    .unwrap_or_default();
                json!({"DeleteRequest": {"Key": map_to_json(&key)}})
            }
        }
    }
}

fn parse_write(tables: &Tables, table: &str, request: &Value) -> Result<WriteRequest, ApiError> {
    let target = tables.existing(table)?;
    match (request.get("PutRequest"), request.get("DeleteRequest")) {
        (Some(put), None) => {
            let item = item_from_json(put.get("Item").ok_or_else(|| super::missing("Item"))?)?;
            Ok(WriteRequest::Put(target.item_key(&item)?, item))
        }
        (None, Some(delete)) => {
            let key = item_from_json(delete.get("Key").ok_or_else(|| super::missing("Key"))?)?;
            Ok(WriteRequest::Delete(target.key_of(&key)?))
        }
        _ => Err(ApiError::validation(
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
        )),
    }
}

/// `BatchWriteItem`.
pub(super) fn batch_write_item(
    db: &mut Db,
    body: &Value,
    twist: &Twist,
) -> Result<Value, ApiError> {
    let mut writes: Vec<(&str, WriteRequest)> = Vec::new();
    for (table, requests) in request_items(body)? {
        let requests = requests
            .as_array()
            .ok_or_else(|| ApiError::serialization("write requests must be a list"))?;
        let mut keys = BTreeSet::new();
        for request in requests {
            let write = parse_write(&db.tables, table, request)?;
            if !keys.insert(write.key().clone()) {
                return Err(ApiError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            writes.push((table, write));
        }
    }
    if writes.is_empty() || writes.len() > MAX_WRITES {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to {MAX_WRITES}, Member must have length greater than or equal to 1]"
        )));
    }
    let bytes: usize = writes
        .iter()
        .map(|(_, w)| match w {
            WriteRequest::Put(_, item) => item_size(item),
            WriteRequest::Delete(_) => 0,
        })
        .sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(ApiError::validation("Item collection size limit exceeded"));
    }
    let done = writes.len() - unprocessed_count(twist, writes.len())?;
    let mut unprocessed = Map::new();
    for (index, (table, write)) in writes.into_iter().enumerate() {
        if index >= done {
            let echo = write.to_json(&db.tables, table);
            if let Value::Array(list) = unprocessed
                .entry(table.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(echo);
            }
            continue;
        }
        let Some(target) = db.tables.table_mut(table) else {
            continue;
        };
        match write {
            WriteRequest::Put(key, item) => {
                target.put(key, item);
            }
            WriteRequest::Delete(key) => {
                target.delete(&key);
            }
        }
    }
    Ok(json!({ "UnprocessedItems": unprocessed }))
}

//! `Query` (one hash key, range keys in order, an optional range condition)
//! and `Scan` (every item in key order): pages of at most `Limit` items and
//! about 1 MB read, with `ExclusiveStartKey` / `LastEvaluatedKey`, filters
//! and projections.

use serde_json::{Map, Value, json};

use super::{Db, boolean, refuse_legacy, required, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::expr::{
    Cmp, Condition, Context, ExprKind, Operand, Path, Step, parse_condition, parse_projection,
    project,
};
use crate::dynamodb::table::{Key, Table};
use crate::dynamodb::value::{Attr, Item, item_from_json, item_size, map_to_json};

/// Bytes a page reads at most (DynamoDB's 1 MB).
pub(super) const PAGE_BYTES: usize = 1024 * 1024;

/// What a page is read with.
struct Page<'a> {
    table: &'a Table,
    filter: Option<Condition>,
    projection: Option<Vec<Path>>,
    limit: Option<usize>,
    count_only: bool,
}

/// The options shared by `Query` and `Scan`.
fn page_options<'a>(
    table: &'a Table,
    body: &Value,
    ctx: &mut Context,
) -> Result<Page<'a>, ApiError> {
    refuse_legacy(body)?;
    if string(body, "IndexName")?.is_some() {
        return Err(ApiError::validation(
            "The table does not have the specified index (the simulator has no indexes)",
        ));
    }
    boolean(body, "ConsistentRead")?;
    let limit = match body.get("Limit") {
        None | Some(Value::Null) => None,
        Some(limit) => match limit.as_u64() {
            Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
                )));
            }
        },
    };
    let count_only = match string(body, "Select")? {
        None | Some("ALL_ATTRIBUTES") | Some("SPECIFIC_ATTRIBUTES") => false,
        Some("COUNT") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "the simulator does not support Select {other}"
            )));
        }
    };
    let filter = string(body, "FilterExpression")?
        .map(|text| parse_condition(text, ExprKind::Filter, ctx))
        .transpose()?;
    let projection = string(body, "ProjectionExpression")?
        .map(|text| parse_projection(text, ctx))
        .transpose()?;
    Ok(Page {
        table,
        filter,
        projection,
        limit,
        count_only,
    })
}

/// `ExclusiveStartKey`, if given.
fn start_key(table: &Table, body: &Value) -> Result<Option<Key>, ApiError> {
    let Some(start) = body.get("ExclusiveStartKey").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let key = table.key_of(&item_from_json(start)?).map_err(|e| {
        ApiError::validation(format!(
            "The provided starting key is invalid: {}",
            e.message
        ))
    })?;
    Ok(Some(key))
}

impl Page<'_> {
    /// Reads `candidates` (already past the start key) into a page.
    fn read<'i>(
        &self,
        candidates: impl Iterator<Item = (&'i Key, &'i Item)>,
        in_range: impl Fn(&Item) -> bool,
    ) -> Value {
        let mut items = Vec::new();
        let mut scanned = 0;
        let mut bytes = 0;
        let mut last: Option<&Key> = None;
        let mut stopped_at = None;
        for (key, item) in candidates {
            if !in_range(item) {
                continue;
            }
            let size = item_size(item);
            if scanned > 0 && bytes + size > PAGE_BYTES {
                stopped_at = last;
                break;
            }
            bytes += size;
            scanned += 1;
            last = Some(key);
            if self.filter.as_ref().is_none_or(|f| f.eval(item)) {
                items.push(match &self.projection {
                    Some(paths) => map_to_json(&project(item, paths)),
                    None => map_to_json(item),
                });
            }
            if self.limit == Some(scanned) {
                stopped_at = last;
                break;
            }
        }
        let mut answer = Map::new();
        answer.insert("Count".into(), json!(items.len()));
        answer.insert("ScannedCount".into(), json!(scanned));
        if !self.count_only {
            answer.insert("Items".into(), Value::Array(items));
        }
        if let Some(key) = stopped_at {
            let key = map_to_json(&self.table.key_item(key));
            answer.insert("LastEvaluatedKey".into(), key);
        }
        Value::Object(answer)
    }
}

/// `Query`.
pub(super) fn query(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let table = db.tables.existing(required(body, "TableName")?)?;
    let mut ctx = Context::from_request(body)?;
    let text = required(body, "KeyConditionExpression")?;
    let key_condition = parse_condition(text, ExprKind::KeyCondition, &mut ctx)?;
    let hash = hash_of(&key_condition, table)?;
    let page = page_options(table, body, &mut ctx)?;
    ctx.check_all_used()?;
    let forward = boolean(body, "ScanIndexForward")?.unwrap_or(true);
    let start = start_key(table, body)?;
    if start.as_ref().is_some_and(|s| s.hash != hash) {
        return Err(ApiError::validation(
            "The provided starting key is invalid: The provided key element does not match the schema",
        ));
    }
    let in_range = |item: &Item| key_condition.eval(item);
    let partition = table.partition(&hash);
    let answer = if forward {
        let after = |key: &Key| start.as_ref().is_none_or(|s| key > s);
        page.read(partition.filter(|(k, _)| after(k)), in_range)
    } else {
        let before = |key: &Key| start.as_ref().is_none_or(|s| key < s);
        page.read(partition.rev().filter(|(k, _)| before(k)), in_range)
    };
    Ok(answer)
}

/// `Scan` (one segment).
pub(super) fn scan(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    if body.get("Segment").is_some() || body.get("TotalSegments").is_some() {
        return Err(ApiError::validation(
            "the simulator does not support parallel scans",
        ));
    }
    let table = db.tables.existing(required(body, "TableName")?)?;
    let mut ctx = Context::from_request(body)?;
    let page = page_options(table, body, &mut ctx)?;
    ctx.check_all_used()?;
    let start = start_key(table, body)?;
    let after = |key: &Key| start.as_ref().is_none_or(|s| key > s);
    Ok(page.read(table.items().filter(|(k, _)| after(k)), |_| true))
}

/// The hash key value a key condition names, after checking its shape: the
/// hash key `=` a string, and at most one condition on the range key
/// (`= < <= > >=`, `BETWEEN`, `begins_with`), joined by `AND`.
fn hash_of(condition: &Condition, table: &Table) -> Result<String, ApiError> {
    let mut parts = Vec::new();
    flatten_and(condition, &mut parts)?;
    if parts.len() > 2 {
        return Err(ExprKind::KeyCondition.invalid("Conditions can be of length 1 or 2 only"));
    }
    let schema = table.schema();
    let mut hash = None;
    let mut ranged = false;
    for part in parts {
        let (name, values, is_equality) = key_part(part)?;
        if values.iter().any(|v| !matches!(v, Attr::S(_))) {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Condition parameter type does not match schema type",
            ));
        }
        if name == schema.hash_key && is_equality && hash.is_none() {
            hash = values.first().and_then(|v| v.as_s()).map(str::to_owned);
        } else if schema.range_key.as_deref() == Some(name) && !ranged {
            ranged = true;
        } else {
            return Err(ExprKind::KeyCondition.invalid("Query key condition not supported"));
        }
    }
    hash.ok_or_else(|| {
        ApiError::validation(format!(
            "Query condition missed key schema element: {}",
            schema.hash_key
        ))
    })
}

fn flatten_and<'c>(
    condition: &'c Condition,
    parts: &mut Vec<&'c Condition>,
) -> Result<(), ApiError> {
    match condition {
        Condition::And(a, b) => {
            flatten_and(a, parts)?;
            flatten_and(b, parts)
        }
        Condition::Or(..) | Condition::Not(_) => Err(ExprKind::KeyCondition.invalid(
            "Invalid operator used in KeyConditionExpression: only AND joins key conditions",
        )),
        other => {
            parts.push(other);
            Ok(())
        }
    }
}

/// A key condition part: the attribute, its values, whether it is `=`.
fn key_part(part: &Condition) -> Result<(&str, Vec<&Attr>, bool), ApiError> {
    fn name(path: &Path) -> Option<&str> {
        match path.0.as_slice() {
            [Step::Name(name)] => Some(name.as_str()),
            _ => None,
        }
    }
    let found = match part {
        Condition::Compare(Operand::Path(path), cmp, Operand::Value(value)) if *cmp != Cmp::Ne => {
            name(path).map(|n| (n, vec![value], *cmp == Cmp::Eq))
        }
        Condition::Between(Operand::Path(path), Operand::Value(low), Operand::Value(high)) => {
            name(path).map(|n| (n, vec![low, high], false))
        }
        Condition::BeginsWith(path, Operand::Value(prefix)) => {
            name(path).map(|n| (n, vec![prefix], false))
        }
        _ => None,
    };
    found.ok_or_else(|| ExprKind::KeyCondition.invalid("Query key condition not supported"))
}

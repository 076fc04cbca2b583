//! Tables themselves: `CreateTable` (string keys), `DescribeTable` (always
//! `ACTIVE`), `DeleteTable`, `ListTables`, `UpdateTimeToLive`,
//! `DescribeTimeToLive`.

use serde_json::{Value, json};

use super::{Db, array, boolean, object, required, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::table::KeySchema;

/// Checks a table name as DynamoDB does: 3 to 255 of `a-z A-Z 0-9 _ - .`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let good = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&name.len()) && name.chars().all(good) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
        )))
    }
}

/// `CreateTable`: a `HASH` key and an optional `RANGE` key, both defined as `S`.
pub(super) fn create_table(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let name = required(body, "TableName")?;
    check_name(name)?;
    let mut hash = None;
    let mut range = None;
    for element in array(body, "KeySchema")?.ok_or_else(|| super::missing("KeySchema"))? {
        let attribute = required(element, "AttributeName")?;
        match required(element, "KeyType")? {
            "HASH" if hash.is_none() => hash = Some(attribute.to_owned()),
            "RANGE" if range.is_none() && hash.is_some() => range = Some(attribute.to_owned()),
            _ => {
                return Err(ApiError::validation(
                    "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
                ));
            }
        }
    }
    let hash = hash.ok_or_else(|| super::missing("KeySchema"))?;
    check_definitions(body, &hash, range.as_deref())?;
    let on_demand = string(body, "BillingMode")? == Some("PAY_PER_REQUEST");
    if !on_demand && object(body, "ProvisionedThroughput")?.is_none() {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        ));
    }
    let schema = KeySchema {
        hash_key: hash,
        range_key: range,
        ttl_attribute: None,
    };
    if !db.tables.create(name, schema) {
        return Err(ApiError::new(
            400,
            "ResourceInUseException",
            format!("Table already exists: {name}"),
        ));
    }
    let table = db.tables.existing(name)?;
    Ok(json!({ "TableDescription": table.describe(name, "CREATING") }))
}

/// The attribute definitions: exactly the key attributes, as strings.
fn check_definitions(body: &Value, hash: &str, range: Option<&str>) -> Result<(), ApiError> {
    let definitions = array(body, "AttributeDefinitions")?
        .ok_or_else(|| super::missing("AttributeDefinitions"))?;
    let mut defined = Vec::new();
    for definition in definitions {
        let name = required(definition, "AttributeName")?;
        let kind = required(definition, "AttributeType")?;
        if kind != "S" {
            return Err(ApiError::validation(format!(
                "the simulator supports string keys only; {name} is {kind}"
            )));
        }
        defined.push(name);
    }
    let keys: Vec<&str> = std::iter::once(hash).chain(range).collect();
    if defined.len() != keys.len() || !keys.iter().all(|k| defined.contains(k)) {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    Ok(())
}

/// `DescribeTable`.
pub(super) fn describe_table(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let name = required(body, "TableName")?;
    let table = db.tables.existing(name)?;
    Ok(json!({ "Table": table.describe(name, "ACTIVE") }))
}

/// `DeleteTable`.
pub(super) fn delete_table(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let name = required(body, "TableName")?;
    let description = db.tables.existing(name)?.describe(name, "DELETING");
    db.tables.drop_table(name);
    Ok(json!({ "TableDescription": description }))
}

/// `ListTables` (one page).
pub(super) fn list_tables(db: &Db) -> Value {
    json!({ "TableNames": db.tables.names() })
}

/// `UpdateTimeToLive`: enabling it twice, or disabling it when off, is
/// refused as DynamoDB refuses it.
pub(super) fn update_time_to_live(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let name = required(body, "TableName")?;
    let spec = body
        .get("TimeToLiveSpecification")
        .ok_or_else(|| super::missing("TimeToLiveSpecification"))?;
    let attribute = required(spec, "AttributeName")?;
    let enabled = boolean(spec, "Enabled")?.ok_or_else(|| super::missing("Enabled"))?;
    let table = db.tables.table_mut(name).ok_or_else(ApiError::no_table)?;
    match (enabled, table.schema().ttl_attribute.is_some()) {
        (true, true) => Err(ApiError::validation("TimeToLive is already enabled")),
        (false, false) => Err(ApiError::validation("TimeToLive is already disabled")),
        _ => {
            table.set_ttl(enabled.then(|| attribute.to_owned()));
            Ok(
                json!({ "TimeToLiveSpecification": {"AttributeName": attribute, "Enabled": enabled} }),
            )
        }
    }
}

/// `DescribeTimeToLive`.
pub(super) fn describe_time_to_live(db: &mut Db, body: &Value) -> Result<Value, ApiError> {
    let table = db.tables.existing(required(body, "TableName")?)?;
    let description = match &table.schema().ttl_attribute {
        Some(attribute) => json!({"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}),
        None => json!({"TimeToLiveStatus": "DISABLED"}),
    };
    Ok(json!({ "TimeToLiveDescription": description }))
}

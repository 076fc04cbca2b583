//! Tables: a string hash key, an optional string range key, items in key
//! order (range keys bytewise within a hash key), and a TTL setting.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::ApiError;
use super::value::{Attr, Item, item_size};

/// DynamoDB's item size limit (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The shape of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// The string hash key attribute.
    pub hash_key: String,
    /// The string range key attribute, if any.
    pub range_key: Option<String>,
    /// The TTL attribute, if TTL is enabled.
    pub ttl_attribute: Option<String>,
}

impl From<shardline::aws::dynamodb::table::KeySchema<'_>> for KeySchema {
    fn from(schema: shardline::aws::dynamodb::table::KeySchema<'_>) -> Self {
        KeySchema {
            hash_key: schema.hash_key.to_owned(),
            range_key: schema.range_key.map(str::to_owned),
            ttl_attribute: schema.ttl_attribute.map(str::to_owned),
        }
    }
}

/// An item's primary key: the hash key, and the range key (empty without one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The hash key's value.
    pub hash: String,
    /// The range key's value (empty for a table without a range key).
    pub range: String,
}

/// One table.
#[derive(Debug, Clone)]
pub struct Table {
    schema: KeySchema,
    items: BTreeMap<Key, Item>,
}

impl Table {
    /// An empty table.
    pub fn new(schema: KeySchema) -> Self {
        Table {
            schema,
            items: BTreeMap::new(),
        }
    }

    /// Its key schema.
    pub fn schema(&self) -> &KeySchema {
        &self.schema
    }

    /// The key attribute names: hash, then range.
    pub fn key_names(&self) -> Vec<&str> {
        let mut names = vec![self.schema.hash_key.as_str()];
        names.extend(self.schema.range_key.as_deref());
        names
    }

    /// The key of a `Key` parameter, which must hold the key attributes and nothing else.
    ///
    /// # Errors
    /// A `ValidationException` as DynamoDB words it.
    pub fn key_of(&self, key: &Item) -> Result<Key, ApiError> {
        let mismatch =
            || ApiError::validation("The provided key element does not match the schema");
        if key.len() != self.key_names().len() {
            return Err(mismatch());
        }
        let value = |name: &str| match key.get(name) {
            Some(Attr::S(text)) if text.is_empty() => Err(empty_key(name)),
            Some(Attr::S(text)) => Ok(text.clone()),
            _ => Err(mismatch()),
        };
        Ok(Key {
            hash: value(&self.schema.hash_key)?,
            range: match &self.schema.range_key {
                Some(name) => value(name)?,
                None => String::new(),
            },
        })
    }

    /// The key of an item to write: it must hold the key attributes as
    /// non-empty strings, and fit in 400 KB.
    ///
    /// # Errors
    /// A `ValidationException` as DynamoDB words it.
    pub fn item_key(&self, item: &Item) -> Result<Key, ApiError> {
        let value = |name: &str| match item.get(name) {
            None => Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Missing the key {name} in the item"
            ))),
            Some(Attr::S(text)) if text.is_empty() => Err(empty_key(name)),
            Some(Attr::S(text)) => Ok(text.clone()),
            Some(other) => Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Type mismatch for key {name} expected: S actual: {}",
                other.type_name()
            ))),
        };
        let key = Key {
            hash: value(&self.schema.hash_key)?,
            range: match &self.schema.range_key {
                Some(name) => value(name)?,
                None => String::new(),
            },
        };
        check_size(item)?;
        Ok(key)
    }

    /// The key attributes of `key` as an item.
    pub fn key_item(&self, key: &Key) -> Item {
        let mut item = Item::from([(self.schema.hash_key.clone(), Attr::s(&key.hash))]);
        if let Some(range) = &self.schema.range_key {
            item.insert(range.clone(), Attr::s(&key.range));
        }
        item
    }

    /// The item at `key`.
    pub fn get(&self, key: &Key) -> Option<&Item> {
        self.items.get(key)
    }

    /// Writes `item` at `key`, returning the item it replaced.
    pub fn put(&mut self, key: Key, item: Item) -> Option<Item> {
        self.items.insert(key, item)
    }

    /// Deletes the item at `key`, returning it.
    pub fn delete(&mut self, key: &Key) -> Option<Item> {
        self.items.remove(key)
    }

    /// Every item, in key order.
    pub fn items(&self) -> impl DoubleEndedIterator<Item = (&Key, &Item)> {
        self.items.iter()
    }

    /// The items of one hash key, in range key order.
    pub fn partition(&self, hash: &str) -> impl DoubleEndedIterator<Item = (&Key, &Item)> {
        let start = Key {
            hash: hash.to_owned(),
            range: String::new(),
        };
        // The next hash key after `hash` in string order.
        let end = Key {
            hash: format!("{hash}\0"),
            range: String::new(),
        };
        self.items.range(start..end)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sets (or clears) the TTL attribute.
    pub fn set_ttl(&mut self, attribute: Option<String>) {
        self.schema.ttl_attribute = attribute;
    }

    /// Deletes the items whose TTL attribute (epoch seconds) is before
    /// `now_secs`, as DynamoDB's TTL eventually does; returns how many.
    pub fn expire(&mut self, now_secs: u64) -> usize {
        let Some(attribute) = self.schema.ttl_attribute.clone() else {
            return 0;
        };
        let before = self.items.len();
        self.items.retain(|_, item| {
            let expires = item.get(&attribute).and_then(Attr::as_n::<f64>);
            !expires.is_some_and(|at| at < now_secs as f64)
        });
        before - self.items.len()
    }

    /// The table's description, as `DescribeTable` gives it.
    pub fn describe(&self, name: &str, status: &str) -> Value {
        let mut key_schema =
            vec![json!({"AttributeName": self.schema.hash_key, "KeyType": "HASH"})];
        let mut definitions =
            vec![json!({"AttributeName": self.schema.hash_key, "AttributeType": "S"})];
        if let Some(range) = &self.schema.range_key {
            key_schema.push(json!({"AttributeName": range, "KeyType": "RANGE"}));
            definitions.push(json!({"AttributeName": range, "AttributeType": "S"}));
        }
        let bytes: usize = self.items.values().map(item_size).sum();
        json!({
            "TableName": name,
            "TableArn": format!("arn:aws:dynamodb:us-east-1:000000000000:table/{name}"),
            "TableStatus": status,
            "KeySchema": key_schema,
            "AttributeDefinitions": definitions,
            "ItemCount": self.items.len(),
            "TableSizeBytes": bytes,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        })
    }
}

fn empty_key(name: &str) -> ApiError {
    ApiError::validation(format!(
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {name}"
    ))
}

/// Refuses an item over 400 KB.
///
/// # Errors
/// A `ValidationException`.
pub(super) fn check_size(item: &Item) -> Result<(), ApiError> {
    if item_size(item) > MAX_ITEM_BYTES {
        return Err(ApiError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

/// Every table, by name: what a fault hook may read and change.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    tables: BTreeMap<String, Table>,
}

impl Tables {
    /// Creates `name` (empty); `false` if it exists already.
    pub fn create(&mut self, name: &str, schema: KeySchema) -> bool {
        if self.tables.contains_key(name) {
            return false;
        }
        self.tables.insert(name.to_owned(), Table::new(schema));
        true
    }

    /// Deletes the table `name`; `false` if there was none.
    pub fn drop_table(&mut self, name: &str) -> bool {
        self.tables.remove(name).is_some()
    }

    /// The table `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The table `name`, to change.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(name)
    }

    /// The table `name`, or DynamoDB's error for a missing one.
    ///
    /// # Errors
    /// A `ResourceNotFoundException`.
    pub fn existing(&self, name: &str) -> Result<&Table, ApiError> {
        self.tables.get(name).ok_or_else(ApiError::no_table)
    }

    /// The table names, in order.
    pub fn names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// The item of `table` at `hash` (and `range`).
    pub fn get(&self, table: &str, hash: &str, range: Option<&str>) -> Option<&Item> {
        self.tables.get(table)?.get(&Key {
            hash: hash.to_owned(),
            range: range.unwrap_or_default().to_owned(),
        })
    }

    /// Writes `item` into `table` (as a concurrent writer would), returning the
    /// item it replaced.
    ///
    /// # Errors
    /// A `ResourceNotFoundException`, or a `ValidationException` for an item
    /// without its key or over 400 KB.
    pub fn put(&mut self, table: &str, item: Item) -> Result<Option<Item>, ApiError> {
        let target = self.tables.get_mut(table).ok_or_else(ApiError::no_table)?;
        let key = target.item_key(&item)?;
        Ok(target.put(key, item))
    }

    /// Deletes the item of `table` at `hash` (and `range`), returning it.
    pub fn delete(&mut self, table: &str, hash: &str, range: Option<&str>) -> Option<Item> {
        self.tables.get_mut(table)?.delete(&Key {
            hash: hash.to_owned(),
            range: range.unwrap_or_default().to_owned(),
        })
    }

    /// Every item of `table`, in key order (none if it does not exist).
    pub fn items(&self, table: &str) -> Vec<Item> {
        self.tables
            .get(table)
            .map(|t| t.items().map(|(_, item)| item.clone()).collect())
            .unwrap_or_default()
    }
}

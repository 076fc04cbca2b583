//! Attribute values in and out of DynamoDB items.
//!
//! ```
//! use shardline::aws::dynamodb::attr::{get_n, get_s, item, n, s};
//! let account = item([("pk", s("account#A1")), ("balance", n(750))]);
//! assert_eq!(get_s(&account, "pk"), Some("account#A1"));
//! assert_eq!(get_n::<i64>(&account, "balance"), Some(750));
//! assert_eq!(get_n::<i64>(&account, "missing"), None);
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB item (or key): attribute names to values.
pub type Attributes = HashMap<String, AttributeValue>;

/// A string value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number value.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A binary value.
pub fn b(value: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

/// A list of strings.
pub fn list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

/// An item (or a key) from name and value pairs.
pub fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Attributes {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// A string attribute.
pub fn get_s<'a>(item: &'a Attributes, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// A number attribute, parsed.
pub fn get_n<T: std::str::FromStr>(item: &Attributes, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// A binary attribute.
pub fn get_b<'a>(item: &'a Attributes, name: &str) -> Option<&'a [u8]> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref())
}

/// A list of strings (empty when missing).
pub fn get_list(item: &Attributes, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

/// A map of strings (empty when missing).
pub fn get_string_map<'a>(item: &'a Attributes, name: &str) -> Vec<(&'a str, &'a str)> {
    item.get(name)
        .and_then(|v| v.as_m().ok())
        .into_iter()
        .flatten()
        .filter_map(|(key, v)| Some((key.as_str(), v.as_s().ok()?.as_str())))
        .collect()
}

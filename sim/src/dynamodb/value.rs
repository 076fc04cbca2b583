//! Attribute values: parsed from and written to DynamoDB's JSON wire format
//! (`{"S": ..}`, `{"N": ..}`, `{"B": base64}`, ...), validated as DynamoDB
//! does, compared as DynamoDB compares them, and sized as DynamoDB bills them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::number::Number;

/// An item (or a key): attribute names to values, in name order.
pub type Item = BTreeMap<String, Attr>;

/// One attribute value. Sets keep their members sorted and distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// A string.
    S(String),
    /// A number.
    N(Number),
    /// Binary data.
    B(Vec<u8>),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// A map.
    M(BTreeMap<String, Attr>),
    /// A list.
    L(Vec<Attr>),
    /// A string set.
    Ss(Vec<String>),
    /// A number set.
    Ns(Vec<Number>),
    /// A binary set.
    Bs(Vec<Vec<u8>>),
}

impl Attr {
    /// A string value.
    pub fn s(text: impl Into<String>) -> Self {
        Attr::S(text.into())
    }

    /// A number value from an integer.
    pub fn n(value: impl Into<i128>) -> Self {
        Attr::N(Number::from_integer(value.into()))
    }

    /// The string, if this is one.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Attr::S(text) => Some(text),
            _ => None,
        }
    }

    /// The number parsed as `T`, if this is a number that parses.
    pub fn as_n<T: std::str::FromStr>(&self) -> Option<T> {
        match self {
            Attr::N(number) => number.to_string().parse().ok(),
            _ => None,
        }
    }

    /// The bytes, if this is binary.
    pub fn as_b(&self) -> Option<&[u8]> {
        match self {
            Attr::B(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// DynamoDB's name of its type (`S`, `N`, `B`, `BOOL`, `NULL`, `M`, `L`, `SS`, `NS`, `BS`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Attr::S(_) => "S",
            Attr::N(_) => "N",
            Attr::B(_) => "B",
            Attr::Bool(_) => "BOOL",
            Attr::Null => "NULL",
            Attr::M(_) => "M",
            Attr::L(_) => "L",
            Attr::Ss(_) => "SS",
            Attr::Ns(_) => "NS",
            Attr::Bs(_) => "BS",
        }
    }

    /// Parses one attribute value of the wire format.
    ///
    /// # Errors
    /// A `ValidationException` (or `SerializationException` for a malformed
    /// shape) as DynamoDB answers.
    pub fn from_json(value: &Value) -> Result<Self, ApiError> {
        let Some(object) = value.as_object() else {
            return Err(ApiError::serialization(
                "an AttributeValue must be an object",
            ));
        };
        let mut fields = object.iter();
        let (kind, inner) = match (fields.next(), fields.next()) {
            (Some(field), None) => field,
            (None, _) => {
                return Err(ApiError::validation(
                    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                ));
            }
        };
        Self::typed(kind, inner)
    }

    fn typed(kind: &str, inner: &Value) -> Result<Self, ApiError> {
        let shape = || ApiError::serialization(format!("malformed {kind} attribute value"));
        let text = || inner.as_str().ok_or_else(shape);
        let array = || inner.as_array().ok_or_else(shape);
        Ok(match kind {
            "S" => Attr::S(text()?.to_owned()),
            "N" => Attr::N(number(text()?)?),
            "B" => Attr::B(binary(text()?)?),
            "BOOL" => Attr::Bool(inner.as_bool().ok_or_else(shape)?),
            "NULL" => match inner.as_bool() {
                Some(true) => Attr::Null,
                _ => {
                    return Err(ApiError::validation(
                        "One or more parameter values were invalid: Null attribute value types must have the value of true",
                    ));
                }
            },
            "M" => Attr::M(map_from_json(inner.as_object().ok_or_else(shape)?)?),
            "L" => Attr::L(
                array()?
                    .iter()
                    .map(Attr::from_json)
                    .collect::<Result<_, _>>()?,
            ),
            "SS" => Attr::Ss(set(array()?, "string", |v| {
                v.as_str().map(str::to_owned).ok_or_else(shape)
            })?),
            "NS" => Attr::Ns(set(array()?, "number", |v| {
                number(v.as_str().ok_or_else(shape)?)
            })?),
            "BS" => Attr::Bs(set(array()?, "binary", |v| {
                binary(v.as_str().ok_or_else(shape)?)
            })?),
            other => {
                return Err(ApiError::serialization(format!(
                    "unknown attribute value type {other}"
                )));
            }
        })
    }

    /// The value in the wire format.
    pub fn to_json(&self) -> Value {
        match self {
            Attr::S(text) => json!({ "S": text }),
            Attr::N(number) => json!({ "N": number.to_string() }),
            Attr::B(bytes) => json!({ "B": STANDARD.encode(bytes) }),
            Attr::Bool(value) => json!({ "BOOL": value }),
            Attr::Null => json!({ "NULL": true }),
            Attr::M(map) => json!({ "M": map_to_json(map) }),
            Attr::L(list) => json!({ "L": list.iter().map(Attr::to_json).collect::<Vec<_>>() }),
            Attr::Ss(set) => json!({ "SS": set }),
            Attr::Ns(set) => {
                json!({ "NS": set.iter().map(ToString::to_string).collect::<Vec<_>>() })
            }
            Attr::Bs(set) => {
                json!({ "BS": set.iter().map(|b| STANDARD.encode(b)).collect::<Vec<_>>() })
            }
        }
    }

    /// Its size as DynamoDB counts it toward the 400 KB item limit.
    pub fn size(&self) -> usize {
        let number = |n: &Number| n.significant_digits().div_ceil(2) + 1;
        match self {
            Attr::S(text) => text.len(),
            Attr::N(n) => number(n),
            Attr::B(bytes) => bytes.len(),
            Attr::Bool(_) | Attr::Null => 1,
            Attr::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| k.len() + v.size() + 1)
                    .sum::<usize>()
            }
            Attr::L(list) => 3 + list.iter().map(|v| v.size() + 1).sum::<usize>(),
            Attr::Ss(set) => set.iter().map(String::len).sum(),
            Attr::Ns(set) => set.iter().map(number).sum(),
            Attr::Bs(set) => set.iter().map(Vec::len).sum(),
        }
    }

    /// The order of two scalars of the same type (`S` and `B` bytewise, `N`
    /// as numbers); `None` for other types or a type mismatch.
    pub fn compare(&self, other: &Attr) -> Option<Ordering> {
        match (self, other) {
            (Attr::S(a), Attr::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Attr::N(a), Attr::N(b)) => Some(a.cmp(b)),
            (Attr::B(a), Attr::B(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn number(text: &str) -> Result<Number, ApiError> {
    Number::parse(text).map_err(|e| ApiError::validation(e.message()))
}

fn binary(text: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(text).map_err(|_| {
        ApiError::serialization("Base64 encoded length is expected a multiple of 4 bytes")
    })
}

/// A set's members, sorted; empty sets and repeated members are refused.
fn set<T: Ord + Clone>(
    values: &[Value],
    kind: &str,
    parse: impl Fn(&Value) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    if values.is_empty() {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: An {kind} set  may not be empty"
        )));
    }
    let mut members = values.iter().map(parse).collect::<Result<Vec<T>, _>>()?;
    members.sort();
    let before = members.len();
    members.dedup();
    if members.len() != before {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Input collection contains duplicates",
        ));
    }
    Ok(members)
}

/// Parses a map of attribute values (an item, a key, a `M` value).
///
/// # Errors
/// As [`Attr::from_json`].
pub(super) fn map_from_json(object: &Map<String, Value>) -> Result<Item, ApiError> {
    object
        .iter()
        .map(|(name, value)| Ok((name.clone(), Attr::from_json(value)?)))
        .collect()
}

/// Parses an item given as a JSON value (must be an object).
///
/// # Errors
/// As [`Attr::from_json`].
pub(super) fn item_from_json(value: &Value) -> Result<Item, ApiError> {
    match value.as_object() {
        Some(object) => map_from_json(object),
        None => Err(ApiError::serialization("an item must be an object")),
    }
}

/// A map of attribute values in the wire format.
pub(super) fn map_to_json(map: &BTreeMap<String, Attr>) -> Value {
    Value::Object(
        map.iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect(),
    )
}

/// An item's size: each attribute's name and value.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value.size())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let wire = json!({
            "s": {"S": "text"}, "n": {"N": "1.50"}, "b": {"B": "AAEC"},
            "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"inner": {"S": "x"}}}, "l": {"L": [{"N": "1"}, {"S": "a"}]},
            "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["10", "9"]}, "bs": {"BS": ["AQ=="]}
        });
        let item = item_from_json(&wire).unwrap();
        assert_eq!(item["b"], Attr::B(vec![0, 1, 2]));
        assert_eq!(
            item["n"].to_json(),
            json!({"N": "1.5"}),
            "numbers come back normalized"
        );
        assert_eq!(item["ss"].to_json(), json!({"SS": ["a", "b"]}));
        assert_eq!(
            item["ns"].to_json(),
            json!({"NS": ["9", "10"]}),
            "number sets sort as numbers"
        );
        assert_eq!(item_from_json(&map_to_json(&item)).unwrap(), item);
    }

    #[test]
    fn refuses_malformed_values() {
        let code = |v: Value| Attr::from_json(&v).unwrap_err().code;
        assert_eq!(code(json!({})), "ValidationException");
        assert_eq!(code(json!({"S": "a", "N": "1"})), "ValidationException");
        assert_eq!(code(json!({"N": "one"})), "ValidationException");
        assert_eq!(code(json!({"NULL": false})), "ValidationException");
        assert_eq!(code(json!({"SS": []})), "ValidationException");
        assert_eq!(code(json!({"SS": ["a", "a"]})), "ValidationException");
        assert_eq!(code(json!({"NS": ["1", "1.0"]})), "ValidationException");
        assert_eq!(code(json!({"S": 5})), "SerializationException");
        assert_eq!(code(json!({"X": "a"})), "SerializationException");
        assert_eq!(code(json!({"B": "not base64!"})), "SerializationException");
        assert_eq!(code(json!("bare")), "SerializationException");
    }

    #[test]
    fn compares_within_a_type_only() {
        let n = |t: &str| Attr::N(Number::parse(t).unwrap());
        assert_eq!(n("10").compare(&n("9")), Some(Ordering::Greater));
        assert_eq!(Attr::s("10").compare(&Attr::s("9")), Some(Ordering::Less));
        assert_eq!(
            Attr::B(vec![1]).compare(&Attr::B(vec![1, 0])),
            Some(Ordering::Less)
        );
        assert_eq!(Attr::s("1").compare(&n("1")), None);
        assert_eq!(Attr::Bool(true).compare(&Attr::Bool(true)), None);
    }

    #[test]
    fn sizes_as_dynamodb_counts() {
        let item =
            item_from_json(&json!({"pk": {"S": "abc"}, "n": {"N": "12345"}, "b": {"B": "AAEC"}}))
                .unwrap();
        assert_eq!(item_size(&item), (2 + 3) + (1 + 4) + (1 + 3));
    }
}

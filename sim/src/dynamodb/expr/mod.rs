//! Expressions: condition, key condition, filter, update and projection
//! expressions, parsed with their placeholders resolved
//! (`ExpressionAttributeNames`, `ExpressionAttributeValues`) and evaluated
//! against items.
//!
//! Conditions: `= <> < <= > >=`, `BETWEEN`, `IN`, `AND`, `OR`, `NOT`,
//! parentheses, `attribute_exists`, `attribute_not_exists`, `attribute_type`,
//! `begins_with`, `contains`, `size`. Updates: `SET` (with `+`, `-`,
//! `if_not_exists`, `list_append`), `REMOVE`, `ADD`, `DELETE`. Paths: names,
//! `#placeholders`, `a.b` and `a[0]`. Reserved words are refused as names, as
//! DynamoDB does.

mod eval;
mod lexer;
mod parser;
mod reserved;
#[cfg(test)]
mod tests;
mod update;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub(super) use self::eval::project;
pub(super) use self::parser::{parse_condition, parse_projection};
pub(super) use self::update::{Update, parse_update};
use super::error::ApiError;
use super::value::Attr;

/// Which expression of a request, as DynamoDB names it in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExprKind {
    /// `ConditionExpression`.
    Condition,
    /// `KeyConditionExpression`.
    KeyCondition,
    /// `FilterExpression`.
    Filter,
    /// `UpdateExpression`.
    Update,
    /// `ProjectionExpression`.
    Projection,
}

impl ExprKind {
    /// The request field.
    pub(super) fn field(self) -> &'static str {
        match self {
            ExprKind::Condition => "ConditionExpression",
            ExprKind::KeyCondition => "KeyConditionExpression",
            ExprKind::Filter => "FilterExpression",
            ExprKind::Update => "UpdateExpression",
            ExprKind::Projection => "ProjectionExpression",
        }
    }

    /// A `ValidationException` about an expression of this kind.
    pub(super) fn invalid(self, detail: impl std::fmt::Display) -> ApiError {
        ApiError::validation(format!("Invalid {}: {detail}", self.field()))
    }
}

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// An attribute (or map key).
    Name(String),
    /// A list index.
    Index(usize),
}

/// A document path: an attribute, then map keys and list indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Path(pub Vec<Step>);

impl Path {
    /// The top-level attribute it starts at.
    pub(super) fn attribute(&self) -> &str {
        match self.0.first() {
            Some(Step::Name(name)) => name,
            _ => "",
        }
    }

    /// Whether one of the paths is the other or inside it.
    pub(super) fn overlaps(&self, other: &Path) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a == b)
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<String> = self
            .0
            .iter()
            .map(|step| match step {
                Step::Name(name) => name.clone(),
                Step::Index(index) => format!("[{index}]"),
            })
            .collect();
        write!(f, "[{}]", steps.join(", "))
    }
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    /// An attribute of the item.
    Path(Path),
    /// A value from `ExpressionAttributeValues`.
    Value(Attr),
    /// `size(path)`.
    Size(Path),
}

/// A comparator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A condition (also a key condition or a filter).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    /// `a <op> b`.
    Compare(Operand, Cmp, Operand),
    /// `a BETWEEN low AND high`.
    Between(Operand, Operand, Operand),
    /// `a IN (b, c, ...)`.
    In(Operand, Vec<Operand>),
    /// `x AND y`.
    And(Box<Condition>, Box<Condition>),
    /// `x OR y`.
    Or(Box<Condition>, Box<Condition>),
    /// `NOT x`.
    Not(Box<Condition>),
    /// `attribute_exists(path)`.
    Exists(Path),
    /// `attribute_not_exists(path)`.
    NotExists(Path),
    /// `attribute_type(path, :type)`.
    AttributeType(Path, Operand),
    /// `begins_with(path, prefix)`.
    BeginsWith(Path, Operand),
    /// `contains(path, operand)`.
    Contains(Path, Operand),
}

/// The placeholders of one request, and which of them its expressions used.
#[derive(Debug, Default)]
pub(super) struct Context {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, Attr>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Context {
    /// The `ExpressionAttributeNames` and `ExpressionAttributeValues` of `request`.
    ///
    /// # Errors
    /// A `ValidationException` for an empty map or a malformed value.
    pub(super) fn from_request(request: &Value) -> Result<Self, ApiError> {
        let mut context = Context::default();
        if let Some(names) = request.get("ExpressionAttributeNames") {
            let names = names
                .as_object()
                .ok_or_else(|| ApiError::serialization("ExpressionAttributeNames must be a map"))?;
            if names.is_empty() {
                return Err(ApiError::validation(
                    "ExpressionAttributeNames must not be empty",
                ));
            }
            for (placeholder, name) in names {
                let name = name
                    .as_str()
                    .ok_or_else(|| ApiError::serialization("a name must be a string"))?;
                context.names.insert(placeholder.clone(), name.to_owned());
            }
        }
        if let Some(values) = request.get("ExpressionAttributeValues") {
            let values = values.as_object().ok_or_else(|| {
                ApiError::serialization("ExpressionAttributeValues must be a map")
            })?;
            if values.is_empty() {
                return Err(ApiError::validation(
                    "ExpressionAttributeValues must not be empty",
                ));
            }
            context.values = super::value::map_from_json(values)?;
        }
        Ok(context)
    }

    /// The name behind `#placeholder`.
    fn name(&mut self, placeholder: &str, kind: ExprKind) -> Result<String, ApiError> {
        let name = self.names.get(placeholder).cloned().ok_or_else(|| {
            kind.invalid(format!(
                "An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
            ))
        })?;
        self.used_names.insert(placeholder.to_owned());
        Ok(name)
    }

    /// The value behind `:placeholder`.
    fn value(&mut self, placeholder: &str, kind: ExprKind) -> Result<Attr, ApiError> {
        let value = self.values.get(placeholder).cloned().ok_or_else(|| {
            kind.invalid(format!(
                "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
            ))
        })?;
        self.used_values.insert(placeholder.to_owned());
        Ok(value)
    }

    /// Refuses placeholders no expression used, as DynamoDB does.
    ///
    /// # Errors
    /// A `ValidationException` naming the unused placeholders.
    pub(super) fn check_all_used(&self) -> Result<(), ApiError> {
        let unused = |all: Vec<&String>, used: &BTreeSet<String>| -> Vec<String> {
            all.into_iter()
                .filter(|p| !used.contains(*p))
                .cloned()
                .collect()
        };
        let names = unused(self.names.keys().collect(), &self.used_names);
        if !names.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                names.join(", ")
            )));
        }
        let values = unused(self.values.keys().collect(), &self.used_values);
        if !values.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                values.join(", ")
            )));
        }
        Ok(())
    }
}

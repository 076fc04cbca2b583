//! One conditional write of one item (a put, an update, a delete, or a
//! transaction's condition check): parsed and checked, evaluated against the
//! tables, then committed. The single-item operations and the transactions
//! share it.

use serde_json::Value;

use super::{object, refuse_legacy, required, string};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::expr::{Condition, Context, ExprKind, Update, parse_condition, parse_update};
use crate::dynamodb::table::{Key, MAX_ITEM_BYTES, Tables};
use crate::dynamodb::value::{Item, item_from_json, item_size};

/// What a write does to its item.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// Replaces the item.
    Put(Item),
    /// Updates (or creates) the item.
    Update(Option<Update>),
    /// Deletes the item.
    Delete,
    /// Only checks the condition.
    Check,
}

/// The kind of write a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Put,
    Update,
    Delete,
    Check,
}

/// A parsed write.
#[derive(Debug, Clone)]
pub(super) struct Write {
    /// The table.
    pub table: String,
    /// The item's key.
    pub key: Key,
    /// What it does.
    pub action: Action,
    /// Its condition.
    pub condition: Option<Condition>,
    /// Whether a failed condition returns the item (`ALL_OLD`).
    pub old_on_failure: bool,
    /// Its size toward a transaction's 4 MB: the item or key and the values.
    pub size: usize,
}

/// Why a write is refused when evaluated.
#[derive(Debug, Clone)]
pub(super) enum Refusal {
    /// The condition failed (with the item when asked for).
    Condition(Option<Item>),
    /// The write is invalid for this item (a wrong type, too large).
    Invalid(String),
}

/// What a write did: the item before and after.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    /// The item before.
    pub old: Option<Item>,
    /// The item after (`None`: no item).
    pub new: Option<Item>,
}

impl Write {
    /// Parses a write of `kind` from `body` (a request or a transaction item).
    ///
    /// # Errors
    /// A `ResourceNotFoundException` or a `ValidationException`.
    pub(super) fn parse(tables: &Tables, body: &Value, kind: Kind) -> Result<Write, ApiError> {
        refuse_legacy(body)?;
        let name = required(body, "TableName")?;
        let table = tables.existing(name)?;
        let mut ctx = Context::from_request(body)?;
        let mut put = None;
        let (key, base_size) = match kind {
            Kind::Put => {
                let item = item_from_json(body.get("Item").ok_or_else(|| super::missing("Item"))?)?;
                let found = (table.item_key(&item)?, item_size(&item));
                put = Some(item);
                found
            }
            _ => {
                let key = item_from_json(body.get("Key").ok_or_else(|| super::missing("Key"))?)?;
                (table.key_of(&key)?, item_size(&key))
            }
        };
        let condition = string(body, "ConditionExpression")?
            .map(|text| parse_condition(text, ExprKind::Condition, &mut ctx))
            .transpose()?;
        if kind == Kind::Check && condition.is_none() {
            return Err(super::missing("ConditionExpression"));
        }
        let action = match kind {
            Kind::Put => Action::Put(put.unwrap_or_default()),
            Kind::Update => Action::Update(
                string(body, "UpdateExpression")?
                    .map(|text| parse_update(text, &mut ctx, &table.key_names()))
                    .transpose()?,
            ),
            Kind::Delete => Action::Delete,
            Kind::Check => Action::Check,
        };
        ctx.check_all_used()?;
        let values_size = object(body, "ExpressionAttributeValues")?
            .map(|values| values.values().map(|v| v.to_string().len()).sum::<usize>())
            .unwrap_or(0);
        Ok(Write {
            table: name.to_owned(),
            key,
            action,
            condition,
            old_on_failure: old_on_failure(body)?,
            size: base_size + values_size,
        })
    }

    /// What the write would do to the tables as they are.
    ///
    /// # Errors
    /// [`Refusal`] when the condition fails or the result is invalid.
    pub(super) fn evaluate(&self, tables: &Tables) -> Result<Outcome, Refusal> {
        let table = tables
            .table(&self.table)
            .ok_or_else(|| Refusal::Invalid("Requested resource not found".into()))?;
        let old = table.get(&self.key);
        if let Some(condition) = &self.condition {
            let empty = Item::new();
            if !condition.eval(old.unwrap_or(&empty)) {
                return Err(Refusal::Condition(
                    old.filter(|_| self.old_on_failure).cloned(),
                ));
            }
        }
        let new = match &self.action {
            Action::Put(item) => Some(item.clone()),
            Action::Delete => None,
            Action::Check => old.cloned(),
            Action::Update(update) => {
                let base = old.cloned().unwrap_or_else(|| table.key_item(&self.key));
                let new = match update {
                    Some(update) => update.apply(&base).map_err(Refusal::Invalid)?,
                    None => base,
                };
                if item_size(&new) > MAX_ITEM_BYTES {
                    return Err(Refusal::Invalid(
                        "Item size to update has exceeded the maximum allowed size".into(),
                    ));
                }
                Some(new)
            }
        };
        Ok(Outcome {
            old: old.cloned(),
            new,
        })
    }

    /// Applies an evaluated write.
    pub(super) fn commit(&self, tables: &mut Tables, outcome: &Outcome) {
        let Some(table) = tables.table_mut(&self.table) else {
            return;
        };
        match (&self.action, &outcome.new) {
            (Action::Check, _) => {}
            (_, Some(new)) => {
                table.put(self.key.clone(), new.clone());
            }
            (_, None) => {
                table.delete(&self.key);
            }
        }
    }

    /// Evaluates and, unless refused, commits: a single-item operation.
    ///
    /// # Errors
    /// A `ConditionalCheckFailedException` or a `ValidationException`.
    pub(super) fn run(&self, tables: &mut Tables) -> Result<Outcome, ApiError> {
        match self.evaluate(tables) {
            Ok(outcome) => {
                self.commit(tables, &outcome);
                Ok(outcome)
            }
            Err(Refusal::Condition(old)) => Err(ApiError::condition_failed(
                old.map(|item| crate::dynamodb::value::map_to_json(&item)),
            )),
            Err(Refusal::Invalid(message)) => Err(ApiError::validation(message)),
        }
    }
}

/// `ReturnValuesOnConditionCheckFailure`: whether it is `ALL_OLD`.
fn old_on_failure(body: &Value) -> Result<bool, ApiError> {
    match string(body, "ReturnValuesOnConditionCheckFailure")? {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
        ))),
    }
}

//! Update expressions: `SET`, `REMOVE`, `ADD` and `DELETE` clauses, in any
//! order, each at most once; parsed, checked, and applied to an item.

use std::collections::BTreeSet;

use super::eval::{get_path, remove_path, set_path};
use super::lexer::Tok;
use super::parser::Parser;
use super::{Context, ExprKind, Path};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::value::{Attr, Item};

/// A value on the right of `SET path = ...`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SetValue {
    /// An operand.
    Operand(UpdateOperand),
    /// `a + b` (numbers).
    Plus(UpdateOperand, UpdateOperand),
    /// `a - b` (numbers).
    Minus(UpdateOperand, UpdateOperand),
}

/// An operand of a `SET` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UpdateOperand {
    /// An attribute of the item (before the update).
    Path(Path),
    /// A `:value`.
    Value(Attr),
    /// `if_not_exists(path, operand)`.
    IfNotExists(Path, Box<UpdateOperand>),
    /// `list_append(a, b)`.
    ListAppend(Box<UpdateOperand>, Box<UpdateOperand>),
}

/// A parsed update expression.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Update {
    /// `SET path = value, ...`
    pub set: Vec<(Path, SetValue)>,
    /// `REMOVE path, ...`
    pub remove: Vec<Path>,
    /// `ADD path :value, ...`
    pub add: Vec<(Path, Attr)>,
    /// `DELETE path :set, ...`
    pub delete: Vec<(Path, Attr)>,
}

const MISSING: &str =
    "The provided expression refers to an attribute that does not exist in the item";
const WRONG_TYPE: &str = "An operand in the update expression has an incorrect data type";

/// Parses an `UpdateExpression`; refuses overlapping paths and paths into
/// the key attributes `keys`.
///
/// # Errors
/// A `ValidationException` naming the expression.
pub(crate) fn parse_update(
    text: &str,
    ctx: &mut Context,
    keys: &[&str],
) -> Result<Update, ApiError> {
    let mut parser = Parser::new(text, ExprKind::Update, ctx)?;
    let mut update = Update::default();
    let mut seen = BTreeSet::new();
    while !parser.at_end() {
        let clause = ["SET", "REMOVE", "ADD", "DELETE"]
            .into_iter()
            .find(|word| parser.eat_keyword(word))
            .ok_or_else(|| parser.syntax_error())?;
        if !seen.insert(clause) {
            return Err(parser.kind().invalid(format!(
                "The \"{clause}\" section can only be used once in an update expression;"
            )));
        }
        loop {
            match clause {
                "SET" => {
                    let path = parser.path()?;
                    parser.expect(&Tok::Cmp(super::Cmp::Eq))?;
                    update.set.push((path, set_value(&mut parser)?));
                }
                "REMOVE" => update.remove.push(parser.path()?),
                "ADD" => update.add.push((parser.path()?, parser.value()?)),
                _ => update.delete.push((parser.path()?, parser.value()?)),
            }
            if !parser.eat(&Tok::Comma) {
                break;
            }
        }
    }
    update.check(keys)?;
    Ok(update)
}

fn set_value(parser: &mut Parser<'_>) -> Result<SetValue, ApiError> {
    let first = update_operand(parser)?;
    if parser.eat(&Tok::Plus) {
        return Ok(SetValue::Plus(first, update_operand(parser)?));
    }
    if parser.eat(&Tok::Minus) {
        return Ok(SetValue::Minus(first, update_operand(parser)?));
    }
    Ok(SetValue::Operand(first))
}

fn update_operand(parser: &mut Parser<'_>) -> Result<UpdateOperand, ApiError> {
    if let Some(function) = parser.function_ahead() {
        parser.eat(&Tok::Word(function.clone()));
        parser.expect(&Tok::Open)?;
        let operand = match function.as_str() {
            "if_not_exists" => {
                let path = parser.path()?;
                parser.expect(&Tok::Comma)?;
                UpdateOperand::IfNotExists(path, Box::new(update_operand(parser)?))
            }
            "list_append" => {
                let first = update_operand(parser)?;
                parser.expect(&Tok::Comma)?;
                UpdateOperand::ListAppend(Box::new(first), Box::new(update_operand(parser)?))
            }
            _ => return Err(parser.unknown_function(&function)),
        };
        parser.expect(&Tok::Close)?;
        return Ok(operand);
    }
    if matches!(parser.peek().map(|t| &t.tok), Some(Tok::Value(_))) {
        return Ok(UpdateOperand::Value(parser.value()?));
    }
    Ok(UpdateOperand::Path(parser.path()?))
}

impl Update {
    /// Every path the update writes or removes.
    fn targets(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(&self.remove)
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
    }

    /// The top-level attributes it touches (for `UPDATED_OLD` and `UPDATED_NEW`).
    pub(crate) fn touched(&self) -> BTreeSet<String> {
        self.targets().map(|p| p.attribute().to_owned()).collect()
    }

    fn check(&self, keys: &[&str]) -> Result<(), ApiError> {
        let targets: Vec<&Path> = self.targets().collect();
        for (i, a) in targets.iter().enumerate() {
            if keys.contains(&a.attribute()) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                    a.attribute()
                )));
            }
            if let Some(b) = targets[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(ExprKind::Update.invalid(format!(
                    "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {a}, path two: {b}"
                )));
            }
        }
        for (_, value) in &self.delete {
            if !matches!(value, Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                return Err(ExprKind::Update.invalid(format!(
                    "Incorrect operand type for operator or function; operator: DELETE, operand type: {}",
                    value.type_name()
                )));
            }
        }
        for (_, value) in &self.add {
            if !matches!(value, Attr::N(_) | Attr::Ss(_) | Attr::Ns(_) | Attr::Bs(_)) {
                return Err(ExprKind::Update.invalid(format!(
                    "Incorrect operand type for operator or function; operator: ADD, operand type: {}",
                    value.type_name()
                )));
            }
        }
        Ok(())
    }

    /// The item after the update of `old` (every value is read from `old`).
    ///
    /// # Errors
    /// DynamoDB's message for a missing operand, a wrong type, a bad path.
    pub(crate) fn apply(&self, old: &Item) -> Result<Item, String> {
        let values = self
            .set
            .iter()
            .map(|(_, value)| set_value_of(value, old))
            .collect::<Result<Vec<_>, _>>()?;
        let mut new = old.clone();
        for ((path, _), value) in self.set.iter().zip(values) {
            set_path(&mut new, path, value)?;
        }
        for path in &self.remove {
            remove_path(&mut new, path);
        }
        for (path, value) in &self.add {
            let sum = match get_path(old, path) {
                None => value.clone(),
                Some(current) => add(current, value)?,
            };
            set_path(&mut new, path, sum)?;
        }
        for (path, value) in &self.delete {
            match get_path(old, path)
                .map(|current| subtract(current, value))
                .transpose()?
            {
                Some(Some(left)) => set_path(&mut new, path, left)?,
                Some(None) => remove_path(&mut new, path),
                None => {}
            }
        }
        Ok(new)
    }
}

fn set_value_of(value: &SetValue, item: &Item) -> Result<Attr, String> {
    let number = |operand: &UpdateOperand| match operand_of(operand, item)? {
        Attr::N(n) => Ok(n),
        _ => Err(WRONG_TYPE.to_owned()),
    };
    let result = match value {
        SetValue::Operand(operand) => return operand_of(operand, item),
        SetValue::Plus(a, b) => number(a)?.add(&number(b)?),
        SetValue::Minus(a, b) => number(a)?.sub(&number(b)?),
    };
    result.map(Attr::N).map_err(|e| e.message().to_owned())
}

fn operand_of(operand: &UpdateOperand, item: &Item) -> Result<Attr, String> {
    match operand {
        UpdateOperand::Value(value) => Ok(value.clone()),
        UpdateOperand::Path(path) => get_path(item, path)
            .cloned()
            .ok_or_else(|| MISSING.to_owned()),
        UpdateOperand::IfNotExists(path, fallback) => match get_path(item, path) {
            Some(value) => Ok(value.clone()),
            None => operand_of(fallback, item),
        },
        UpdateOperand::ListAppend(a, b) => match (operand_of(a, item)?, operand_of(b, item)?) {
            (Attr::L(mut a), Attr::L(b)) => {
                a.extend(b);
                Ok(Attr::L(a))
            }
            _ => Err(WRONG_TYPE.to_owned()),
        },
    }
}

/// `ADD`: a number's sum, a set's union.
fn add(current: &Attr, value: &Attr) -> Result<Attr, String> {
    fn union<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
        let set: BTreeSet<T> = a.iter().chain(b).cloned().collect();
        set.into_iter().collect()
    }
    Ok(match (current, value) {
        (Attr::N(a), Attr::N(b)) => Attr::N(a.add(b).map_err(|e| e.message().to_owned())?),
        (Attr::Ss(a), Attr::Ss(b)) => Attr::Ss(union(a, b)),
        (Attr::Ns(a), Attr::Ns(b)) => Attr::Ns(union(a, b)),
        (Attr::Bs(a), Attr::Bs(b)) => Attr::Bs(union(a, b)),
        _ => return Err(WRONG_TYPE.to_owned()),
    })
}

/// `DELETE`: a set without the members of `value` (`None` when nothing is left).
fn subtract(current: &Attr, value: &Attr) -> Result<Option<Attr>, String> {
    fn minus<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
        a.iter().filter(|m| !b.contains(m)).cloned().collect()
    }
    let left = match (current, value) {
        (Attr::Ss(a), Attr::Ss(b)) => Attr::Ss(minus(a, b)),
        (Attr::Ns(a), Attr::Ns(b)) => Attr::Ns(minus(a, b)),
        (Attr::Bs(a), Attr::Bs(b)) => Attr::Bs(minus(a, b)),
        _ => return Err(WRONG_TYPE.to_owned()),
    };
    let empty = match &left {
        Attr::Ss(s) => s.is_empty(),
        Attr::Ns(s) => s.is_empty(),
        Attr::Bs(s) => s.is_empty(),
        _ => false,
    };
    Ok((!empty).then_some(left))
}

//! Evaluating conditions against an item, and reading, writing and removing
//! document paths.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{Cmp, Condition, Operand, Path, Step};
use crate::dynamodb::number::Number;
use crate::dynamodb::value::{Attr, Item};

/// The value at `path` in `item`, if there is one.
pub(super) fn get_path<'a>(item: &'a Item, path: &Path) -> Option<&'a Attr> {
    let mut steps = path.0.iter();
    let mut current = match steps.next()? {
        Step::Name(name) => item.get(name)?,
        Step::Index(_) => return None,
    };
    for step in steps {
        current = match (step, current) {
            (Step::Name(name), Attr::M(map)) => map.get(name)?,
            (Step::Index(index), Attr::L(list)) => list.get(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

impl Operand {
    /// Its value against `item` (`None`: a missing attribute, or `size` of
    /// something that has none).
    pub(crate) fn eval<'a>(&'a self, item: &'a Item) -> Option<Cow<'a, Attr>> {
        match self {
            Operand::Value(value) => Some(Cow::Borrowed(value)),
            Operand::Path(path) => get_path(item, path).map(Cow::Borrowed),
            Operand::Size(path) => size(get_path(item, path)?).map(Cow::Owned),
        }
    }
}

/// `size(...)`: a string's or binary's length, a collection's members.
fn size(value: &Attr) -> Option<Attr> {
    let length = match value {
        Attr::S(text) => text.chars().count(),
        Attr::B(bytes) => bytes.len(),
        Attr::M(map) => map.len(),
        Attr::L(list) => list.len(),
        Attr::Ss(set) => set.len(),
        Attr::Ns(set) => set.len(),
        Attr::Bs(set) => set.len(),
        Attr::N(_) | Attr::Bool(_) | Attr::Null => return None,
    };
    Some(Attr::N(Number::from_integer(length as i128)))
}

impl Condition {
    /// Whether `item` meets the condition (an absent item is an empty one).
    pub(crate) fn eval(&self, item: &Item) -> bool {
        match self {
            Condition::Compare(a, cmp, b) => compare(a.eval(item), *cmp, b.eval(item)),
            Condition::Between(a, low, high) => {
                let (Some(a), Some(low), Some(high)) =
                    (a.eval(item), low.eval(item), high.eval(item))
                else {
                    return false;
                };
                a.compare(&low).is_some_and(|o| o != Ordering::Less)
                    && a.compare(&high).is_some_and(|o| o != Ordering::Greater)
            }
            Condition::In(a, list) => {
                let Some(a) = a.eval(item) else { return false };
                list.iter().any(|b| b.eval(item).is_some_and(|b| *b == *a))
            }
            Condition::And(a, b) => a.eval(item) && b.eval(item),
            Condition::Or(a, b) => a.eval(item) || b.eval(item),
            Condition::Not(a) => !a.eval(item),
            Condition::Exists(path) => get_path(item, path).is_some(),
            Condition::NotExists(path) => get_path(item, path).is_none(),
            Condition::AttributeType(path, kind) => match (get_path(item, path), kind.eval(item)) {
                (Some(value), Some(kind)) => kind.as_s() == Some(value.type_name()),
                _ => false,
            },
            Condition::BeginsWith(path, prefix) => {
                match (get_path(item, path), prefix.eval(item).as_deref()) {
                    (Some(Attr::S(text)), Some(Attr::S(prefix))) => {
                        text.starts_with(prefix.as_str())
                    }
                    (Some(Attr::B(bytes)), Some(Attr::B(prefix))) => bytes.starts_with(prefix),
                    _ => false,
                }
            }
            Condition::Contains(path, operand) => {
                match (get_path(item, path), operand.eval(item)) {
                    (Some(value), Some(operand)) => contains(value, &operand),
                    _ => false,
                }
            }
        }
    }
}

/// A comparison: equality across all types; order within `S`, `N` and `B`.
/// A missing side makes every comparison false but `<>`.
fn compare(a: Option<Cow<'_, Attr>>, cmp: Cmp, b: Option<Cow<'_, Attr>>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return cmp == Cmp::Ne;
    };
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        _ => a.compare(&b).is_some_and(|order| match cmp {
            Cmp::Lt => order == Ordering::Less,
            Cmp::Le => order != Ordering::Greater,
            Cmp::Gt => order == Ordering::Greater,
            _ => order != Ordering::Less,
        }),
    }
}

/// `contains`: a substring, a set member, a list element.
fn contains(value: &Attr, operand: &Attr) -> bool {
    match (value, operand) {
        (Attr::S(text), Attr::S(part)) => text.contains(part.as_str()),
        (Attr::B(bytes), Attr::B(part)) => {
            part.is_empty() || bytes.windows(part.len()).any(|w| w == part.as_slice())
        }
        (Attr::Ss(set), Attr::S(member)) => set.contains(member),
        (Attr::Ns(set), Attr::N(member)) => set.contains(member),
        (Attr::Bs(set), Attr::B(member)) => set.contains(member),
        (Attr::L(list), element) => list.contains(element),
        _ => false,
    }
}

/// Writes `value` at `path`: a top-level attribute, a map key of an existing
/// map, or a list index of an existing list (past the end appends).
///
/// # Errors
/// DynamoDB's message when the path's parent is missing or of another type.
pub(super) fn set_path(item: &mut Item, path: &Path, value: Attr) -> Result<(), String> {
    let invalid =
        || "The document path provided in the update expression is invalid for update".to_owned();
    let Some((last, parents)) = path.0.split_last() else {
        return Err(invalid());
    };
    let Some((Step::Name(first), middle)) = parents.split_first() else {
        return match last {
            Step::Name(name) => {
                item.insert(name.clone(), value);
                Ok(())
            }
            Step::Index(_) => Err(invalid()),
        };
    };
    let mut current = item.get_mut(first).ok_or_else(invalid)?;
    for step in middle {
        current = match (step, current) {
            (Step::Name(name), Attr::M(map)) => map.get_mut(name).ok_or_else(invalid)?,
            (Step::Index(index), Attr::L(list)) => list.get_mut(*index).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
    }
    match (last, current) {
        (Step::Name(name), Attr::M(map)) => {
            map.insert(name.clone(), value);
        }
        (Step::Index(index), Attr::L(list)) => match list.get_mut(*index) {
            Some(slot) => *slot = value,
            None => list.push(value),
        },
        _ => return Err(invalid()),
    }
    Ok(())
}

/// Removes what is at `path`, if anything (a list element: the rest move up).
pub(super) fn remove_path(item: &mut Item, path: &Path) {
    let Some((last, parents)) = path.0.split_last() else {
        return;
    };
    let Some((Step::Name(first), middle)) = parents.split_first() else {
        if let Step::Name(name) = last {
            item.remove(name);
        }
        return;
    };
    let Some(mut current) = item.get_mut(first) else {
        return;
    };
    for step in middle {
        let next = match (step, current) {
            (Step::Name(name), Attr::M(map)) => map.get_mut(name),
            (Step::Index(index), Attr::L(list)) => list.get_mut(*index),
            _ => None,
        };
        let Some(next) = next else { return };
        current = next;
    }
    match (last, current) {
        (Step::Name(name), Attr::M(map)) => {
            map.remove(name);
        }
        (Step::Index(index), Attr::L(list)) if *index < list.len() => {
            list.remove(*index);
        }
        _ => {}
    }
}

/// The parts of `item` that `paths` name (a `ProjectionExpression`).
pub(crate) fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        let Some(value) = get_path(item, path) else {
            continue;
        };
        let mut nested = value.clone();
        for step in path.0.iter().skip(1).rev() {
            nested = match step {
                Step::Name(name) => Attr::M(BTreeMap::from([(name.clone(), nested)])),
                Step::Index(_) => Attr::L(vec![nested]),
            };
        }
        merge(&mut out, path.attribute(), nested);
    }
    out
}

/// Puts `value` under `name`, merging maps and lists already projected.
fn merge(into: &mut BTreeMap<String, Attr>, name: &str, value: Attr) {
    match (into.get_mut(name), value) {
        (Some(Attr::M(existing)), Attr::M(more)) => {
            for (key, inner) in more {
                merge(existing, &key, inner);
            }
        }
        (Some(Attr::L(existing)), Attr::L(more)) => existing.extend(more),
        (_, value) => {
            into.insert(name.to_owned(), value);
        }
    }
}

//! The parser of conditions and projections (and the token cursor the update
//! parser shares). Placeholders are resolved as they are read.

use super::lexer::{Tok, Token, lex};
use super::reserved::is_reserved;
use super::{Condition, Context, ExprKind, Operand, Path, Step};
use crate::dynamodb::error::ApiError;
use crate::dynamodb::value::Attr;

/// Words of the grammar: a syntax error where a name is expected.
const GRAMMAR: [&str; 9] = [
    "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE",
];

/// A cursor over an expression's tokens.
pub(super) struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    kind: ExprKind,
    ctx: &'a mut Context,
}

impl<'a> Parser<'a> {
    /// A parser of `text`, an expression of `kind`.
    pub(super) fn new(
        text: &'a str,
        kind: ExprKind,
        ctx: &'a mut Context,
    ) -> Result<Self, ApiError> {
        if text.trim().is_empty() {
            return Err(kind.invalid("The expression can not be empty;"));
        }
        let tokens = lex(text).map_err(|at| {
            let token: String = text[at..].chars().take(1).collect();
            kind.invalid(format!(
                "Syntax error; token: \"{token}\", near: \"{}\"",
                near(text, at, at + token.len())
            ))
        })?;
        Ok(Parser {
            text,
            tokens,
            at: 0,
            kind,
            ctx,
        })
    }

    /// The kind of expression parsed.
    pub(super) fn kind(&self) -> ExprKind {
        self.kind
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_tok(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.at + ahead).map(|t| &t.tok)
    }

    pub(super) fn at_end(&self) -> bool {
        self.at >= self.tokens.len()
    }

    /// Consumes the next token if it is `tok`.
    pub(super) fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek_tok(0) == Some(tok);
        if found {
            self.at += 1;
        }
        found
    }

    /// Consumes the next token if it is the keyword `word`.
    pub(super) fn eat_keyword(&mut self, word: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.is_keyword(word));
        if found {
            self.at += 1;
        }
        found
    }

    pub(super) fn expect(&mut self, tok: &Tok) -> Result<(), ApiError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    /// A syntax error at the next token (or at the end).
    pub(super) fn syntax_error(&self) -> ApiError {
        let (token, start, end) = match self.peek() {
            Some(t) => (&self.text[t.start..t.end], t.start, t.end),
            None => ("<EOF>", self.text.len(), self.text.len()),
        };
        let from = self
            .at
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(start, |t| t.start);
        let to = self.tokens.get(self.at + 1).map_or(end, |t| t.end);
        self.kind.invalid(format!(
            "Syntax error; token: \"{token}\", near: \"{}\"",
            near(self.text, from, to)
        ))
    }

    /// A document path: a name or `#placeholder`, then `.name` and `[index]` steps.
    pub(super) fn path(&mut self) -> Result<Path, ApiError> {
        let mut steps = vec![Step::Name(self.name()?)];
        loop {
            if self.eat(&Tok::Dot) {
                steps.push(Step::Name(self.name()?));
            } else if self.eat(&Tok::OpenBracket) {
                let index = match self.peek_tok(0) {
                    Some(Tok::Int(digits)) => digits.parse::<usize>().ok(),
                    _ => None,
                };
                let Some(index) = index else {
                    return Err(self.syntax_error());
                };
                self.at += 1;
                self.expect(&Tok::CloseBracket)?;
                steps.push(Step::Index(index));
            } else {
                return Ok(Path(steps));
            }
        }
    }

    fn name(&mut self) -> Result<String, ApiError> {
        match self.peek_tok(0).cloned() {
            Some(Tok::Name(placeholder)) => {
                self.at += 1;
                self.ctx.name(&placeholder, self.kind)
            }
            Some(Tok::Word(word)) => {
                let starts_well = word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
                if !starts_well || GRAMMAR.iter().any(|k| word.eq_ignore_ascii_case(k)) {
                    return Err(self.syntax_error());
                }
                if is_reserved(&word) {
                    return Err(self.kind.invalid(format!(
                        "Attribute name is a reserved keyword; reserved keyword: {word}"
                    )));
                }
                self.at += 1;
                Ok(word)
            }
            _ => Err(self.syntax_error()),
        }
    }

    /// A `:placeholder`'s value.
    pub(super) fn value(&mut self) -> Result<Attr, ApiError> {
        match self.peek_tok(0).cloned() {
            Some(Tok::Value(placeholder)) => {
                self.at += 1;
                self.ctx.value(&placeholder, self.kind)
            }
            _ => Err(self.syntax_error()),
        }
    }

    /// The function name if the next tokens are `name(`.
    pub(super) fn function_ahead(&self) -> Option<String> {
        match (self.peek_tok(0), self.peek_tok(1)) {
            (Some(Tok::Word(name)), Some(Tok::Open)) => Some(name.clone()),
            _ => None,
        }
    }

    pub(super) fn unknown_function(&self, name: &str) -> ApiError {
        self.kind
            .invalid(format!("Invalid function name; function: {name}"))
    }

    /// An operand of a condition: a path, a value or `size(path)`.
    fn operand(&mut self) -> Result<Operand, ApiError> {
        if let Some(function) = self.function_ahead() {
            if function != "size" {
                return Err(match function.as_str() {
                    "attribute_exists" | "attribute_not_exists" | "attribute_type"
                    | "begins_with" | "contains" => self.kind.invalid(format!(
                        "The function is not allowed to be used this way in an expression; function: {function}"
                    )),
                    _ => self.unknown_function(&function),
                });
            }
            self.at += 2;
            let path = self.path()?;
            self.expect(&Tok::Close)?;
            return Ok(Operand::Size(path));
        }
        if matches!(self.peek_tok(0), Some(Tok::Value(_))) {
            return Ok(Operand::Value(self.value()?));
        }
        Ok(Operand::Path(self.path()?))
    }

    /// `x OR y OR ...`
    fn or(&mut self) -> Result<Condition, ApiError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    /// `x AND y AND ...`
    fn and(&mut self) -> Result<Condition, ApiError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, ApiError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    /// A parenthesized condition, a function, or a comparison.
    fn primary(&mut self) -> Result<Condition, ApiError> {
        if self.eat(&Tok::Open) {
            let inner = self.or()?;
            self.expect(&Tok::Close)?;
            return Ok(inner);
        }
        if let Some(function) = self.function_ahead().filter(|f| f != "size") {
            return self.function(&function);
        }
        let left = self.operand()?;
        if let Some(Tok::Cmp(cmp)) = self.peek_tok(0).cloned() {
            self.at += 1;
            return Ok(Condition::Compare(left, cmp, self.operand()?));
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.eat_keyword("AND") {
                return Err(self.syntax_error());
            }
            return Ok(Condition::Between(left, low, self.operand()?));
        }
        if self.eat_keyword("IN") {
            self.expect(&Tok::Open)?;
            let mut list = vec![self.operand()?];
            while self.eat(&Tok::Comma) {
                list.push(self.operand()?);
            }
            self.expect(&Tok::Close)?;
            return Ok(Condition::In(left, list));
        }
        Err(self.syntax_error())
    }

    /// A function that is a condition: `name(path[, operand])`.
    fn function(&mut self, name: &str) -> Result<Condition, ApiError> {
        let two = match name {
            "attribute_exists" | "attribute_not_exists" => false,
            "attribute_type" | "begins_with" | "contains" => true,
            _ => return Err(self.unknown_function(name)),
        };
        self.at += 2;
        let path = self.path()?;
        let second = if two {
            self.expect(&Tok::Comma)?;
            Some(self.operand()?)
        } else {
            None
        };
        self.expect(&Tok::Close)?;
        Ok(match (name, second) {
            ("attribute_exists", _) => Condition::Exists(path),
            ("attribute_not_exists", _) => Condition::NotExists(path),
            ("attribute_type", Some(operand)) => Condition::AttributeType(path, operand),
            ("begins_with", Some(operand)) => Condition::BeginsWith(path, operand),
            (_, Some(operand)) => Condition::Contains(path, operand),
            (_, None) => return Err(self.syntax_error()),
        })
    }
}

/// The text around a token, for messages.
fn near(text: &str, from: usize, to: usize) -> &str {
    text.get(from..to).unwrap_or(text)
}

/// Parses a condition (`ConditionExpression`, `KeyConditionExpression`,
/// `FilterExpression`), resolving placeholders from `ctx`.
///
/// # Errors
/// A `ValidationException` naming the expression: a syntax error, an
/// undefined placeholder, a reserved word, an unknown function.
pub(crate) fn parse_condition(
    text: &str,
    kind: ExprKind,
    ctx: &mut Context,
) -> Result<Condition, ApiError> {
    let mut parser = Parser::new(text, kind, ctx)?;
    let condition = parser.or()?;
    if !parser.at_end() {
        return Err(parser.syntax_error());
    }
    check_attribute_type(&condition, kind)?;
    Ok(condition)
}

/// `attribute_type` takes a type name DynamoDB knows.
fn check_attribute_type(condition: &Condition, kind: ExprKind) -> Result<(), ApiError> {
    match condition {
        Condition::And(a, b) | Condition::Or(a, b) => {
            check_attribute_type(a, kind)?;
            check_attribute_type(b, kind)
        }
        Condition::Not(a) => check_attribute_type(a, kind),
        Condition::AttributeType(_, Operand::Value(value)) => {
            const TYPES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];
            match value.as_s() {
                Some(name) if TYPES.contains(&name) => Ok(()),
                _ => Err(kind.invalid(format!(
                    "Invalid attribute type name found; type: {}, valid types: {{B,NULL,SS,BOOL,L,BS,N,NS,S,M}}",
                    value.as_s().unwrap_or(value.type_name())
                ))),
            }
        }
        _ => Ok(()),
    }
}

/// Parses a `ProjectionExpression`: paths separated by commas.
///
/// # Errors
/// A `ValidationException` naming the expression.
pub(crate) fn parse_projection(text: &str, ctx: &mut Context) -> Result<Vec<Path>, ApiError> {
    let mut parser = Parser::new(text, ExprKind::Projection, ctx)?;
    let mut paths = vec![parser.path()?];
    while parser.eat(&Tok::Comma) {
        paths.push(parser.path()?);
    }
    if !parser.at_end() {
        return Err(parser.syntax_error());
    }
    Ok(paths)
}

//! The tokens of an expression.

use super::Cmp;

/// A token's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    /// A bare word: an attribute name, a keyword or a function name.
    Word(String),
    /// `#name`.
    Name(String),
    /// `:value`.
    Value(String),
    /// Digits (a list index).
    Int(String),
    /// `(`
    Open,
    /// `)`
    Close,
    /// `[`
    OpenBracket,
    /// `]`
    CloseBracket,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// A comparator.
    Cmp(Cmp),
    /// `+`
    Plus,
    /// `-`
    Minus,
}

/// A token and where it is in the text (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    /// What it is.
    pub tok: Tok,
    /// Its first byte.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

impl Token {
    /// Whether it is the keyword `word` (keywords are case-insensitive).
    pub(super) fn is_keyword(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(word))
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where the word starting at `from` ends.
fn word_end(bytes: &[u8], from: usize) -> usize {
    from + bytes[from..]
        .iter()
        .take_while(|b| is_word_byte(**b))
        .count()
}

/// A one-byte token.
fn punctuation(b: u8) -> Option<Tok> {
    Some(match b {
        b'(' => Tok::Open,
        b')' => Tok::Close,
        b'[' => Tok::OpenBracket,
        b']' => Tok::CloseBracket,
        b',' => Tok::Comma,
        b'.' => Tok::Dot,
        b'+' => Tok::Plus,
        b'-' => Tok::Minus,
        b'=' => Tok::Cmp(Cmp::Eq),
        _ => return None,
    })
}

/// `<`, `<=`, `<>`, `>` or `>=` at `at`, and where it ends.
fn comparator(bytes: &[u8], at: usize) -> (Tok, usize) {
    let cmp = match (bytes[at], bytes.get(at + 1)) {
        (b'<', Some(b'>')) => Cmp::Ne,
        (b'<', Some(b'=')) => Cmp::Le,
        (b'>', Some(b'=')) => Cmp::Ge,
        (b'<', _) => return (Tok::Cmp(Cmp::Lt), at + 1),
        _ => return (Tok::Cmp(Cmp::Gt), at + 1),
    };
    (Tok::Cmp(cmp), at + 2)
}

/// Splits `text` into tokens; on a character no token starts with, its offset.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, usize> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let (tok, end) = match b {
            b'#' | b':' => {
                let end = word_end(bytes, at + 1);
                if end == at + 1 {
                    return Err(at);
                }
                let word = text[at..end].to_owned();
                let tok = if b == b'#' {
                    Tok::Name(word)
                } else {
                    Tok::Value(word)
                };
                (tok, end)
            }
            b if is_word_byte(b) => {
                let end = word_end(bytes, at);
                let word = text[at..end].to_owned();
                let digits = word.bytes().all(|d| d.is_ascii_digit());
                (
                    if digits {
                        Tok::Int(word)
                    } else {
                        Tok::Word(word)
                    },
                    end,
                )
            }
            b'<' | b'>' => comparator(bytes, at),
            _ => (punctuation(b).ok_or(at)?, at + 1),
        };
        tokens.push(Token {
            tok,
            start: at,
            end,
        });
        at = end;
    }
    Ok(tokens)
}

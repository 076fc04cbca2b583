//! A small YAML reader for `template.yaml`: the block style it is written in,
//! CloudFormation tags such as `!Ref` and `!GetAtt` included. It refuses what it
//! does not know (anchors, aliases, several documents) rather than misread it.

/// A YAML node as far as the template needs: tags are kept, scalars stay text.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Null,
    Scalar(String),
    Tagged(String, Box<Yaml>),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn path(&self, keys: &[&str]) -> Option<&Yaml> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }
}

/// One meaningful line: indentation and text, comments stripped.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
}

fn strip_comment(text: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || bytes[i - 1] == b' ') => {
                return text[..i].trim_end();
            }
            _ => {}
        }
    }
    text.trim_end()
}

struct Reader {
    lines: Vec<Line>,
    pos: usize,
}

impl Reader {
    fn new(text: &str) -> Self {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            assert!(
                !raw.contains('\t'),
                "line {}: tabs are not YAML indentation",
                i + 1
            );
            let text = strip_comment(raw);
            if text.trim().is_empty() {
                continue;
            }
            let indent = text.len() - text.trim_start().len();
            let text = text.trim_start().to_owned();
            assert!(
                text != "---" && text != "...",
                "line {}: one document only",
                i + 1
            );
            lines.push(Line {
                number: i + 1,
                indent,
                text,
            });
        }
        Reader { lines, pos: 0 }
    }

    fn peek(&self) -> Option<&Line> {
        self.lines.get(self.pos)
    }

    fn document(mut self) -> Yaml {
        let root = self.block(0);
        if let Some(line) = self.peek() {
            panic!("line {}: unexpected {:?}", line.number, line.text);
        }
        root
    }

    /// The node whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize) -> Yaml {
        let Some(line) = self.peek() else {
            return Yaml::Null;
        };
        assert_eq!(line.indent, indent, "line {}: bad indentation", line.number);
        if is_item(&line.text) {
            self.sequence(indent)
        } else if split_key(&line.text).is_some() {
            self.mapping(indent)
        } else {
            // A value on its own line (a sequence item such as `- !GetAtt A.Arn`).
            let line = line.clone();
            self.pos += 1;
            if line.text.starts_with('!') && !line.text.contains(' ') {
                let value = self.nested(indent);
                Yaml::Tagged(line.text, Box::new(value))
            } else {
                inline(&line.text, line.number)
            }
        }
    }

    fn sequence(&mut self, indent: usize) -> Yaml {
        let mut items = Vec::new();
        while let Some(line) = self.peek().cloned() {
            if line.indent != indent || !is_item(&line.text) {
                break;
            }
            let content = line.text[1..].trim_start();
            if content.is_empty() {
                self.pos += 1;
                items.push(self.nested(indent));
                continue;
            }
            if matches!(content, "|" | ">" | "|-" | ">-") {
                // A block scalar item (`!Sub` then `- |`, the text, `- vars`).
                self.pos += 1;
                items.push(self.block_scalar(indent));
                continue;
            }
            // `- x`: read `x` as if it stood on its own line at its column.
            let column = indent + (line.text.len() - content.len());
            self.lines[self.pos] = Line {
                number: line.number,
                indent: column,
                text: content.to_owned(),
            };
            items.push(self.block(column));
        }
        Yaml::Seq(items)
    }

    fn mapping(&mut self, indent: usize) -> Yaml {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        while let Some(line) = self.peek().cloned() {
            if line.indent != indent || is_item(&line.text) {
                break;
            }
            let (key, rest) = split_key(&line.text).unwrap_or_else(|| {
                panic!("line {}: not `key: value`: {:?}", line.number, line.text)
            });
            assert!(
                !entries.iter().any(|(k, _)| k == &key),
                "line {}: duplicate key {key}",
                line.number
            );
            self.pos += 1;
            let value = if rest.is_empty() {
                self.nested_or_same_level_sequence(indent)
            } else if rest.starts_with('|') || rest.starts_with('>') {
                self.block_scalar(indent)
            } else if let Some((tag, "|" | ">" | "|-" | ">-")) =
                rest.split_once(' ').filter(|(tag, _)| tag.starts_with('!'))
            {
                // A tagged block scalar (`!Sub |` then the text).
                Yaml::Tagged(tag.to_owned(), Box::new(self.block_scalar(indent)))
            } else if rest.starts_with('!') && !rest.contains(' ') {
                // A tag alone: its value is the block below (`!Join` then `- ...`).
                let value = self.nested_or_same_level_sequence(indent);
                Yaml::Tagged(rest.to_owned(), Box::new(value))
            } else {
                inline(&rest, line.number)
            };
            entries.push((key, value));
        }
        Yaml::Map(entries)
    }

    /// The block under a line at `indent` (deeper), or nothing.
    fn nested(&mut self, indent: usize) -> Yaml {
        match self.peek() {
            Some(next) if next.indent > indent => {
                let deeper = next.indent;
                self.block(deeper)
            }
            _ => Yaml::Null,
        }
    }

    /// As [`Reader::nested`], also taking a sequence at the key's own indent.
    fn nested_or_same_level_sequence(&mut self, indent: usize) -> Yaml {
        match self.peek() {
            Some(next) if next.indent == indent && is_item(&next.text) => self.sequence(indent),
            _ => self.nested(indent),
        }
    }

    fn block_scalar(&mut self, indent: usize) -> Yaml {
        let mut text = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent <= indent {
                break;
            }
            text.push(line.text.clone());
            self.pos += 1;
        }
        Yaml::Scalar(text.join(" "))
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` (rest may be empty); keys are plain or quoted.
fn split_key(text: &str) -> Option<(String, String)> {
    let (key, rest) = if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted.find('"')?;
        (
            quoted[..end].to_owned(),
            quoted[end + 1..].strip_prefix(':')?,
        )
    } else {
        let at = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..at].to_owned(), &text[at + 1..])
    };
    assert!(
        !key.starts_with(['&', '*', '?', '[', '{']),
        "unsupported YAML key {key:?}"
    );
    Some((key, rest.trim().to_owned()))
}

/// A value written on one line: scalar, tag, flow sequence or flow mapping.
fn inline(text: &str, number: usize) -> Yaml {
    let mut chars: Vec<char> = text.chars().collect();
    chars.push('\n');
    let mut at = 0;
    let value = flow(&chars, &mut at, number, false);
    skip_spaces(&chars, &mut at);
    assert!(
        chars[at] == '\n',
        "line {number}: unexpected text after {text:?}"
    );
    value
}

fn skip_spaces(chars: &[char], at: &mut usize) {
    while chars[*at] == ' ' {
        *at += 1;
    }
}

fn flow(chars: &[char], at: &mut usize, number: usize, nested: bool) -> Yaml {
    skip_spaces(chars, at);
    let c = chars[*at];
    assert!(
        !matches!(c, '&' | '*'),
        "line {number}: anchors and aliases are not supported"
    );
    if c == '!' {
        let start = *at;
        while !matches!(chars[*at], ' ' | '\n' | ',' | ']' | '}') {
            *at += 1;
        }
        let tag: String = chars[start..*at].iter().collect();
        let value = flow(chars, at, number, nested);
        return Yaml::Tagged(tag, Box::new(value));
    }
    if c == '[' {
        *at += 1;
        let mut items = Vec::new();
        loop {
            skip_spaces(chars, at);
            if chars[*at] == ']' {
                *at += 1;
                return Yaml::Seq(items);
            }
            items.push(flow(chars, at, number, true));
            skip_spaces(chars, at);
            match chars[*at] {
                ',' => *at += 1,
                ']' => {}
                other => panic!("line {number}: unexpected {other:?} in a flow sequence"),
            }
        }
    }
    if c == '{' {
        *at += 1;
        let mut entries = Vec::new();
        loop {
            skip_spaces(chars, at);
            if chars[*at] == '}' {
                *at += 1;
                return Yaml::Map(entries);
            }
            let start = *at;
            while chars[*at] != ':' {
                assert!(
                    chars[*at] != '\n',
                    "line {number}: a flow mapping needs `key: value`"
                );
                *at += 1;
            }
            let key: String = chars[start..*at]
                .iter()
                .collect::<String>()
                .trim()
                .to_owned();
            *at += 1;
            let value = flow(chars, at, number, true);
            entries.push((key, value));
            skip_spaces(chars, at);
            match chars[*at] {
                ',' => *at += 1,
                '}' => {}
                other => panic!("line {number}: unexpected {other:?} in a flow mapping"),
            }
        }
    }
    if c == '"' || c == '\'' {
        *at += 1;
        let mut text = String::new();
        while chars[*at] != c {
            assert!(chars[*at] != '\n', "line {number}: unterminated string");
            if c == '"' && chars[*at] == '\\' {
                *at += 1;
            }
            text.push(chars[*at]);
            *at += 1;
        }
        *at += 1;
        return Yaml::Scalar(text);
    }
    let start = *at;
    while chars[*at] != '\n' && !(nested && matches!(chars[*at], ',' | ']' | '}')) {
        *at += 1;
    }
    let text: String = chars[start..*at].iter().collect();
    let text = text.trim();
    if text.is_empty() || text == "~" || text == "null" {
        Yaml::Null
    } else {
        Yaml::Scalar(text.to_owned())
    }
}

pub fn parse(text: &str) -> Yaml {
    Reader::new(text).document()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_handles_the_template_style() {
        let yaml = parse(
            "# a comment
Description: >-
  two lines
  of text
Top:
  Tags: [!Ref A, \"x, y\", 'z']   # trailing comment
  Join: !Join
    - \",\"
    - - !GetAtt A.Arn
      - !GetAtt B.Arn
  If: !If [Cond, shard, partition-key]
  Sub: !Sub arn:${AWS::Partition}:kinesis:*:stream/*
  List:
  - Name: a
    Value: 1
  - Name: b
  Empty:
  Flow: {Type: SQS, N: 3}
  SubVars: !Sub
    - |
      {\"a\": \"${X}\",
       \"b\": 1}
    - X: !Ref Y
",
        );
        assert_eq!(
            yaml.get("Description").unwrap().as_str(),
            Some("two lines of text")
        );
        let top = yaml.get("Top").unwrap();
        let s = |t: &str| Yaml::Scalar(t.into());
        let tag = |t: &str, v: Yaml| Yaml::Tagged(t.into(), Box::new(v));
        assert_eq!(
            top.get("Tags").unwrap(),
            &Yaml::Seq(vec![tag("!Ref", s("A")), s("x, y"), s("z")])
        );
        assert_eq!(
            top.get("Join").unwrap(),
            &tag(
                "!Join",
                Yaml::Seq(vec![
                    s(","),
                    Yaml::Seq(vec![tag("!GetAtt", s("A.Arn")), tag("!GetAtt", s("B.Arn"))])
                ])
            )
        );
        assert_eq!(
            top.get("If").unwrap(),
            &tag(
                "!If",
                Yaml::Seq(vec![s("Cond"), s("shard"), s("partition-key")])
            )
        );
        assert_eq!(
            top.get("Sub").unwrap(),
            &tag("!Sub", s("arn:${AWS::Partition}:kinesis:*:stream/*"))
        );
        assert_eq!(
            top.get("List").unwrap(),
            &Yaml::Seq(vec![
                Yaml::Map(vec![("Name".into(), s("a")), ("Value".into(), s("1"))]),
                Yaml::Map(vec![("Name".into(), s("b"))]),
            ])
        );
        assert_eq!(top.get("Empty"), Some(&Yaml::Null));
        assert_eq!(
            top.get("Flow").unwrap(),
            &Yaml::Map(vec![("Type".into(), s("SQS")), ("N".into(), s("3"))])
        );
        assert_eq!(
            top.get("SubVars").unwrap(),
            &tag(
                "!Sub",
                Yaml::Seq(vec![
                    s("{\"a\": \"${X}\", \"b\": 1}"),
                    Yaml::Map(vec![("X".into(), tag("!Ref", s("Y")))]),
                ])
            )
        );
    }

    #[test]
    #[should_panic(expected = "anchors and aliases are not supported")]
    fn the_reader_refuses_what_it_does_not_know() {
        parse("A: &anchor 1\nB: *anchor\n");
    }
}

//! Checks on `template.yaml` (AWS SAM) that cfn-lint cannot know about:
//!
//! - every Kinesis event source (a function's `Kinesis` event, or an
//!   `AWS::Lambda::EventSourceMapping`) has `FunctionResponseTypes` with
//!   `ReportBatchItemFailures`: without it Lambda ignores Shardline's answer and
//!   retries whole batches;
//! - the ordered functions (fanout, ledger) retry without limit, so the
//!   parent-shard guard's whole-batch failures cannot run into Lambda dropping
//!   records; every limit is in Lambda's range;
//! - each function is built by cargo-lambda from a binary of this workspace,
//!   on `provided.al2023` with handler `bootstrap`;
//! - the heartbeat source's maximum record age is not below the largest active
//!   window the template allows (Lambda would drop heartbeats still in it).
//!
//! The template is read with a small YAML reader for the block style it is
//! written in (CloudFormation tags such as `!Ref` and `!GetAtt` included); it
//! refuses what it does not know (anchors, aliases, several documents) rather
//! than misread it. `scripts/lint-template.sh` runs the same event-source checks
//! on cfn-lint's own parse of the template.

use std::path::{Path, PathBuf};

/// A YAML node as far as the template needs: tags are kept, scalars stay text.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    Scalar(String),
    Tagged(String, Box<Yaml>),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn path(&self, keys: &[&str]) -> Option<&Yaml> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
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

fn parse(text: &str) -> Yaml {
    Reader::new(text).document()
}

// --- The checks -----------------------------------------------------------------

/// Functions whose records must never be skipped.
const ORDERED: [&str; 2] = ["FanoutFunction", "LedgerFunction"];

fn number(node: Option<&Yaml>) -> Option<i64> {
    node.and_then(Yaml::as_str).and_then(|s| s.parse().ok())
}

/// What is wrong with the template's Kinesis event sources; how many there are.
fn event_source_problems(template: &Yaml) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    let resources = template.get("Resources").expect("a Resources section");
    for (name, resource) in resources.entries() {
        let props = resource.get("Properties");
        match resource.get("Type").and_then(Yaml::as_str) {
            Some("AWS::Serverless::Function") => {
                let events = props.and_then(|p| p.get("Events"));
                for (event, spec) in events.map(Yaml::entries).unwrap_or_default() {
                    if spec.get("Type").and_then(Yaml::as_str) == Some("Kinesis") {
                        sources.push((
                            format!("{name}.Events.{event}"),
                            spec.get("Properties"),
                            ORDERED.contains(&name.as_str()),
                        ));
                    }
                }
            }
            Some("AWS::Lambda::EventSourceMapping") => sources.push((name.clone(), props, false)),
            _ => {}
        }
    }
    for (place, props, ordered) in &sources {
        let reports = matches!(
            props.and_then(|p| p.get("FunctionResponseTypes")),
            Some(Yaml::Seq(types)) if types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures"))
        );
        if !reports {
            problems.push(format!(
                "{place}: no FunctionResponseTypes: [ReportBatchItemFailures]"
            ));
        }
        let retries = number(props.and_then(|p| p.get("MaximumRetryAttempts")));
        let age = number(props.and_then(|p| p.get("MaximumRecordAgeInSeconds")));
        if retries.is_some_and(|r| !(-1..=10_000).contains(&r)) {
            problems.push(format!(
                "{place}: MaximumRetryAttempts {retries:?} out of -1..10000"
            ));
        }
        if age.is_some_and(|a| a != -1 && !(60..=604_800).contains(&a)) {
            problems.push(format!(
                "{place}: MaximumRecordAgeInSeconds {age:?} out of range"
            ));
        }
        if *ordered && (retries, age) != (Some(-1), Some(-1)) {
            problems.push(format!(
                "{place}: an ordered function retries without limit \
                 (MaximumRetryAttempts -1, MaximumRecordAgeInSeconds -1), got {retries:?}, {age:?}"
            ));
        }
    }
    (problems, sources.len())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    parse(&text)
}

#[test]
fn every_kinesis_event_source_reports_batch_item_failures_and_retries_safely() {
    let template = template();
    assert_eq!(
        template.get("Transform").and_then(Yaml::as_str),
        Some("AWS::Serverless-2016-10-31")
    );
    let (problems, sources) = event_source_problems(&template);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(sources, 3, "one Kinesis event source per function");
}

#[test]
fn every_function_is_a_workspace_binary_built_by_cargo_lambda() {
    let template = template();
    let globals = template
        .path(&["Globals", "Function"])
        .expect("Globals.Function");
    assert_eq!(
        globals.get("Runtime").and_then(Yaml::as_str),
        Some("provided.al2023")
    );
    assert_eq!(
        globals.get("Handler").and_then(Yaml::as_str),
        Some("bootstrap")
    );
    assert_eq!(
        globals.get("Architectures"),
        Some(&Yaml::Seq(vec![Yaml::Tagged(
            "!Ref".into(),
            Box::new(Yaml::Scalar("Architecture".into()))
        )]))
    );
    let mut binaries = Vec::new();
    for (name, resource) in template.get("Resources").unwrap().entries() {
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            resource
                .path(&["Metadata", "BuildMethod"])
                .and_then(Yaml::as_str),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = resource
            .path(&["Metadata", "BuildProperties", "Binary"])
            .and_then(Yaml::as_str)
            .unwrap_or_else(|| panic!("{name}: Metadata.BuildProperties.Binary"));
        assert!(
            workspace()
                .join("functions")
                .join(binary)
                .join("Cargo.toml")
                .is_file(),
            "{name}: no package functions/{binary}"
        );
        assert_eq!(
            resource
                .path(&["Properties", "CodeUri"])
                .and_then(Yaml::as_str),
            Some("."),
            "{name}: CodeUri is the workspace root"
        );
        assert!(
            matches!(resource.path(&["Properties", "Role"]), Some(Yaml::Tagged(tag, _)) if tag == "!GetAtt"),
            "{name}: its own role"
        );
        binaries.push(binary.to_owned());
    }
    binaries.sort();
    assert_eq!(binaries, ["active-users", "fanout", "ledger"]);
}

#[test]
fn the_check_finds_a_missing_response_type_and_unsafe_retries() {
    let bad = parse(
        "Resources:
  LedgerFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Ledger:
          Type: Kinesis
          Properties:
            Stream: !GetAtt LedgerStream.Arn
            MaximumRetryAttempts: 10
            MaximumRecordAgeInSeconds: -1
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionResponseTypes: [ReportBatchItemFailures]
      MaximumRecordAgeInSeconds: 30
",
    );
    let (problems, sources) = event_source_problems(&bad);
    assert_eq!(sources, 2);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("LedgerFunction.Events.Ledger: no FunctionResponseTypes"));
    assert!(problems[1].contains("an ordered function retries without limit"));
    assert!(problems[2].contains("Mapping: MaximumRecordAgeInSeconds"));
}

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
}

#[test]
#[should_panic(expected = "anchors and aliases are not supported")]
fn the_reader_refuses_what_it_does_not_know() {
    parse("A: &anchor 1\nB: *anchor\n");
}

#[test]
fn the_heartbeat_source_never_drops_a_record_still_in_the_window() {
    let template = template();
    let window_max = number(template.path(&["Parameters", "ActiveWindowSeconds", "MaxValue"]))
        .expect("ActiveWindowSeconds.MaxValue");
    let age = number(template.path(&[
        "Resources",
        "ActiveUsersFunction",
        "Properties",
        "Events",
        "Heartbeats",
        "Properties",
        "MaximumRecordAgeInSeconds",
    ]))
    .expect("the heartbeat source's MaximumRecordAgeInSeconds");
    assert!(
        age == -1 || age >= window_max,
        "Lambda would drop heartbeats of {age} s, inside a window of up to {window_max} s"
    );
    assert!(
        matches!(
            template.path(&[
                "Resources",
                "ActiveUsersFunction",
                "Properties",
                "Environment",
                "Variables",
                "ACTIVE_WINDOW_SECONDS"
            ]),
            Some(Yaml::Tagged(tag, value)) if tag == "!Ref" && value.as_str() == Some("ActiveWindowSeconds")
        ),
        "ACTIVE_WINDOW_SECONDS comes from the parameter"
    );
}

#[test]
fn the_readme_and_the_template_agree_on_bisect() {
    let template = template();
    let resources = template.get("Resources").expect("a Resources section");
    let mut bisect = Vec::new();
    for (name, resource) in resources.entries() {
        let events = resource.get("Properties").and_then(|p| p.get("Events"));
        for (_, spec) in events.map(Yaml::entries).unwrap_or_default() {
            if spec.get("Type").and_then(Yaml::as_str) == Some("Kinesis") {
                let on = spec
                    .get("Properties")
                    .and_then(|p| p.get("BisectBatchOnFunctionError"))
                    .and_then(Yaml::as_str);
                bisect.push((name.clone(), on.map(str::to_owned)));
            }
        }
    }
    assert_eq!(bisect.len(), 3);
    assert!(
        bisect.iter().all(|(_, on)| on.as_deref() == Some("true")),
        "{bisect:?}"
    );
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    assert!(
        readme.contains("`BisectBatchOnFunctionError` is on for every function in the template"),
        "the README says what the template does"
    );
}

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
//!   window the template allows (Lambda would drop heartbeats still in it);
//! - the key-counts source has a tumbling window within Lambda's 1 to 900
//!   seconds and one batch per shard at a time (its state is one per shard).
//!
//! The template is read with a small YAML reader for the block style it is
//! written in (CloudFormation tags such as `!Ref` and `!GetAtt` included); it
//! refuses what it does not know (anchors, aliases, several documents) rather
//! than misread it. `scripts/lint-template.sh` runs the same event-source checks
//! on cfn-lint's own parse of the template.

use std::path::{Path, PathBuf};

use shardline_tests::yaml::{Yaml, parse};

#[path = "template/managed_instances.rs"]
mod managed_instances;
#[path = "template/mapping_metrics.rs"]
mod mapping_metrics;
#[path = "template/options.rs"]
mod options;

// --- The checks -----------------------------------------------------------------

/// Functions whose records must never be skipped (their twins on Lambda
/// Managed Instances, `<Name>ManagedFunction`, too).
const ORDERED: [&str; 3] = ["FanoutFunction", "LedgerFunction", "KeyCountsFunction"];

/// Whether `name` (a function or its twin on Lambda Managed Instances) is ordered.
fn is_ordered(name: &str) -> bool {
    ORDERED.contains(&name.replace("ManagedFunction", "Function").as_str())
}

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
                            is_ordered(name),
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
    assert_eq!(
        sources, 8,
        "one Kinesis event source per function and per twin on Lambda Managed Instances"
    );
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
    // Each function and its twin on Lambda Managed Instances.
    assert_eq!(
        binaries,
        ["active-users", "active-users", "fanout", "fanout"]
            .into_iter()
            .chain(["key-counts", "key-counts", "ledger", "ledger"])
            .collect::<Vec<_>>()
    );
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
    assert_eq!(bisect.len(), 8, "four functions and their twins");
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

#[test]
fn the_key_counts_source_has_a_tumbling_window_and_one_batch_per_shard() {
    let template = template();
    let source = template
        .path(&[
            "Resources",
            "KeyCountsFunction",
            "Properties",
            "Events",
            "KeyCounts",
            "Properties",
        ])
        .expect("the key-counts event source");
    assert!(
        matches!(source.get("TumblingWindowInSeconds"), Some(Yaml::Tagged(tag, name))
            if tag == "!Ref" && name.as_str() == Some("TumblingWindowSeconds")),
        "{:?}",
        source.get("TumblingWindowInSeconds")
    );
    assert_eq!(number(source.get("ParallelizationFactor")), Some(1));
    let parameter = template
        .path(&["Parameters", "TumblingWindowSeconds"])
        .expect("the window parameter");
    let bound = |name| number(parameter.get(name));
    assert_eq!((bound("MinValue"), bound("MaxValue")), (Some(1), Some(900)));
    assert!(bound("Default").is_some_and(|d| (1..=900).contains(&d)));
}

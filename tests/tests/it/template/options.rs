//! The operating options of the template (issue 13): alarms and a dashboard per
//! function from Shardline's EMF metrics, and the event source options
//! (enhanced fan-out, filtering, on-failure destination, AT_TIMESTAMP, a
//! customer managed stream key), checked on `template.yaml` and on a copy whose
//! parameter defaults are the non-default values of
//! `tests/template-non-default.params` (`scripts/lint-template.sh --non-default`
//! lints the same copy with cfn-lint).

use shardline_tests::yaml::{Yaml, parse};

use super::{event_source_problems, workspace};

/// Each function: its logical id prefix, its binary, its stream, its Kinesis event.
pub(super) const FUNCTIONS: [(&str, &str, &str, &str); 4] = [
    ("Fanout", "fanout", "SourceStream", "Source"),
    (
        "ActiveUsers",
        "active-users",
        "HeartbeatStream",
        "Heartbeats",
    ),
    ("Ledger", "ledger", "LedgerStream", "Ledger"),
    ("KeyCounts", "key-counts", "KeyCountsStream", "KeyCounts"),
];

pub(super) fn tagged<'a>(node: Option<&'a Yaml>, tag: &str) -> Option<&'a Yaml> {
    match node {
        Some(Yaml::Tagged(t, value)) if t == tag => Some(value),
        _ => None,
    }
}

pub(super) fn is_ref(node: Option<&Yaml>, name: &str) -> bool {
    tagged(node, "!Ref").and_then(Yaml::as_str) == Some(name)
}

pub(super) fn seq(node: Option<&Yaml>) -> &[Yaml] {
    match node {
        Some(Yaml::Seq(items)) => items,
        _ => &[],
    }
}

/// `!If [condition, then, else]` as its three parts.
pub(super) fn if_parts(node: Option<&Yaml>) -> Option<(&str, &Yaml, &Yaml)> {
    match seq(tagged(node, "!If")) {
        [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
        _ => None,
    }
}

/// The name a function gives `App::build`/`App::new`: the metrics' `Function` dimension.
fn app_name(binary: &str) -> String {
    let main = workspace()
        .join("functions")
        .join(binary)
        .join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let at = text
        .find("App::build(\"")
        .or_else(|| text.find("App::new(\""))
        .expect("App::build or App::new");
    let rest = &text[at..];
    let start = rest.find('"').unwrap() + 1;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].to_owned()
}

/// The body of the dashboard of the function `logical` (the text of its
/// `!Sub`, alone or with its variables), or "".
pub(super) fn dashboard_body<'a>(resources: &'a Yaml, logical: &str) -> &'a str {
    let sub = resources
        .path(&[
            &format!("{logical}Dashboard"),
            "Properties",
            "DashboardBody",
        ])
        .and_then(|b| tagged(Some(b), "!Sub"));
    match sub {
        Some(Yaml::Seq(parts)) => parts.first().and_then(Yaml::as_str),
        other => other.and_then(Yaml::as_str),
    }
    .unwrap_or_default()
}

/// The variables of the dashboard's `!Sub [text, variables]`, if it has them.
pub(super) fn dashboard_variables<'a>(resources: &'a Yaml, logical: &str) -> Option<&'a Yaml> {
    let sub = resources.path(&[
        &format!("{logical}Dashboard"),
        "Properties",
        "DashboardBody",
    ]);
    seq(tagged(sub, "!Sub")).get(1)
}

/// What is wrong with the alarms and dashboards of `template`.
fn alarm_problems(template: &Yaml) -> Vec<String> {
    let metrics_doc =
        std::fs::read_to_string(workspace().join("shared/src/metrics/mod.rs")).unwrap();
    let resources = template.get("Resources").unwrap();
    let mut problems = Vec::new();
    for (logical, binary, _, _) in FUNCTIONS {
        let function = app_name(binary);
        let alarms = [
            (
                "IteratorAgeAlarm",
                "IteratorAgeAlarmMs",
                vec!["IteratorAge"],
            ),
            (
                "QuarantineAlarm",
                "QuarantinedAlarmThreshold",
                vec![
                    "QuarantinedPermanent",
                    "QuarantinedExhausted",
                    "QuarantinedUndecodable",
                ],
            ),
            (
                "GuardHoldAlarm",
                "GuardHoldAlarmMinutes",
                vec!["BlockedOnParent"],
            ),
            ("ErrorsAlarm", "ErrorsAlarmThreshold", vec![]),
        ];
        for (suffix, parameter, metrics) in alarms {
            let name = format!("{logical}{suffix}");
            let Some(alarm) = resources.get(&name) else {
                problems.push(format!("no {name}"));
                continue;
            };
            let props = alarm.get("Properties").unwrap();
            let threshold_refs = is_ref(props.get("Threshold"), parameter)
                || is_ref(props.get("EvaluationPeriods"), parameter);
            if !threshold_refs {
                problems.push(format!(
                    "{name}: its threshold is not the parameter {parameter}"
                ));
            }
            for action in ["AlarmActions", "OKActions"] {
                if if_parts(props.get(action)).map(|p| p.0) != Some("HasAlarmTopic") {
                    problems.push(format!("{name}: {action} is not the optional topic"));
                }
            }
            let text = format!("{props:?}");
            for metric in metrics {
                // The metric is one Shardline writes, under this function's name.
                if !metrics_doc.contains(&format!("`{metric}`")) {
                    problems.push(format!("{name}: Shardline writes no metric {metric}"));
                }
                if !text.contains(&format!("Scalar(\"{metric}\")"))
                    || !text.contains(&format!("Scalar(\"{function}\")"))
                {
                    problems.push(format!("{name}: not on {metric} of Function {function}"));
                }
            }
        }
        let dashboard = dashboard_body(resources, logical);
        let body: serde_json::Value = serde_json::from_str(dashboard).unwrap_or_default();
        let shown = body.to_string();
        for metric in [
            "IteratorAge",
            "RecordsProcessed",
            "QuarantinedPermanent",
            "BatchDuration",
        ] {
            if !shown.contains(&format!("\"{metric}\",\"Function\",\"{function}\"")) {
                problems.push(format!("{logical}Dashboard: no {metric} of {function}"));
            }
        }
    }
    problems
}

/// What is wrong with the event source options and the grants that go with them.
fn option_problems(template: &Yaml) -> Vec<String> {
    let resources = template.get("Resources").unwrap();
    let mut problems = Vec::new();
    for (logical, _, stream, event) in FUNCTIONS {
        let source = resources
            .path(&[
                &format!("{logical}Function"),
                "Properties",
                "Events",
                event,
                "Properties",
            ])
            .unwrap();
        let consumer = format!("{logical}Consumer");
        match if_parts(source.get("Stream")) {
            Some(("Enhanced", then, otherwise))
                if is_ref(Some(then), &consumer)
                    && tagged(Some(otherwise), "!GetAtt").and_then(Yaml::as_str)
                        == Some(&format!("{stream}.Arn")) => {}
            _ => problems.push(format!(
                "{logical}: Stream is not the consumer when enhanced"
            )),
        }
        if resources
            .path(&[&consumer, "Condition"])
            .and_then(Yaml::as_str)
            != Some("Enhanced")
            || resources.path(&[&consumer, "Type"]).and_then(Yaml::as_str)
                != Some("AWS::Kinesis::StreamConsumer")
        {
            problems.push(format!("{consumer}: no stream consumer made when enhanced"));
        }
        let checks = [
            ("StartingPositionTimestamp", "AtTimestamp"),
            ("FilterCriteria", &*format!("Filter{logical}")),
        ];
        for (property, condition) in checks {
            if if_parts(source.get(property)).map(|p| p.0) != Some(condition) {
                problems.push(format!("{logical}: {property} is not under {condition}"));
            }
        }
        let destination = source.path(&["DestinationConfig", "OnFailure", "Destination"]);
        if if_parts(destination).map(|p| p.0) != Some("FailureToS3") {
            problems.push(format!(
                "{logical}: the on-failure destination is not SQS or S3"
            ));
        }
        problems.extend(grant_problems(resources, logical, &consumer));
    }
    problems
}

/// The role's conditional statements: the consumer only, the stream key only.
fn grant_problems(resources: &Yaml, logical: &str, consumer: &str) -> Vec<String> {
    let statements = resources
        .path(&[&format!("{logical}Role"), "Properties", "Policies"])
        .map(|p| seq(Some(p)).to_vec())
        .unwrap_or_default();
    let statements: Vec<&Yaml> = statements
        .iter()
        .flat_map(|p| seq(p.path(&["PolicyDocument", "Statement"])))
        .collect();
    let conditional = |condition: &str| {
        statements
            .iter()
            .find_map(|s| if_parts(Some(s)).filter(|p| p.0 == condition))
            .map(|p| p.1.clone())
    };
    let mut problems = Vec::new();
    let efo = conditional("Enhanced");
    let actions = efo.as_ref().map(|s| format!("{:?}", s.get("Action")));
    if !efo
        .as_ref()
        .is_some_and(|s| is_ref(s.get("Resource"), consumer))
        || !actions.as_deref().is_some_and(|a| {
            a.contains("kinesis:SubscribeToShard") && a.contains("kinesis:DescribeStreamConsumer")
        })
    {
        problems.push(format!(
            "{logical}Role: no SubscribeToShard/DescribeStreamConsumer on {consumer} only"
        ));
    }
    let key = conditional("CustomStreamKey");
    let actions = key
        .as_ref()
        .map(|s| format!("{:?}", s.get("Action")))
        .unwrap_or_default();
    let writes = logical == "Fanout";
    if !key
        .as_ref()
        .is_some_and(|s| is_ref(s.get("Resource"), "StreamKmsKeyArn"))
        || !actions.contains("kms:Decrypt")
        || actions.contains("kms:GenerateDataKey") != writes
    {
        problems.push(format!(
            "{logical}Role: the stream key grant is not kms:Decrypt (and kms:GenerateDataKey for the writer) on StreamKmsKeyArn: {actions}"
        ));
    }
    problems
}

/// `template.yaml` with the parameters of `tests/template-non-default.params`
/// as defaults, and those values.
pub(super) fn non_default_variant() -> (String, Vec<(String, String)>) {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    non_default_copy(&text, "tests/template-non-default.params")
}

/// `text` (a template) with the parameters of the file `params` (relative to
/// the workspace) as defaults, and those values.
pub(super) fn non_default_copy(text: &str, params: &str) -> (String, Vec<(String, String)>) {
    let params = std::fs::read_to_string(workspace().join(params)).unwrap();
    let values: Vec<(String, String)> = params
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let mut section = String::new();
    let mut current: Option<&(String, String)> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut line = line.to_owned();
        if !line.is_empty() && !line.starts_with(' ') {
            section = line.clone();
        } else if section == "Parameters:" && line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.trim().trim_end_matches(':');
            current = values.iter().find(|(k, _)| k == name);
        } else if let Some((_, value)) = current.filter(|_| line.starts_with("    Default:")) {
            line = format!("    Default: '{}'", value.replace('\'', "''"));
        }
        out.push(line);
    }
    (out.join("\n"), values)
}

#[test]
fn every_function_has_its_alarms_and_dashboard_on_the_metrics_shardline_writes() {
    let problems = alarm_problems(&super::template());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_event_source_options_and_their_grants_are_in_place() {
    let problems = option_problems(&super::template());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_checks_find_a_missing_alarm_and_an_unscoped_grant() {
    let text = std::fs::read_to_string(workspace().join("template.yaml"))
        .unwrap()
        .replace("  LedgerGuardHoldAlarm:", "  LedgerGuardHoldAlarmGone:")
        .replace("Resource: !Ref ActiveUsersConsumer", "Resource: \"*\"");
    let template = parse(&text);
    let alarms = alarm_problems(&template);
    assert_eq!(alarms, ["no LedgerGuardHoldAlarm"]);
    let options = option_problems(&template);
    assert_eq!(options.len(), 1, "{options:#?}");
    assert!(
        options[0].starts_with("ActiveUsersRole: no SubscribeToShard"),
        "{options:#?}"
    );
}

#[test]
fn the_template_with_every_new_parameter_at_a_non_default_value_passes_the_same_checks() {
    let (text, values) = non_default_variant();
    let variant = parse(&text);
    let parameters = variant.get("Parameters").unwrap();
    let original = super::template();
    for (name, value) in &values {
        let now = parameters.path(&[name, "Default"]).and_then(Yaml::as_str);
        assert_eq!(
            now,
            Some(value.as_str()),
            "{name} took its non-default value"
        );
        let default = original
            .path(&["Parameters", name, "Default"])
            .and_then(Yaml::as_str);
        assert_ne!(
            default,
            Some(value.as_str()),
            "{name}: {value} is its default"
        );
        if let Some(Yaml::Seq(allowed)) = parameters.path(&[name, "AllowedValues"]) {
            assert!(
                allowed.iter().any(|a| a.as_str() == Some(value)),
                "{name}: {value}"
            );
        }
        if let Some(min) = parameters.path(&[name, "MinValue"]).and_then(Yaml::as_str) {
            assert!(
                value.parse::<i64>().unwrap() >= min.parse::<i64>().unwrap(),
                "{name}"
            );
        }
        if let Some(max) = parameters.path(&[name, "MaxValue"]).and_then(Yaml::as_str) {
            assert!(
                value.parse::<i64>().unwrap() <= max.parse::<i64>().unwrap(),
                "{name}"
            );
        }
        if name.ends_with("FilterPattern") {
            let pattern: serde_json::Value = serde_json::from_str(value).unwrap();
            assert!(
                pattern.get("data").is_some(),
                "Kinesis filters only on `data`"
            );
        }
    }
    // Every parameter this issue added is in the list.
    for name in [
        "ConsumerMode",
        "StartingPositionTimestamp",
        "FanoutFilterPattern",
        "FanoutAggregate",
        "ActiveUsersFilterPattern",
        "LedgerFilterPattern",
        "KeyCountsFilterPattern",
        "TumblingWindowSeconds",
        "OnFailureDestination",
        "StreamKmsKeyArn",
        "AlarmTopicArn",
        "IteratorAgeAlarmMs",
        "QuarantinedAlarmThreshold",
        "GuardHoldAlarmMinutes",
        "ErrorsAlarmThreshold",
        "FailedInvokeAlarmThreshold",
        "CapacityProviderArn",
        "PerExecutionEnvironmentMaxConcurrency",
        "ExecutionEnvironmentMemoryGiBPerVCpu",
    ] {
        assert!(
            values.iter().any(|(k, _)| k == name),
            "{name} is not in the variant"
        );
    }
    let (problems, sources) = event_source_problems(&variant);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(sources, 8);
    assert!(alarm_problems(&variant).is_empty());
    assert!(option_problems(&variant).is_empty());
}

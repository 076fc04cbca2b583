//! The event source mapping's own metrics (issue 22): every mapping turns on
//! `EventCount` (off by default in AWS), every function alarms on the records
//! its mapping dropped and on its failed invocations, and its dashboard shows
//! the mapping's counts. Checked on `template.yaml` and on the copy with every
//! parameter at a non-default value.

use shardline_tests::yaml::{Yaml, parse};

use super::options::{
    FUNCTIONS, dashboard_body, dashboard_variables, if_parts, is_ref, non_default_variant,
};
use super::workspace;

/// The metrics `EventCount` makes the mapping publish, all on the dashboard.
const MAPPING_METRICS: [&str; 6] = [
    "PolledEventCount",
    "FilteredOutEventCount",
    "InvokedEventCount",
    "FailedInvokeEventCount",
    "DroppedEventCount",
    "OnFailureDestinationDeliveredEventCount",
];

/// The alarms on the mapping: suffix, metric, and the threshold (a parameter,
/// or `None` for a fixed 0: a dropped record is always an incident with
/// `MaximumRetryAttempts: -1`).
const MAPPING_ALARMS: [(&str, &str, Option<&str>); 2] = [
    ("DroppedEventsAlarm", "DroppedEventCount", None),
    (
        "FailedInvokesAlarm",
        "FailedInvokeEventCount",
        Some("FailedInvokeAlarmThreshold"),
    ),
];

/// What is wrong with the mapping metrics of `template`.
fn mapping_metric_problems(template: &Yaml) -> Vec<String> {
    let resources = template.get("Resources").unwrap();
    let mut problems = Vec::new();
    for (logical, _, _, event) in FUNCTIONS {
        let mapping = format!("{logical}Function{event}");
        let metrics = resources.path(&[
            &format!("{logical}Function"),
            "Properties",
            "Events",
            event,
            "Properties",
            "MetricsConfig",
            "Metrics",
        ]);
        if !format!("{metrics:?}").contains("Scalar(\"EventCount\")") {
            problems.push(format!("{mapping}: no MetricsConfig with EventCount"));
        }
        for (suffix, metric, parameter) in MAPPING_ALARMS {
            let name = format!("{logical}{suffix}");
            let Some(props) = resources.path(&[&name, "Properties"]) else {
                problems.push(format!("no {name}"));
                continue;
            };
            if props.get("MetricName").and_then(Yaml::as_str) != Some(metric) {
                problems.push(format!("{name}: not on {metric}"));
            }
            let dimension = format!("{:?}", props.get("Dimensions"));
            if !dimension.contains("Scalar(\"EventSourceMappingUUID\")")
                || !dimension.contains(&format!("Scalar(\"{mapping}\")"))
            {
                problems.push(format!("{name}: not on the mapping {mapping}"));
            }
            let threshold = props.get("Threshold");
            let right = match parameter {
                Some(parameter) => is_ref(threshold, parameter),
                None => threshold.and_then(Yaml::as_str) == Some("0"),
            };
            if !right {
                problems.push(format!("{name}: threshold {threshold:?}"));
            }
        }
        // `${Mapping}`: the mapping of the function, or of its twin on Lambda
        // Managed Instances, whichever the stack has.
        let twin = format!("{logical}ManagedFunction{event}");
        let variable = dashboard_variables(resources, logical).and_then(|v| v.get("Mapping"));
        let picks = matches!(if_parts(variable), Some(("Managed", then, otherwise))
            if is_ref(Some(then), &twin) && is_ref(Some(otherwise), &mapping));
        if !picks {
            problems.push(format!(
                "{logical}Dashboard: Mapping is not !If [Managed, {twin}, {mapping}]"
            ));
        }
        let body = dashboard_body(resources, logical);
        for metric in MAPPING_METRICS {
            let shown = format!(
                "[\"AWS/Lambda\", \"{metric}\", \"EventSourceMappingUUID\", \"${{Mapping}}\"]"
            );
            if !body.contains(&shown) {
                problems.push(format!("{logical}Dashboard: no {metric} of {mapping}"));
            }
        }
    }
    problems
}

#[test]
fn every_mapping_counts_its_events_and_each_function_alarms_on_dropped_and_failed_records() {
    let problems = mapping_metric_problems(&super::template());
    assert!(problems.is_empty(), "{problems:#?}");
    let (variant, _) = non_default_variant();
    let problems = mapping_metric_problems(&parse(&variant));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_check_finds_a_mapping_without_its_metrics_and_a_missing_alarm() {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let without = text.replacen("              Metrics: [EventCount]\n", "", 1);
    let without = without.replacen("            MetricsConfig:\n", "", 1);
    let without = without.replace(
        "  LedgerDroppedEventsAlarm:",
        "  LedgerDroppedEventsAlarmGone:",
    );
    assert_eq!(
        mapping_metric_problems(&parse(&without)),
        [
            "FanoutFunctionSource: no MetricsConfig with EventCount",
            "no LedgerDroppedEventsAlarm"
        ]
    );
}

//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on stdout
//! per Lambda invocation, which CloudWatch Logs turns into metrics with no API
//! call and no extra latency.
//!
//! A document looks like this (one line in the log; spread out here):
//!
//! ```json
//! {"_aws": {"Timestamp": 1763790000000,
//!           "CloudWatchMetrics": [{"Namespace": "Shardline",
//!                                  "Dimensions": [["Function"]],
//!                                  "Metrics": [{"Name": "RecordsProcessed", "Unit": "Count"}, ...]}]},
//!  "Function": "ledger", "RequestId": "...", "RecordsProcessed": 12, ...}
//! ```
//!
//! Every metric has the one dimension `Function` (the name given to
//! [`crate::App::new`]), so dashboards and alarms do not change when a stack is
//! deployed again under a new Lambda function name. `RequestId` rides along as a
//! property (searchable in Logs Insights, not a dimension).
//!
//! | metric | unit | what |
//! |---|---|---|
//! | `RecordsReceived` | Count | user records in the event (KPL aggregates by their user records) |
//! | `RecordsProcessed` | Count | records the handler processed |
//! | `SkippedCheckpointed` | Count | records at or below the checkpoint (a retry re-delivered them) |
//! | `SkippedStale` | Count | records older than the maximum record age |
//! | `SkippedDuplicate` | Count | dedup hits: records whose dedup key another record holds |
//! | `RecordsFailed` | Count | records reported for retry (retryable failure, or a failed flush) |
//! | `RecordsNotStarted` | Count | records after a failure, or cut off by the remaining time |
//! | `QuarantinedPermanent` | Count | quarantined: the handler said permanent |
//! | `QuarantinedExhausted` | Count | quarantined: `SHARDLINE_MAX_ATTEMPTS` retryable failures |
//! | `QuarantinedUndecodable` | Count | quarantined: the payload could not be decoded |
//! | `BlockedOnParent` | Count | records held back because a parent shard is unfinished |
//! | `CutOff` | Count | shards whose batch stopped for lack of time |
//! | `Superseded` | Count | commits refused because a newer invocation wrote first |
//! | `KplAggregates` | Count | KPL aggregates in the event |
//! | `KplUserRecords` | Count | user records inside those aggregates |
//! | `KplFallbacks` | Count | records with the KPL magic that failed its checks (handled as plain) |
//! | `InvocationErrors` | Count | 1 when the invocation failed as a whole (state store down, not a Kinesis event) |
//! | `BatchDuration` | Milliseconds | time from the event's arrival in the function to the response |
//! | `IteratorAge` | Milliseconds | now minus the oldest record's arrival: consumer lag (absent for an empty batch) |
//!
//! A function adds its own counts with [`add_count`] (the fan-out sink reports
//! `FanoutRetries` this way; `active-users` reports the users it wrote); they go
//! out in the same line, and nothing is printed between invocations.
//!
//! Why no crate: EMF is a small, stable JSON shape and `serde_json` writes it
//! exactly. The Rust EMF crate found (`metrics_cloudwatch_embedded`) is a
//! recorder for the `metrics` facade: a process-global registry fed by
//! increments, with an optional `lambda_http`/`tower` layer. Shardline already
//! has every number in one [`BatchReport`] per invocation, so a recorder would
//! add dependencies and a global to end up printing the same line.
//!
//! Settings (validated when the function starts, errors name the variable):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SHARDLINE_METRICS` | `on` or `off`: print the EMF line in Lambda | `on` |
//! | `SHARDLINE_METRICS_NAMESPACE` | CloudWatch namespace (1-255 of `A-Za-z0-9 .-_/#:`) | `Shardline` |

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::config::{ConfigError, Switch, parse_var};
use crate::report::BatchReport;

mod counts;
pub use self::counts::add_count;
pub(crate) use self::counts::{Counts, counted};

/// The variable that turns the metrics line on or off.
pub const METRICS_VAR: &str = "SHARDLINE_METRICS";
/// The variable that names the CloudWatch namespace.
pub const NAMESPACE_VAR: &str = "SHARDLINE_METRICS_NAMESPACE";
/// The namespace when [`NAMESPACE_VAR`] is unset.
pub const DEFAULT_NAMESPACE: &str = "Shardline";
/// The one dimension of every metric: the function's name.
pub const FUNCTION_DIMENSION: &str = "Function";

/// The CloudWatch unit of a metric, as EMF names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    /// A number of things.
    Count,
    /// A duration.
    Milliseconds,
}

/// The metric unit under its old name ("unit" is the shard or key progress is
/// kept for, [`crate::state::Unit`]).
#[deprecated(note = "renamed `MetricUnit`")]
pub type Unit = MetricUnit;

impl MetricUnit {
    fn name(self) -> &'static str {
        match self {
            MetricUnit::Count => "Count",
            MetricUnit::Milliseconds => "Milliseconds",
        }
    }
}

/// Where and whether metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Print the EMF line at all.
    pub enabled: bool,
    /// The CloudWatch namespace.
    pub namespace: String,
    /// The value of the `Function` dimension.
    pub function: String,
}

impl MetricsConfig {
    /// Reads [`METRICS_VAR`] and [`NAMESPACE_VAR`] through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable when a value is not valid.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        function: &str,
    ) -> Result<Self, ConfigError> {
        let enabled = parse_var(lookup, METRICS_VAR, "`on` or `off`", |_: &Switch| true)?
            .is_none_or(|s| s == Switch::On);
        let namespace = parse_var(
            lookup,
            NAMESPACE_VAR,
            "1 to 255 characters of A-Z a-z 0-9 space . - _ / # :",
            |n: &String| valid_namespace(n),
        )?
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Ok(MetricsConfig {
            enabled,
            namespace,
            function: function.to_owned(),
        })
    }

    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable when a value is not valid.
    pub fn from_env(function: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(&crate::config::process_env, function)
    }
}

fn valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= 255
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .-_/#:".contains(c))
}

/// What one invocation did, as the metrics line reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Invocation<'a> {
    /// Lambda's request id.
    pub request_id: &'a str,
    /// The engine's counts; `None` when the invocation failed as a whole.
    pub report: Option<&'a BatchReport>,
    /// From the event's arrival in the function to the response.
    pub duration: Duration,
}

fn core_metrics(invocation: &Invocation<'_>) -> Vec<(&'static str, MetricUnit, u64)> {
    let empty = BatchReport::default();
    let r = invocation.report.unwrap_or(&empty);
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut metrics = vec![
        ("RecordsReceived", MetricUnit::Count, r.records),
        ("RecordsProcessed", MetricUnit::Count, r.processed),
        (
            "SkippedCheckpointed",
            MetricUnit::Count,
            r.skipped_checkpointed,
        ),
        ("SkippedStale", MetricUnit::Count, r.skipped_stale),
        ("SkippedDuplicate", MetricUnit::Count, r.skipped_duplicate),
        ("RecordsFailed", MetricUnit::Count, r.failed),
        ("RecordsNotStarted", MetricUnit::Count, r.not_started),
        (
            "QuarantinedPermanent",
            MetricUnit::Count,
            r.quarantined_permanent,
        ),
        (
            "QuarantinedExhausted",
            MetricUnit::Count,
            r.quarantined_exhausted,
        ),
        (
            "QuarantinedUndecodable",
            MetricUnit::Count,
            r.quarantined_undecodable,
        ),
        ("BlockedOnParent", MetricUnit::Count, r.blocked_on_parent),
        ("CutOff", MetricUnit::Count, r.cut_off),
        ("Superseded", MetricUnit::Count, r.superseded),
        ("KplAggregates", MetricUnit::Count, r.kpl.aggregates),
        ("KplUserRecords", MetricUnit::Count, r.kpl.user_records),
        ("KplFallbacks", MetricUnit::Count, r.kpl.fallbacks),
        (
            "InvocationErrors",
            MetricUnit::Count,
            u64::from(invocation.report.is_none()),
        ),
        (
            "BatchDuration",
            MetricUnit::Milliseconds,
            millis(invocation.duration),
        ),
    ];
    if let Some(age) = r.iterator_age {
        metrics.push(("IteratorAge", MetricUnit::Milliseconds, millis(age)));
    }
    metrics
}

/// The EMF document of one invocation, with the function's own counts `custom`,
/// stamped `at`.
pub(crate) fn document(
    config: &MetricsConfig,
    invocation: &Invocation<'_>,
    custom: &BTreeMap<&'static str, u64>,
    at: SystemTime,
) -> Value {
    let mut definitions = Vec::new();
    let mut root = Map::new();
    root.insert(FUNCTION_DIMENSION.to_owned(), json!(config.function));
    root.insert("RequestId".to_owned(), json!(invocation.request_id));
    let custom_metrics = custom
        .iter()
        .map(|(name, value)| (*name, MetricUnit::Count, *value));
    for (name, unit, value) in core_metrics(invocation).into_iter().chain(custom_metrics) {
        if root.contains_key(name) || name.is_empty() || name == "_aws" {
            tracing::warn!(
                metric = name,
                "a function's own metric has a reserved name; it is left out"
            );
            continue;
        }
        definitions.push(json!({"Name": name, "Unit": unit.name()}));
        root.insert(name.to_owned(), json!(value));
    }
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": crate::time::epoch_millis(at),
            "CloudWatchMetrics": [{
                "Namespace": config.namespace,
                "Dimensions": [[FUNCTION_DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(root)
}

/// Prints this invocation's EMF line on stdout, with the counts its batch's
/// sinks added ([`BatchReport::counts`]) and `added` (its [`add_count`]s),
/// unless metrics are off.
pub(crate) fn flush(
    config: &MetricsConfig,
    invocation: &Invocation<'_>,
    added: BTreeMap<&'static str, u64>,
) {
    if !config.enabled {
        return;
    }
    let mut custom = invocation
        .report
        .map(|report| report.counts.clone())
        .unwrap_or_default();
    for (name, value) in added {
        *custom.entry(name).or_default() += value;
    }
    let line = document(config, invocation, &custom, SystemTime::now()).to_string();
    // One write of one line: log lines of other threads cannot cut into it.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn config() -> MetricsConfig {
        MetricsConfig {
            enabled: true,
            namespace: "Shardline".into(),
            function: "ledger".into(),
        }
    }

    fn report() -> BatchReport {
        let mut r = BatchReport {
            records: 12,
            processed: 7,
            skipped_checkpointed: 1,
            skipped_stale: 2,
            skipped_duplicate: 3,
            quarantined_permanent: 4,
            quarantined_exhausted: 5,
            quarantined_undecodable: 6,
            failed: 1,
            not_started: 8,
            blocked_on_parent: 9,
            cut_off: 1,
            superseded: 0,
            iterator_age: Some(Duration::from_millis(4500)),
            ..BatchReport::default()
        };
        r.kpl.aggregates = 2;
        r.kpl.user_records = 10;
        r.kpl.fallbacks = 1;
        r
    }

    #[test]
    fn the_document_has_the_emf_shape() {
        let report = report();
        let at = UNIX_EPOCH + Duration::from_millis(1_763_790_000_123);
        let invocation = Invocation {
            request_id: "req-1",
            report: Some(&report),
            duration: Duration::from_millis(250),
        };
        let custom = BTreeMap::from([("FanoutRetries", 4)]);
        let doc = document(&config(), &invocation, &custom, at);

        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_763_790_000_123_u64));
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        assert_eq!(directives[0]["Namespace"], "Shardline");
        assert_eq!(directives[0]["Dimensions"], json!([["Function"]]));
        assert_eq!(doc["Function"], "ledger");
        assert_eq!(doc["RequestId"], "req-1");

        // Every declared metric has a numeric value at the top level, and the
        // values are the report's.
        let declared: BTreeMap<String, String> = directives[0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap().to_owned(),
                    m["Unit"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for name in declared.keys() {
            assert!(doc[name].is_u64(), "{name} has a number: {doc}");
        }
        let expected = [
            ("RecordsReceived", 12, "Count"),
            ("RecordsProcessed", 7, "Count"),
            ("SkippedCheckpointed", 1, "Count"),
            ("SkippedStale", 2, "Count"),
            ("SkippedDuplicate", 3, "Count"),
            ("QuarantinedPermanent", 4, "Count"),
            ("QuarantinedExhausted", 5, "Count"),
            ("QuarantinedUndecodable", 6, "Count"),
            ("RecordsFailed", 1, "Count"),
            ("RecordsNotStarted", 8, "Count"),
            ("BlockedOnParent", 9, "Count"),
            ("CutOff", 1, "Count"),
            ("Superseded", 0, "Count"),
            ("KplAggregates", 2, "Count"),
            ("KplUserRecords", 10, "Count"),
            ("KplFallbacks", 1, "Count"),
            ("InvocationErrors", 0, "Count"),
            ("BatchDuration", 250, "Milliseconds"),
            ("IteratorAge", 4500, "Milliseconds"),
            ("FanoutRetries", 4, "Count"),
        ];
        for (name, value, unit) in expected {
            assert_eq!(doc[name], json!(value), "{name}");
            assert_eq!(declared.get(name).map(String::as_str), Some(unit), "{name}");
        }
        assert_eq!(declared.len(), expected.len());
        // The whole document is one line.
        assert!(!doc.to_string().contains('\n'));
    }

    #[test]
    fn a_failed_invocation_counts_an_error_and_no_iterator_age() {
        let invocation = Invocation {
            request_id: "req-2",
            report: None,
            duration: Duration::from_millis(3),
        };
        let doc = document(&config(), &invocation, &BTreeMap::new(), SystemTime::now());
        assert_eq!(doc["InvocationErrors"], 1);
        assert_eq!(doc["RecordsReceived"], 0);
        assert!(doc.get("IteratorAge").is_none());
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"IteratorAge"));
    }

    #[test]
    fn custom_counts_cannot_shadow_core_metrics_or_properties() {
        let invocation = Invocation {
            request_id: "req-3",
            report: None,
            duration: Duration::ZERO,
        };
        let custom = BTreeMap::from([("RecordsProcessed", 99), ("Function", 1), ("Mine", 2)]);
        let doc = document(&config(), &invocation, &custom, SystemTime::now());
        assert_eq!(doc["RecordsProcessed"], 0);
        assert_eq!(doc["Function"], "ledger");
        assert_eq!(doc["Mine"], 2);
        let count = |name: &str| {
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["Name"] == name)
                .count()
        };
        assert_eq!(count("RecordsProcessed"), 1);
        assert_eq!(count("Function"), 0);
    }

    #[tokio::test]
    async fn added_counts_stay_with_their_invocation() {
        // Two invocations at once on one task set (as under Lambda Managed
        // Instances), each adding its own counts between awaits.
        let one = counted(async {
            add_count("TestOnlyCounter", 2);
            tokio::task::yield_now().await;
            add_count("TestOnlyCounter", 3);
        });
        let other = counted(async {
            add_count("TestOnlyCounter", 10);
            tokio::task::yield_now().await;
            add_count("OtherCounter", 1);
        });
        let ((_, one), (_, other)) = tokio::join!(one, other);
        assert_eq!(one, BTreeMap::from([("TestOnlyCounter", 5)]));
        assert_eq!(
            other,
            BTreeMap::from([("OtherCounter", 1), ("TestOnlyCounter", 10)])
        );
        // Outside an invocation nothing is kept.
        add_count("TestOnlyCounter", 7);
        let (_, none) = counted(async {}).await;
        assert!(none.is_empty());
    }

    #[test]
    fn settings_are_validated_and_named() {
        let none = |_: &str| None;
        let c = MetricsConfig::from_lookup(&none, "fanout").unwrap();
        assert!(c.enabled);
        assert_eq!(c.namespace, DEFAULT_NAMESPACE);
        assert_eq!(c.function, "fanout");
        let off = |n: &str| (n == METRICS_VAR).then(|| "off".to_owned());
        assert!(!MetricsConfig::from_lookup(&off, "f").unwrap().enabled);
        let bad = |n: &str| (n == NAMESPACE_VAR).then(|| "my{ns}".to_owned());
        let err = MetricsConfig::from_lookup(&bad, "f").unwrap_err();
        assert_eq!(err.variable, NAMESPACE_VAR);
        let bad = |n: &str| (n == METRICS_VAR).then(|| "yes".to_owned());
        assert_eq!(
            MetricsConfig::from_lookup(&bad, "f").unwrap_err().variable,
            METRICS_VAR
        );
        let ok = |n: &str| (n == NAMESPACE_VAR).then(|| "Team/Shardline Prod".to_owned());
        assert_eq!(
            MetricsConfig::from_lookup(&ok, "f").unwrap().namespace,
            "Team/Shardline Prod"
        );
    }
}

//! The fan-out's own settings, read and checked at start; an invalid value
//! stops the function with an error naming the variable.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `FANOUT_DESTINATIONS` | comma-separated stream names or ARNs | none |
//! | `FANOUT_CONFIG_TABLE` | DynamoDB table of destinations by `source_arn` | unset |
//! | `FANOUT_CONFIG_TTL_SECONDS` | how long the table's answer is cached | 60 |
//! | `FANOUT_ORDER` | `ordered` (per key) or `throughput` | `ordered` |
//! | `FANOUT_MAX_RECORD_BYTES` | largest record the destinations take (to 10 MiB) | 1048576 |
//! | `FANOUT_AGGREGATE` | `on`: the records bound for one destination shard go as KPL aggregates (up to `FANOUT_MAX_RECORD_BYTES` each; Kinesis destinations only, the `file` sink writes user records) | `off` |
//! | `FANOUT_SINK` | `kinesis`, or `file` (JSON lines in `FANOUT_OUTPUT_DIR`) | `kinesis` in Lambda or with an endpoint set, else `file` |
//! | `FANOUT_OUTPUT_DIR` | folder of the `file` sink | `$SHARDLINE_STATE_DIR/fanout` |

use std::path::{Path, PathBuf};
use std::time::Duration;

use shardline::config::{ConfigError, parse_var};
use shardline::sink::DeliveryOrder;
use shardline::sink::kinesis::{DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES_LIMIT};
use shardline::tables::TableSpec;

/// The configuration table: hash key `source_arn`, range key `destination`.
pub(crate) const CONFIG_TABLE: TableSpec = TableSpec {
    env_var: "FANOUT_CONFIG_TABLE",
    local_name: "fanout-config",
    hash_key: "source_arn",
    range_key: Some("destination"),
    ttl_attribute: None,
};

/// Where records are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkKind {
    /// Kinesis streams.
    Kinesis,
    /// JSON-lines files in this folder, one per destination (local runs).
    File(PathBuf),
}

/// The fan-out's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FanoutSettings {
    /// `FANOUT_DESTINATIONS`.
    pub destinations: Vec<String>,
    /// `FANOUT_CONFIG_TABLE`.
    pub config_table: Option<String>,
    /// `FANOUT_CONFIG_TTL_SECONDS`.
    pub config_ttl: Duration,
    /// `FANOUT_ORDER`.
    pub order: DeliveryOrder,
    /// `FANOUT_MAX_RECORD_BYTES`.
    pub max_record_bytes: usize,
    /// `FANOUT_AGGREGATE`.
    pub aggregate: bool,
    /// `FANOUT_SINK` and `FANOUT_OUTPUT_DIR`.
    pub sink: SinkKind,
}

fn invalid(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        variable: variable.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

impl FanoutSettings {
    /// Reads the settings through `lookup`; `in_lambda` and `state_dir` pick
    /// the default sink and its folder.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable, or
    /// `FANOUT_DESTINATIONS` when no destination is configured at all.
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        in_lambda: bool,
        state_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let destinations: Vec<String> = lookup("FANOUT_DESTINATIONS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        let config_table = lookup(CONFIG_TABLE.env_var).filter(|t| !t.trim().is_empty());
        if destinations.is_empty() && config_table.is_none() {
            let hint = "stream names or ARNs, comma-separated (or set FANOUT_CONFIG_TABLE)";
            return Err(invalid("FANOUT_DESTINATIONS", "", hint));
        }
        let order = parse_var(
            lookup,
            "FANOUT_ORDER",
            "`ordered` or `throughput`",
            |_: &DeliveryOrder| true,
        )?
        .unwrap_or_default();
        let max_record_bytes = parse_var(
            lookup,
            "FANOUT_MAX_RECORD_BYTES",
            "bytes from 1 to 10485760",
            |b: &usize| (1..=MAX_RECORD_BYTES_LIMIT).contains(b),
        )?
        .unwrap_or(DEFAULT_MAX_RECORD_BYTES);
        let ttl = parse_var(
            lookup,
            "FANOUT_CONFIG_TTL_SECONDS",
            "whole seconds",
            |_: &u64| true,
        )?
        .unwrap_or(60);
        let aggregate = match lookup("FANOUT_AGGREGATE").as_deref().map(str::trim) {
            None | Some("") | Some("off") => false,
            Some("on") => true,
            Some(other) => return Err(invalid("FANOUT_AGGREGATE", other, "`on` or `off`")),
        };
        let endpoint_set = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"]
            .iter()
            .any(|v| lookup(v).is_some_and(|e| !e.is_empty()));
        let kind = lookup("FANOUT_SINK").filter(|k| !k.trim().is_empty());
        let sink = match kind.as_deref().map(str::trim) {
            Some("kinesis") => SinkKind::Kinesis,
            Some("file") => SinkKind::File(output_dir(lookup, state_dir)),
            Some(other) => return Err(invalid("FANOUT_SINK", other, "`kinesis` or `file`")),
            None if in_lambda || endpoint_set => SinkKind::Kinesis,
            None => SinkKind::File(output_dir(lookup, state_dir)),
        };
        Ok(FanoutSettings {
            destinations,
            config_table,
            config_ttl: Duration::from_secs(ttl),
            order,
            max_record_bytes,
            aggregate,
            sink,
        })
    }
}

fn output_dir(lookup: &dyn Fn(&str) -> Option<String>, state_dir: &Path) -> PathBuf {
    lookup("FANOUT_OUTPUT_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join("fanout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], lambda: bool) -> Result<FanoutSettings, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        FanoutSettings::from_lookup(&lookup, lambda, Path::new("/state"))
    }

    #[test]
    fn defaults_pick_files_locally_and_kinesis_in_lambda() {
        let local = read(&[("FANOUT_DESTINATIONS", "a, b")], false).unwrap();
        assert_eq!(local.destinations, ["a", "b"]);
        assert_eq!(local.sink, SinkKind::File(PathBuf::from("/state/fanout")));
        assert_eq!(local.order, DeliveryOrder::Ordered);
        assert_eq!(local.max_record_bytes, 1024 * 1024);
        assert!(!local.aggregate);
        let lambda = read(&[("FANOUT_DESTINATIONS", "a")], true).unwrap();
        assert_eq!(lambda.sink, SinkKind::Kinesis);
        let endpoint = read(
            &[
                ("FANOUT_DESTINATIONS", "a"),
                ("AWS_ENDPOINT_URL_KINESIS", "http://x"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(endpoint.sink, SinkKind::Kinesis);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = read(&[], false).unwrap_err();
        assert_eq!(err.variable, "FANOUT_DESTINATIONS");
        for (name, value) in [
            ("FANOUT_ORDER", "random"),
            ("FANOUT_MAX_RECORD_BYTES", "20000000"),
            ("FANOUT_CONFIG_TTL_SECONDS", "soon"),
            ("FANOUT_SINK", "s3"),
            ("FANOUT_AGGREGATE", "yes"),
        ] {
            let err = read(&[("FANOUT_DESTINATIONS", "a"), (name, value)], false).unwrap_err();
            assert_eq!(err.variable, name);
        }
        let on = read(
            &[("FANOUT_DESTINATIONS", "a"), ("FANOUT_AGGREGATE", "on")],
            true,
        )
        .unwrap();
        assert!(on.aggregate);
        let table_only = read(&[("FANOUT_CONFIG_TABLE", "t")], false).unwrap();
        assert!(table_only.destinations.is_empty());
        assert_eq!(table_only.config_table.as_deref(), Some("t"));
    }
}

//! Settings from the environment, checked at start with errors that name the variable.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SHARDLINE_CONSUMER` | name keying this consumer's state | the function's name |
//! | `SHARDLINE_MAX_ATTEMPTS` | attempts before a retryable failure is quarantined (1..=10000) | 3 |
//! | `SHARDLINE_MAX_RECORD_AGE_SECONDS` | skip records older than this (unset: never) | function's choice |
//! | `SHARDLINE_STATE_DIR` | folder of the embedded state | `.shardline` (in Lambda `/tmp/shardline`) |
//! | `SHARDLINE_TIME_RESERVE_MS` | time kept back at the end of an invocation | 1000 |
//! | `SHARDLINE_TIMEOUT_SECONDS` | locally, the invocation's timeout (as the function's Lambda timeout); `invoke --remaining-ms` overrides it | 60 |
//! | `SHARDLINE_LOG` | log filter, such as `info` or `shardline=debug,warn` | `info` in Lambda; locally `warn`, and `info` for the function's own crate |
//! | `SHARDLINE_STATE_TABLE` | DynamoDB table of Shardline's state (unset: the embedded store) | unset |
//! | `SHARDLINE_PROGRESS` | `shard` (one checkpoint per shard) or `partition-key` (for ParallelizationFactor > 1) | `shard` |
//! | `SHARDLINE_PARENT_GUARD` | `on` or `off`: hold child shards until their parents are finished | `on` with a state table, else `off` |
//! | `SHARDLINE_CONCURRENCY` | records in flight at once across partition keys (1..=1000; a key's records stay in order) | function's choice, else [`DEFAULT_CONCURRENCY`] |
//! | `SHARDLINE_KEY_PROGRESS_TTL_HOURS` | per-key progress is kept this long after its last write; at least the stream's retention (24..=8784) | function's choice, else 192 (8 days) |

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The local invocation's timeout without `SHARDLINE_TIMEOUT_SECONDS`: the
/// functions' timeout in the SAM template.
pub const DEFAULT_LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Records in flight at once within a batch when neither the function
/// (`App::concurrency`) nor `SHARDLINE_CONCURRENCY` says.
pub const DEFAULT_CONCURRENCY: usize = 1;

/// The per-key progress TTLs Shardline takes (`SHARDLINE_KEY_PROGRESS_TTL_HOURS`,
/// `App::key_progress_ttl`): from a stream's shortest retention period (24
/// hours) to its longest (365 days) and a day. Key progress must outlive every
/// record of its key that Lambda can still deliver, so the TTL must be at least
/// the stream's retention period.
pub const KEY_PROGRESS_TTL_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(24 * HOUR)..=Duration::from_secs(8_784 * HOUR);

const HOUR: u64 = 3600;

/// What `SHARDLINE_KEY_PROGRESS_TTL_HOURS` must be.
const KEY_PROGRESS_TTL_EXPECTED: &str = "a whole number of hours from 24 to 8784 (366 days), \
     at least the stream's retention period (RetentionPeriodHours, 24 to 8760)";

/// A setting that is present but not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: String,
    /// The value it has.
    pub value: String,
    /// What it should be.
    pub expected: String,
}

/// Reads variable `name` with `lookup` and parses it; `Ok(None)` when unset or empty.
///
/// # Errors
/// [`ConfigError`] naming the variable when the value does not parse or `check` refuses it.
///
/// ```
/// let lookup = |name: &str| (name == "WINDOW").then(|| "120".to_string());
/// let window: Option<u64> = shardline::config::parse_var(&lookup, "WINDOW", "seconds", |_| true)?;
/// assert_eq!(window, Some(120));
/// # Ok::<(), shardline::config::ConfigError>(())
/// ```
pub fn parse_var<T: FromStr>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    expected: &str,
    check: impl Fn(&T) -> bool,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<T>() {
        Ok(parsed) if check(&parsed) => Ok(Some(parsed)),
        _ => Err(ConfigError {
            variable: name.to_owned(),
            value,
            expected: expected.to_owned(),
        }),
    }
}

/// `SHARDLINE_STATE_DIR`, or its default: `/tmp/shardline` in Lambda, `.shardline` elsewhere.
fn state_dir(lookup: &dyn Fn(&str) -> Option<String>, lambda: bool) -> PathBuf {
    lookup("SHARDLINE_STATE_DIR")
        .filter(|d| !d.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(if lambda {
                "/tmp/shardline"
            } else {
                ".shardline"
            })
        })
}

/// The process environment as a lookup function.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether this process runs inside AWS Lambda.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// An `on`/`off` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `on`
    On,
    /// `off`
    Off,
}

impl FromStr for Switch {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "on" => Ok(Switch::On),
            "off" => Ok(Switch::Off),
            _ => Err(()),
        }
    }
}

/// Shardline's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SHARDLINE_CONSUMER`.
    pub consumer: Option<String>,
    /// `SHARDLINE_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `SHARDLINE_MAX_RECORD_AGE_SECONDS`.
    pub max_record_age: Option<Duration>,
    /// `SHARDLINE_STATE_DIR`.
    pub state_dir: PathBuf,
    /// `SHARDLINE_TIME_RESERVE_MS`.
    pub time_reserve: Duration,
    /// `SHARDLINE_TIMEOUT_SECONDS`: the local invocation's timeout.
    pub local_timeout: Duration,
    /// `SHARDLINE_LOG` as given (checked); `None`: the default, `info` in
    /// Lambda, and locally `warn` with the function's own crate at `info`.
    pub log: Option<String>,
    /// `SHARDLINE_STATE_TABLE`.
    pub state_table: Option<String>,
    /// `SHARDLINE_PROGRESS`.
    pub progress: crate::progress::ProgressMode,
    /// `SHARDLINE_PARENT_GUARD` (`None`: the function's default).
    pub parent_guard: Option<bool>,
    /// `SHARDLINE_CONCURRENCY` (`None`: the function's default).
    pub concurrency: Option<usize>,
    /// `SHARDLINE_KEY_PROGRESS_TTL_HOURS` (`None`: the function's default,
    /// else [`crate::progress::DEFAULT_KEY_PROGRESS_TTL`]).
    pub key_progress_ttl: Option<Duration>,
}

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&process_env, in_lambda())
    }

    /// Reads the settings through `lookup` (for tests and embedding).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid variable.
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        lambda: bool,
    ) -> Result<Self, ConfigError> {
        let consumer = lookup("SHARDLINE_CONSUMER").filter(|c| !c.trim().is_empty());
        let max_attempts = parse_var(
            lookup,
            "SHARDLINE_MAX_ATTEMPTS",
            "a whole number from 1 to 10000",
            |n: &u32| (1..=10_000).contains(n),
        )?
        .unwrap_or(3);
        let max_record_age = parse_var(
            lookup,
            "SHARDLINE_MAX_RECORD_AGE_SECONDS",
            "a whole number of seconds, at least 1",
            |n: &u64| *n >= 1,
        )?
        .map(Duration::from_secs);
        let state_dir = state_dir(lookup, lambda);
        let time_reserve = parse_var(
            lookup,
            "SHARDLINE_TIME_RESERVE_MS",
            "a whole number of milliseconds",
            |_: &u64| true,
        )?
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(1));
        let local_timeout = parse_var(
            lookup,
            "SHARDLINE_TIMEOUT_SECONDS",
            "a whole number of seconds from 1 to 900 (Lambda's longest timeout)",
            |n: &u64| (1..=900).contains(n),
        )?
        .map_or(DEFAULT_LOCAL_TIMEOUT, Duration::from_secs);
        let log = log_filter(lookup)?;
        let state_table = lookup("SHARDLINE_STATE_TABLE").filter(|t| !t.trim().is_empty());
        let progress = parse_var(
            lookup,
            "SHARDLINE_PROGRESS",
            "`shard` or `partition-key`",
            |_: &crate::progress::ProgressMode| true,
        )?
        .unwrap_or_default();
        let parent_guard = parse_var(
            lookup,
            "SHARDLINE_PARENT_GUARD",
            "`on` or `off`",
            |_: &Switch| true,
        )?
        .map(|s| s == Switch::On);
        let concurrency = parse_var(
            lookup,
            "SHARDLINE_CONCURRENCY",
            "a whole number from 1 to 1000",
            |n: &usize| (1..=1000).contains(n),
        )?;
        let key_progress_ttl = key_progress_ttl(lookup)?;
        Ok(Settings {
            consumer,
            max_attempts,
            max_record_age,
            state_dir,
            time_reserve,
            local_timeout,
            log,
            state_table,
            progress,
            parent_guard,
            concurrency,
            key_progress_ttl,
        })
    }
}

/// `SHARDLINE_LOG`: a tracing filter, checked (`None` when unset).
fn log_filter(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(log) = lookup("SHARDLINE_LOG").filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    if log.parse::<tracing_subscriber::filter::Targets>().is_err() {
        return Err(ConfigError {
            variable: "SHARDLINE_LOG".into(),
            value: log,
            expected: "a filter such as `info` or `shardline=debug,warn`".into(),
        });
    }
    Ok(Some(log))
}

/// `SHARDLINE_KEY_PROGRESS_TTL_HOURS`, within [`KEY_PROGRESS_TTL_RANGE`].
fn key_progress_ttl(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Duration>, ConfigError> {
    let hours = parse_var(
        lookup,
        "SHARDLINE_KEY_PROGRESS_TTL_HOURS",
        KEY_PROGRESS_TTL_EXPECTED,
        |hours: &u64| {
            hours
                .checked_mul(HOUR)
                .is_some_and(|secs| KEY_PROGRESS_TTL_RANGE.contains(&Duration::from_secs(secs)))
        },
    )?;
    Ok(hours.map(|hours| Duration::from_secs(hours * HOUR)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_apply_when_unset() {
        let s = Settings::from_lookup(&lookup(&[]), false).unwrap();
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.state_dir, PathBuf::from(".shardline"));
        assert_eq!(s.max_record_age, None);
        assert_eq!(s.local_timeout, Duration::from_secs(60));
        let s = Settings::from_lookup(&lookup(&[]), true).unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/tmp/shardline"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err =
            Settings::from_lookup(&lookup(&[("SHARDLINE_MAX_ATTEMPTS", "0")]), false).unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_MAX_ATTEMPTS");
        assert!(
            err.to_string().contains("SHARDLINE_MAX_ATTEMPTS=\"0\""),
            "{err}"
        );
        let err = Settings::from_lookup(
            &lookup(&[("SHARDLINE_MAX_RECORD_AGE_SECONDS", "ten")]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_MAX_RECORD_AGE_SECONDS");
        let err = Settings::from_lookup(&lookup(&[("SHARDLINE_LOG", "=====")]), false).unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_LOG");
        for bad in ["0", "901", "1m"] {
            let pairs: &'static [(&'static str, &'static str)] = match bad {
                "0" => &[("SHARDLINE_TIMEOUT_SECONDS", "0")],
                "901" => &[("SHARDLINE_TIMEOUT_SECONDS", "901")],
                _ => &[("SHARDLINE_TIMEOUT_SECONDS", "1m")],
            };
            let err = Settings::from_lookup(&lookup(pairs), false).unwrap_err();
            assert_eq!(err.variable, "SHARDLINE_TIMEOUT_SECONDS", "{bad}");
        }
    }

    #[test]
    fn values_parse() {
        let s = Settings::from_lookup(
            &lookup(&[
                ("SHARDLINE_MAX_ATTEMPTS", "5"),
                ("SHARDLINE_MAX_RECORD_AGE_SECONDS", "120"),
                ("SHARDLINE_STATE_DIR", "/x"),
                ("SHARDLINE_CONSUMER", "ledger-eu"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(s.max_attempts, 5);
        assert_eq!(s.max_record_age, Some(Duration::from_secs(120)));
        assert_eq!(s.state_dir, PathBuf::from("/x"));
        assert_eq!(s.consumer.as_deref(), Some("ledger-eu"));
    }

    #[test]
    fn modes_parse_and_bad_modes_are_named() {
        let s = Settings::from_lookup(
            &lookup(&[
                ("SHARDLINE_PROGRESS", "partition-key"),
                ("SHARDLINE_PARENT_GUARD", "off"),
                ("SHARDLINE_STATE_TABLE", "state"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(s.progress, crate::progress::ProgressMode::PartitionKey);
        assert_eq!(s.parent_guard, Some(false));
        assert_eq!(s.state_table.as_deref(), Some("state"));
        let err =
            Settings::from_lookup(&lookup(&[("SHARDLINE_PROGRESS", "key")]), false).unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_PROGRESS");
        let err = Settings::from_lookup(&lookup(&[("SHARDLINE_PARENT_GUARD", "yes")]), false)
            .unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_PARENT_GUARD");
        for bad in [
            &[("SHARDLINE_CONCURRENCY", "0")],
            &[("SHARDLINE_CONCURRENCY", "1001")],
        ] {
            let err = Settings::from_lookup(&lookup(bad), false).unwrap_err();
            assert_eq!(err.variable, "SHARDLINE_CONCURRENCY");
        }
        let s = Settings::from_lookup(&lookup(&[("SHARDLINE_CONCURRENCY", "32")]), false).unwrap();
        assert_eq!(s.concurrency, Some(32));
    }

    #[test]
    fn key_progress_ttl_is_read_in_hours() {
        let s = Settings::from_lookup(&lookup(&[]), false).unwrap();
        assert_eq!(s.key_progress_ttl, None, "the function's default applies");
        for (text, hours) in [("24", 24), ("720", 720), ("8784", 8784)] {
            let pairs = [("SHARDLINE_KEY_PROGRESS_TTL_HOURS", text)];
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            let s = Settings::from_lookup(&lookup, false).unwrap();
            assert_eq!(s.key_progress_ttl, Some(Duration::from_secs(hours * 3600)));
        }
    }

    #[test]
    fn key_progress_ttl_out_of_range_is_refused_naming_the_variable() {
        for bad in ["0", "23", "8785", "8d", "-1"] {
            let pairs = [("SHARDLINE_KEY_PROGRESS_TTL_HOURS", bad)];
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            let err = Settings::from_lookup(&lookup, false).unwrap_err();
            assert_eq!(err.variable, "SHARDLINE_KEY_PROGRESS_TTL_HOURS", "{bad}");
            let message = err.to_string();
            assert!(
                message.contains("SHARDLINE_KEY_PROGRESS_TTL_HOURS")
                    && message.contains("from 24 to 8784"),
                "{message}"
            );
        }
    }
}

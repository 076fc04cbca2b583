//! The command line: the subcommands, and `shardline-cli source`'s options,
//! the event source mapping's parameters under their own names, with Lambda's defaults and ranges
//! (CreateEventSourceMapping in the Lambda API reference).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};

pub(crate) use crate::event::EventArgs;
pub(crate) use crate::new::NewArgs;

/// Shardline's command-line tools.
#[derive(Debug, Parser)]
#[command(name = "shardline-cli", version, about)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a function against a live Kinesis stream, locally, as Lambda's event
    /// source mapping would: polls the stream shard by shard and invokes the
    /// function, unmodified, through its own Lambda Runtime API.
    Source(Box<SourceArgs>),
    /// Invoke a function with event files, through its own Lambda runtime loop
    /// (one process, kept warm from one event to the next), and print what
    /// each invocation came to as one JSON line.
    Invoke(InvokeArgs),
    /// Write a new function crate in ./NAME, outside any workspace: a handler,
    /// its test, sample events, a SAM template, the release profile.
    New(NewArgs),
    /// Print a Lambda Kinesis event made of your own payloads (JSON lines, or
    /// whole files), for `invoke` and for tests.
    Event(Box<EventArgs>),
}

/// `shardline-cli invoke`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InvokeArgs {
    /// An event file (JSON); repeat for several invocations of one warm process.
    #[arg(long = "event", value_name = "FILE", required = true)]
    pub events: Vec<PathBuf>,
    /// The function's timeout in seconds (1 to 900): the process is killed past it
    /// (with N above 1, as on Lambda Managed Instances, only the invocation fails,
    /// and runs on).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub function_timeout: u64,
    /// Invocations one function process answers at once (the events in turns of
    /// this many, one process), as on Lambda Managed
    /// Instances (PerExecutionEnvironmentMaxConcurrency, 1 to 1600; 1: classic
    /// Lambda). The process gets AWS_LAMBDA_MAX_CONCURRENCY; killing it fails
    /// every invocation it has in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub per_execution_environment_max_concurrency: u32,
    /// The function's name (AWS_LAMBDA_FUNCTION_NAME); the command's file name by default.
    #[arg(long)]
    pub function_name: Option<String>,
    /// The function: a command that runs the Lambda runtime loop.
    #[arg(last = true, required = true, value_name = "FUNCTION_COMMAND")]
    pub command: Vec<String>,
}

impl InvokeArgs {
    /// The function's name.
    pub(crate) fn name(&self) -> String {
        function_name(self.function_name.as_ref(), &self.command)
    }
}

/// A function's name: the one given, or the command's file name.
fn function_name(given: Option<&String>, command: &[String]) -> String {
    given.cloned().unwrap_or_else(|| {
        command
            .first()
            .and_then(|c| std::path::Path::new(c).file_name())
            .map_or_else(
                || "function".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            )
    })
}

/// Where reading a shard starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StartingPosition {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records put after the mapping starts.
    Latest,
    /// Records put from `--starting-position-timestamp` on.
    AtTimestamp,
}

/// `shardline-cli source`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SourceArgs {
    /// The stream: a name, or an ARN.
    #[arg(long, value_name = "NAME_OR_ARN")]
    pub stream: String,
    /// Records per invocation, at most (BatchSize, 1 to 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long to gather records before invoking (MaximumBatchingWindowInSeconds, 0 to 300).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub maximum_batching_window_in_seconds: u64,
    /// Where reading starts in the shards open at start.
    #[arg(long, value_enum, default_value = "TRIM_HORIZON")]
    pub starting_position: StartingPosition,
    /// With AT_TIMESTAMP: epoch seconds.
    #[arg(long, value_name = "EPOCH_SECONDS")]
    pub starting_position_timestamp: Option<f64>,
    /// Concurrent batches per shard, routed by partition key hash (1 to 10).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub parallelization_factor: u32,
    /// Split a batch in two after a function error (BisectBatchOnFunctionError).
    #[arg(long)]
    pub bisect_batch_on_function_error: bool,
    /// Retries of a failed batch before it is discarded (-1: until the records expire; up to 10000).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=10_000))]
    pub maximum_retry_attempts: i64,
    /// Records older than this are discarded unprocessed (-1: never; else 60 to 604800).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = record_age)]
    pub maximum_record_age_in_seconds: i64,
    /// The function's timeout in seconds (1 to 900): the process is killed past it
    /// (with N above 1, as on Lambda Managed Instances, only the invocation fails,
    /// and runs on).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub function_timeout: u64,
    /// Read `batchItemFailures` from the response (FunctionResponseTypes: ReportBatchItemFailures).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub report_batch_item_failures: bool,
    /// Append what Lambda would send to the on-failure destination, as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub on_failure: Option<PathBuf>,
    /// Start child shards as soon as they appear instead of after their parents
    /// (adversarial: to exercise a function's parent-shard guard).
    #[arg(long)]
    pub children_at_once: bool,
    /// Exit 0 once every shard is drained and nothing is in flight for this
    /// long, printing one JSON summary line on stdout.
    #[arg(long, value_name = "SECONDS")]
    pub until_idle: Option<f64>,
    /// Seed of the chaos options (a failure can be replayed); random by default.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Share of invocations in which the function process is killed at a random
    /// point (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub kill_rate: f64,
    /// Tumbling windows of this many seconds (TumblingWindowInSeconds, 1 to
    /// 900; 0: none): the state is threaded per shard as Lambda does.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=900))]
    pub tumbling_window_in_seconds: u64,
    /// Invocations one function process answers at once, as on Lambda Managed
    /// Instances (PerExecutionEnvironmentMaxConcurrency, 1 to 1600; 1: classic
    /// Lambda). The process gets AWS_LAMBDA_MAX_CONCURRENCY; killing it fails
    /// every invocation it has in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1600))]
    pub per_execution_environment_max_concurrency: u32,
    /// The function's name (AWS_LAMBDA_FUNCTION_NAME); the command's file name by default.
    #[arg(long)]
    pub function_name: Option<String>,
    /// The function: a command that runs the Lambda runtime loop.
    #[arg(last = true, required = true, value_name = "FUNCTION_COMMAND")]
    pub command: Vec<String>,
}

fn record_age(text: &str) -> Result<i64, String> {
    let age: i64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    if age == -1 || (60..=604_800).contains(&age) {
        Ok(age)
    } else {
        Err(format!("{age} is neither -1 nor from 60 to 604800"))
    }
}

fn share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("{share} is not from 0 to 1"))
    }
}

impl SourceArgs {
    /// The batching window.
    pub(crate) fn batching_window(&self) -> Duration {
        Duration::from_secs(self.maximum_batching_window_in_seconds)
    }

    /// The function's timeout.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.function_timeout)
    }

    /// The retry limit (`None`: retry until the records expire).
    pub(crate) fn retry_limit(&self) -> Option<u32> {
        u32::try_from(self.maximum_retry_attempts).ok()
    }

    /// The tumbling window's length in seconds (`None`: no windows).
    pub(crate) fn tumbling_window(&self) -> Option<u64> {
        Some(self.tumbling_window_in_seconds).filter(|&seconds| seconds > 0)
    }

    /// The record age limit (`None`: none).
    pub(crate) fn max_record_age(&self) -> Option<Duration> {
        u64::try_from(self.maximum_record_age_in_seconds)
            .ok()
            .map(Duration::from_secs)
    }

    /// The AT_TIMESTAMP start, checked.
    ///
    /// # Errors
    /// A message when AT_TIMESTAMP comes without a timestamp, or a timestamp without it.
    pub(crate) fn start_timestamp(&self) -> Result<Option<SystemTime>, String> {
        match (self.starting_position, self.starting_position_timestamp) {
            (StartingPosition::AtTimestamp, Some(seconds)) if seconds.is_finite() && seconds >= 0.0 => {
                Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(seconds)))
            }
            (StartingPosition::AtTimestamp, _) => {
                Err("--starting-position AT_TIMESTAMP needs --starting-position-timestamp EPOCH_SECONDS".into())
            }
            (_, Some(_)) => Err("--starting-position-timestamp goes with --starting-position AT_TIMESTAMP".into()),
            (_, None) => Ok(None),
        }
    }

    /// The function's name.
    pub(crate) fn name(&self) -> String {
        function_name(self.function_name.as_ref(), &self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SourceArgs, clap::Error> {
        let mut all = vec!["shardline-cli", "source"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Source(args) => *args,
            _ => unreachable!("parsed as source"),
        })
    }

    #[test]
    fn defaults_are_lambdas() {
        let args = parse(&["--stream", "s", "--", "ledger"]).unwrap();
        assert_eq!(args.batch_size, 100);
        assert_eq!(args.parallelization_factor, 1);
        assert_eq!(args.retry_limit(), None);
        assert_eq!(args.max_record_age(), None);
        assert_eq!(args.timeout(), Duration::from_secs(3));
        assert!(args.report_batch_item_failures);
        assert!(!args.bisect_batch_on_function_error);
        assert_eq!(args.command, ["ledger"]);
        assert_eq!(args.name(), "ledger");
    }

    #[test]
    fn ranges_are_lambdas() {
        for bad in [
            &["--batch-size", "10001"][..],
            &["--parallelization-factor", "11"],
            &["--maximum-retry-attempts", "-2"],
            &["--maximum-record-age-in-seconds", "59"],
            &["--maximum-batching-window-in-seconds", "301"],
            &["--function-timeout", "901"],
            &["--kill-rate", "1.5"],
        ] {
            let mut args = vec!["--stream", "s"];
            args.extend_from_slice(bad);
            args.extend_from_slice(&["--", "f"]);
            assert!(parse(&args).is_err(), "{bad:?}");
        }
        let ok = parse(&[
            "--stream",
            "s",
            "--maximum-retry-attempts",
            "-1",
            "--maximum-record-age-in-seconds",
            "60",
            "--report-batch-item-failures",
            "false",
            "--",
            "f",
        ])
        .unwrap();
        assert_eq!(ok.max_record_age(), Some(Duration::from_secs(60)));
        assert!(!ok.report_batch_item_failures);
        let at = parse(&[
            "--stream",
            "s",
            "--starting-position",
            "AT_TIMESTAMP",
            "--",
            "f",
        ])
        .unwrap();
        assert!(at.start_timestamp().is_err());
    }
}

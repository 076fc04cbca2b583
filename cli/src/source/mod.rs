//! `shardline source`: a local Lambda event source mapping for Kinesis.
//!
//! - [`shards`]: which shards exist, which may start (after their parents),
//!   when the mapping is idle;
//! - [`reader`]: one shard read to its end;
//! - [`lane`]: one batch in flight at a time, and Lambda's rules after it;
//! - [`batch`]: the event and the reading of the answer;
//! - [`window`]: tumbling windows, their state and their final invocations;
//! - [`crate::sandbox`]: the function processes behind their Runtime APIs.

pub mod batch;
pub mod counters;
pub mod lane;
pub mod reader;
pub mod shards;
pub mod window;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use serde_json::json;

use self::batch::StreamRecord;
use self::counters::Counters;
use crate::args::SourceArgs;
use crate::sandbox::Pool;

/// The mapping's settings, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub batch_size: usize,
    pub window: Duration,
    pub parallelization: usize,
    pub bisect: bool,
    pub retry_limit: Option<u32>,
    pub max_record_age: Option<Duration>,
    pub timeout: Duration,
    pub report_failures: bool,
    pub children_at_once: bool,
    pub kill_rate: f64,
    /// TumblingWindowInSeconds (`None`: no windows).
    pub tumbling_window: Option<u64>,
}

impl Config {
    /// From the command line.
    pub fn from_args(args: &SourceArgs) -> Self {
        Config {
            batch_size: args.batch_size as usize,
            window: args.batching_window(),
            parallelization: args.parallelization_factor as usize,
            bisect: args.bisect_batch_on_function_error,
            retry_limit: args.retry_limit(),
            max_record_age: args.max_record_age(),
            timeout: args.timeout(),
            report_failures: args.report_batch_item_failures,
            children_at_once: args.children_at_once,
            kill_rate: args.kill_rate,
            tumbling_window: args.tumbling_window(),
        }
    }
}

/// What every shard, lane and reader of one mapping shares.
pub struct Mapping {
    pub config: Config,
    pub stream_name: String,
    pub stream_arn: String,
    pub function_arn: String,
    pub pool: Arc<Pool>,
    pub counters: Counters,
    on_failure: Option<Mutex<std::fs::File>>,
    rng: Mutex<fastrand::Rng>,
    last_activity: Mutex<Instant>,
    /// A moving average of invocation times, in milliseconds.
    typical_ms: Mutex<f64>,
}

impl Mapping {
    /// A mapping of `stream` to the function `pool` runs.
    ///
    /// # Errors
    /// The I/O error when the on-failure file cannot be opened.
    pub fn new(
        args: &SourceArgs,
        stream_name: String,
        stream_arn: String,
        pool: Arc<Pool>,
        seed: u64,
    ) -> std::io::Result<Self> {
        let on_failure = match &args.on_failure {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
            None => None,
        };
        Ok(Mapping {
            config: Config::from_args(args),
            function_arn: format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}",
                args.name()
            ),
            stream_name,
            stream_arn,
            pool,
            counters: Counters::default(),
            on_failure,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            last_activity: Mutex::new(Instant::now()),
            typical_ms: Mutex::new(200.0),
        })
    }

    /// Notes that something happened (a read, an invocation).
    pub fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long nothing has happened.
    pub fn quiet_for(&self) -> Duration {
        self.last_activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Whether to kill this invocation's process, and when (`--kill-rate`).
    pub fn chaos_kill(&self) -> Option<Duration> {
        if self.config.kill_rate <= 0.0 {
            return None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if rng.f64() >= self.config.kill_rate {
            return None;
        }
        // Anywhere in a typical invocation: mostly while the function is at
        // work, sometimes before it has the event or while it commits.
        let typical = *self.typical_ms.lock().unwrap_or_else(|p| p.into_inner());
        let span = (typical * 0.8).clamp(1.0, self.config.timeout.as_millis() as f64);
        Some(Duration::from_secs_f64(rng.f64() * span / 1000.0))
    }

    /// Notes how long an invocation took (for the chaos kills' timing).
    pub fn took(&self, took: Duration) {
        let mut typical = self.typical_ms.lock().unwrap_or_else(|p| p.into_inner());
        *typical = *typical * 0.8 + took.as_secs_f64() * 1000.0 * 0.2;
    }

    /// Discards `records` of `shard_id`: counted, and written to the
    /// on-failure destination as Lambda writes it for a Kinesis source
    /// (docs: kinesis-on-failure-destination, "Example invocation record").
    pub fn discard(
        &self,
        shard_id: &str,
        records: &[StreamRecord],
        condition: &str,
        invokes: u32,
        reason: &str,
    ) {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        self.counters.discarded(records.len());
        eprintln!(
            "source: {shard_id}: discarded {} records from {} ({condition}: {reason})",
            records.len(),
            first.sequence
        );
        let Some(file) = &self.on_failure else {
            return;
        };
        let time = |seconds: f64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0)))
        };
        let line = json!({
            "requestContext": {
                "requestId": format!("source-discard-{}", self.counters.snapshot().discarded),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": invokes,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": rfc3339(SystemTime::now()),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first.sequence.to_string(),
                "endSequenceNumber": last.sequence.to_string(),
                "approximateArrivalOfFirstRecord": time(first.arrival),
                "approximateArrivalOfLastRecord": time(last.arrival),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            },
        });
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(file, "{line}");
    }
}

/// `2019-11-14T00:38:06.021Z`, as the on-failure records print times.
fn rfc3339(time: SystemTime) -> String {
    let millis = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // Whole milliseconds, so the fraction always has three digits.
    let at = DateTime::from_millis(i64::try_from(millis).unwrap_or(i64::MAX));
    let text = at.fmt(DateTimeFormat::DateTime).unwrap_or_default();
    let base = text.strip_suffix('Z').unwrap_or(&text);
    let (seconds, fraction) = base.split_once('.').unwrap_or((base, ""));
    format!("{seconds}.{fraction:0<3}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_lambda_prints_them() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_573_691_886_021);
        assert_eq!(rfc3339(at), "2019-11-14T00:38:06.021Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let half = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(rfc3339(half), "1970-01-01T00:00:01.500Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}

//! `shardline-cli source`: a local Lambda event source mapping for Kinesis.
//!
//! Lambda's rules are [`shardline_esm`]'s model, shared with the simulator;
//! this module runs them against a real stream and real function processes:
//!
//! - [`shards`]: which shards exist, which may start (after their parents),
//!   when the mapping is idle;
//! - [`reader`]: one shard read to its end;
//! - [`slot`]: one batch in flight at a time, driven in real time;
//! - [`crate::sandbox`]: the function processes behind their Runtime APIs.

pub(crate) mod counters;
pub(crate) mod reader;
pub(crate) mod shards;
pub(crate) mod slot;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use shardline_esm::{Discard, MappingConfig};

use self::counters::Counters;
use crate::args::SourceArgs;
use crate::sandbox::Pool;

/// The mapping's settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// What Lambda's rules read.
    pub mapping: MappingConfig,
    pub timeout: Duration,
    pub children_at_once: bool,
    pub kill_rate: f64,
}

impl Config {
    /// From the command line.
    pub(crate) fn from_args(args: &SourceArgs) -> Self {
        Config {
            mapping: MappingConfig {
                batch_size: args.batch_size as usize,
                batching_window: args.batching_window(),
                parallelization: args.parallelization_factor as usize,
                bisect: args.bisect_batch_on_function_error,
                retry_limit: args.retry_limit(),
                max_record_age: args.max_record_age(),
                report_failures: args.report_batch_item_failures,
                tumbling_window: args.tumbling_window(),
            },
            timeout: args.timeout(),
            children_at_once: args.children_at_once,
            kill_rate: args.kill_rate,
        }
    }
}

/// What every shard, slot and reader of one mapping shares.
pub(crate) struct Mapping {
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
    pub(crate) fn new(
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
    pub(crate) fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long nothing has happened.
    pub(crate) fn quiet_for(&self) -> Duration {
        self.last_activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Whether to kill this invocation's process, and when (`--kill-rate`).
    pub(crate) fn chaos_kill(&self) -> Option<Duration> {
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
    pub(crate) fn took(&self, took: Duration) {
        let mut typical = self.typical_ms.lock().unwrap_or_else(|p| p.into_inner());
        *typical = *typical * 0.8 + took.as_secs_f64() * 1000.0 * 0.2;
    }

    /// Discards records of `shard_id`: counted, and written to the
    /// on-failure destination as Lambda writes it for a Kinesis source.
    pub(crate) fn discard(&self, shard_id: &str, discard: &Discard) {
        let Some(first) = discard.records.first() else {
            return;
        };
        self.counters.discarded(discard.records.len());
        eprintln!(
            "source: {shard_id}: discarded {} records from {} ({}: {})",
            discard.records.len(),
            first.sequence,
            discard.condition,
            discard.reason
        );
        let Some(file) = &self.on_failure else {
            return;
        };
        let request_id = format!("source-discard-{}", self.counters.snapshot().discarded);
        let line = discard.on_failure_record(
            &self.function_arn,
            &self.stream_arn,
            shard_id,
            &request_id,
            SystemTime::now(),
        );
        if let Some(line) = line {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(file, "{line}");
        }
    }
}

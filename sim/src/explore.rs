//! Many scenarios at once: seeds from a counter, run on a few threads until a
//! count or a time is reached; every violation kept with its seed.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::oracle::Stats;
use crate::run::run;
use crate::scenario::Scenario;

/// Which scenarios to run.
#[derive(Debug, Clone, Copy)]
pub struct Exploration {
    /// The first seed.
    pub from: u64,
    /// How many scenarios (`None`: until `minutes` is up).
    pub count: Option<u64>,
    /// For how long (`None`: until `count` is reached).
    pub minutes: Option<u64>,
    /// Threads (each runs its scenarios one at a time).
    pub threads: usize,
}

/// A failing scenario.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Its seed.
    pub seed: u64,
    /// What broke.
    pub violations: Vec<String>,
}

/// What an exploration came to.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Scenarios run.
    pub scenarios: u64,
    /// Those that failed.
    pub failures: Vec<Failure>,
    /// Everything they did, added up.
    pub totals: Stats,
    /// How long it took.
    pub elapsed: Duration,
    /// Scenarios per feature: how often each part of the matrix was drawn.
    pub coverage: Vec<(&'static str, u64)>,
}

/// Runs the scenarios of `exploration`.
pub fn explore(exploration: &Exploration) -> Report {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(exploration.from));
    let end_seed = exploration.count.map(|c| exploration.from + c);
    let deadline = exploration
        .minutes
        .map(|m| started + Duration::from_secs(m * 60));
    let report = Arc::new(Mutex::new(Report::default()));
    let threads: Vec<_> = (0..exploration.threads.max(1))
        .map(|_| {
            let (next, report) = (next.clone(), report.clone());
            std::thread::spawn(move || {
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return;
                    }
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if end_seed.is_some_and(|end| seed >= end) {
                        return;
                    }
                    let scenario = Scenario::draw(seed);
                    let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| run(&scenario)));
                    let mut report = report.lock().unwrap_or_else(|p| p.into_inner());
                    report.count(&scenario);
                    match verdict {
                        Ok(verdict) => {
                            report.add(verdict.stats);
                            if !verdict.is_ok() {
                                report.failures.push(Failure {
                                    seed,
                                    violations: verdict.violations,
                                });
                            }
                        }
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            report.failures.push(Failure {
                                seed,
                                violations: vec![format!("the simulation panicked: {message}")],
                            });
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let mut report = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.elapsed = started.elapsed();
    report.failures.sort_by_key(|f| f.seed);
    report
}

impl Report {
    fn add(&mut self, stats: Stats) {
        let t = &mut self.totals;
        t.records += stats.records;
        t.invocations += stats.invocations;
        t.applied += stats.applied;
        t.quarantined += stats.quarantined;
        t.discarded += stats.discarded;
        t.reruns += stats.reruns;
        t.duplicates += stats.duplicates;
        t.killed_with_process += stats.killed_with_process;
        t.ran_on_after_timeout += stats.ran_on_after_timeout;
    }

    fn count(&mut self, scenario: &Scenario) {
        self.scenarios += 1;
        let features = &scenario.features;
        let drawn = [
            (
                "per-key progress",
                features.progress == shardline::ProgressMode::PartitionKey,
            ),
            ("concurrency > 1", features.concurrency > 1),
            ("windows", features.window.is_some()),
            ("fan-out", features.fan_out.is_some()),
            (
                "aggregated fan-out",
                features.fan_out.is_some_and(|f| f.aggregate),
            ),
            (
                "throughput order",
                features
                    .fan_out
                    .is_some_and(|f| f.order == shardline::sink::DeliveryOrder::Throughput),
            ),
            ("KPL source", scenario.workload.kpl_max > 1),
            ("dedup", features.dedup),
            ("max age", features.max_age.is_some()),
            (
                "DynamoDB store",
                features.store == crate::scenario::StoreKind::DynamoDb,
            ),
            ("reshards", !scenario.reshards.is_empty()),
            ("PF > 1", scenario.mapping.parallelization > 1),
            ("bisect", scenario.mapping.bisect),
            ("retry limit", scenario.mapping.retry_limit.is_some()),
            ("crashes", scenario.faults.crash > 0.0),
            (
                "duplicate deliveries",
                scenario.faults.duplicate_delivery > 0.0,
            ),
            (
                "store faults",
                scenario.faults.store_fail
                    + scenario.faults.store_lose
                    + scenario.faults.store_cancel
                    > 0.0,
            ),
            ("operator replay and redrive", scenario.operator),
            (
                "several invocations per process (LMI)",
                scenario.environment_concurrency > 1,
            ),
            (
                "a crash failing a process's other invocations (LMI)",
                scenario.environment_concurrency > 1 && scenario.faults.crash > 0.0,
            ),
        ];
        for (name, on) in drawn {
            if !on {
                continue;
            }
            match self.coverage.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => self.coverage.push((name, 1)),
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation: {} scenarios in {:.1} s, {} failed; {}",
            self.scenarios,
            self.elapsed.as_secs_f64(),
            self.failures.len(),
            self.totals
        )?;
        let coverage: Vec<String> = self
            .coverage
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        writeln!(f, "drawn: {}", coverage.join(", "))?;
        for failure in self.failures.iter().take(10) {
            writeln!(
                f,
                "seed {} FAILED: {}",
                failure.seed,
                failure.violations.join(" | ")
            )?;
            writeln!(
                f,
                "  replay: cargo run -p shardline-sim -- run --seed {}",
                failure.seed
            )?;
        }
        Ok(())
    }
}

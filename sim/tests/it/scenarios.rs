//! The simulation in the test command: 1,000 generated scenarios
//! (`SHARDLINE_SIM_SCENARIOS` to change it, `SHARDLINE_SIM_FROM` for the
//! first seed), each checked by the oracle. A failure prints its seed and the
//! command that replays it; `shardline-sim run --seed N` also shrinks it.
//! A time-boxed soak: `cargo run -p shardline-sim -- soak --minutes 30`.

use shardline_sim::explore::{Exploration, explore};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn generated_scenarios_keep_every_promise() {
    let exploration = Exploration {
        from: env("SHARDLINE_SIM_FROM", 0),
        count: Some(env("SHARDLINE_SIM_SCENARIOS", 1_000)),
        minutes: None,
        threads: 2,
    };
    let report = explore(&exploration);
    println!("{report}");
    // The first lines beside the fault tests' summaries, which
    // `scripts/test.sh` shows at the end (the harness keeps a passing test's
    // output to itself).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fault-summaries.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let text = report.to_string();
        let summary: Vec<&str> = text.lines().take(2).collect();
        let _ =
            std::io::Write::write_all(&mut file, format!("{}\n", summary.join("\n")).as_bytes());
    }
    if let Some(first) = report.failures.first() {
        let scenario = shardline_sim::scenario::Scenario::draw(first.seed);
        let small = shardline_sim::shrink::shrink(&scenario);
        println!("seed {} shrunk:\n{small}", first.seed);
    }
    for feature in [
        "several invocations per process (LMI)",
        "a crash failing a process's other invocations (LMI)",
    ] {
        assert!(
            report
                .coverage
                .iter()
                .any(|(name, n)| *name == feature && *n > 0),
            "the matrix never drew {feature:?}: {:?}",
            report.coverage
        );
    }
    if report.scenarios >= 1_000 {
        // Observed, not only drawn: LMI's two ways an invocation meets another.
        assert!(report.totals.killed_with_process > 0, "{report}");
        assert!(report.totals.ran_on_after_timeout > 0, "{report}");
    }
    assert!(
        report.failures.is_empty(),
        "{} of {} scenarios broke a promise:\n{report}",
        report.failures.len(),
        report.scenarios
    );
}

/// A seed replays exactly: the same scenario twice gives the same run, call
/// for call (the time is tokio's paused clock, every choice comes from the
/// seed, and nothing depends on a hash map's order).
#[test]
fn a_seed_replays_exactly() {
    for seed in 0..24 {
        let scenario = shardline_sim::scenario::Scenario::draw(seed);
        let first = shardline_sim::run::run_traced(&scenario);
        let again = shardline_sim::run::run_traced(&scenario);
        assert_eq!(first, again, "seed {seed} ran differently the second time");
    }
}

/// Seeds an 8-minute soak found past the test command's range, each run again
/// here with what it found (the oracle judges them like any other).
#[test]
fn seeds_a_soak_found_keep_every_promise() {
    let found = [
        (
            4910,
            "a dedup copy skipped while its first copy was discarded: lost",
        ),
        (
            2193,
            "a destination's key order after two attempts decided otherwise",
        ),
        (4466, "the same, with aggregated throughput fan-out"),
        (
            5690,
            "a window resending an aggregate counted its poison record from one",
        ),
        (
            4115,
            "a parent's records discarded by age: children held until theirs are",
        ),
        (4324, "the same, merge, aggregated ordered fan-out"),
        (4563, "the same, merge then split"),
        (6214, "the same, split, bisect"),
        (7605, "the same, merge, children after the parent"),
        (10072, "the same, two merges, per-key progress"),
        (
            9657,
            "a dedup copy made to wait after its key went on: out of order",
        ),
        (10955, "the age caveat over two generations of children"),
        (
            16508,
            "a duplicate delivery landed a parent's quarantined record late",
        ),
        (
            46590,
            "a fan-out record left for the retry by its flush, stale on the retry",
        ),
        (
            66365,
            "the same, a producer duplicate skipped on the retry after a redrive",
        ),
        (
            79005,
            "the age caveat: held invocations shorter than the timeout",
        ),
        (
            6,
            "LMI: two slots of a shard at once in one process shared a fan-out buffer: lost",
        ),
        (
            105,
            "LMI: a duplicate delivery beside its batch in one process emptied its buffer: lost",
        ),
        (650, "LMI: the same, a key's records out of order"),
        (
            173088,
            "a duplicate delivery wrote a record Lambda had discarded after its key's later ones",
        ),
    ];
    // On two threads, as the generated scenarios (a few seeds run for
    // seconds each).
    std::thread::scope(|scope| {
        for first in [0, 1] {
            let half = found.iter().skip(first).step_by(2);
            scope.spawn(move || half.for_each(|(seed, what)| run_found(*seed, what)));
        }
    });
}

/// Runs a seed a soak found, as drawn and, for seeds found before the LMI
/// draw, with one invocation per process too.
fn run_found(seed: u64, what: &str) {
    let drawn = shardline_sim::scenario::Scenario::draw(seed);
    let verdict = shardline_sim::run::run(&drawn);
    assert!(
        verdict.is_ok(),
        "seed {seed} ({what}): {:?}",
        verdict.violations
    );
    // Seeds found before the matrix drew processes serving several
    // invocations ran one per process: that run too, as found.
    if !what.starts_with("LMI") && drawn.environment_concurrency > 1 {
        let mut found = drawn;
        found.environment_concurrency = 1;
        let verdict = shardline_sim::run::run(&found);
        assert!(
            verdict.is_ok(),
            "seed {seed} ({what}), one per process: {:?}",
            verdict.violations
        );
    }
}

/// Lambda Managed Instances in the simulation: with eight invocations per
/// process, a crash fails the process's other invocations too,
/// and every promise still holds; with one per process, none dies with
/// another's process.
#[test]
fn a_process_serving_eight_invocations_fails_them_all_when_it_dies_and_keeps_every_promise() {
    let mut killed = 0;
    for seed in 0..12 {
        let mut scenario = shardline_sim::scenario::Scenario::draw(seed);
        scenario.shards = 4;
        scenario.faults.crash = 0.3;
        scenario.environment_concurrency = 8;
        let verdict = shardline_sim::run::run(&scenario);
        assert!(verdict.is_ok(), "{scenario}\n{:?}", verdict.violations);
        killed += verdict.stats.killed_with_process;
        scenario.environment_concurrency = 1;
        let classic = shardline_sim::run::run(&scenario);
        assert!(classic.is_ok(), "{scenario}\n{:?}", classic.violations);
        assert_eq!(classic.stats.killed_with_process, 0, "{scenario}");
    }
    assert!(killed > 0, "some invocations died with their process");
}

/// Lambda Managed Instances in the simulation: a timed-out invocation fails
/// alone and its code runs on beside Lambda's retry of its batch (Lambda does
/// not stop it there), and every promise still holds; with one invocation
/// per process a timeout ends the process instead, and nothing runs on.
#[test]
fn on_managed_instances_a_timed_out_invocation_runs_on_beside_its_retry_and_keeps_every_promise() {
    let mut ran_on = 0;
    for seed in 0..12 {
        let mut scenario = shardline_sim::scenario::Scenario::draw(seed);
        scenario.shards = 4;
        scenario.features.time_reserve_ms = 1;
        scenario.faults.slow = 0.5;
        scenario.workload.hang = 0.05;
        scenario.environment_concurrency = 8;
        let verdict = shardline_sim::run::run(&scenario);
        assert!(verdict.is_ok(), "{scenario}\n{:?}", verdict.violations);
        ran_on += verdict.stats.ran_on_after_timeout;
        scenario.environment_concurrency = 1;
        let classic = shardline_sim::run::run(&scenario);
        assert!(classic.is_ok(), "{scenario}\n{:?}", classic.violations);
        assert_eq!(classic.stats.ran_on_after_timeout, 0, "{scenario}");
    }
    assert!(ran_on > 0, "some timed-out invocations ran on");
}

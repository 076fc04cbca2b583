//! The simulation in the test command: at least 2,000 generated scenarios
//! (`SHARDLINE_SIM_SCENARIOS` to change it, `SHARDLINE_SIM_FROM` for the
//! first seed), each checked by the oracle. A failure prints its seed and the
//! command that replays it; `shardline-sim run --seed N` also shrinks it.
//! A time-boxed soak: `cargo run --release -p shardline-sim -- soak --minutes 30`.

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
        count: Some(env("SHARDLINE_SIM_SCENARIOS", 2_000)),
        minutes: None,
        threads: 2,
    };
    let report = explore(&exploration);
    println!("{report}");
    if let Ok(path) = std::env::var("SHARDLINE_SIM_SUMMARY") {
        let _ = std::fs::write(path, report.to_string());
    }
    assert!(
        report.failures.is_empty(),
        "{} of {} scenarios broke a promise:\n{report}",
        report.failures.len(),
        report.scenarios
    );
}

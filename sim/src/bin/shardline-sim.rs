//! `shardline-sim`: runs the simulation's scenarios.
//!
//! ```text
//! shardline-sim run --seed N              one scenario, printed with its verdict
//! shardline-sim many [--from N] [--count M] [--threads T]
//! shardline-sim soak --minutes M [--threads T]
//! ```

use std::process::ExitCode;

use shardline_sim::explore::{Exploration, explore};
use shardline_sim::run::run;
use shardline_sim::scenario::Scenario;
use shardline_sim::shrink::shrink;

fn arg(args: &[String], name: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = arg(&args, "--threads").unwrap_or(2) as usize;
    match args.first().map(String::as_str) {
        Some("run") => {
            let Some(seed) = arg(&args, "--seed") else {
                eprintln!("run needs --seed N");
                return ExitCode::from(2);
            };
            if let Ok(spec) = std::env::var("SHARDLINE_SIM_LOG") {
                // The engine's own log lines, for a scenario being read closely.
                let level = spec.parse().unwrap_or(tracing::Level::WARN);
                tracing_subscriber::fmt()
                    .with_max_level(level)
                    .without_time()
                    .init();
            }
            let scenario = Scenario::draw(seed);
            println!("{scenario}");
            let verdict = run(&scenario);
            println!("{}", verdict.stats);
            if verdict.is_ok() {
                println!("ok");
                return ExitCode::SUCCESS;
            }
            for violation in &verdict.violations {
                println!("VIOLATION: {violation}");
            }
            if args.iter().any(|a| a == "--story") {
                for line in &verdict.story {
                    println!("  {line}");
                }
            }
            let small = shrink(&scenario);
            println!("shrunk:\n{small}");
            let again = run(&small);
            for violation in &again.violations {
                println!("VIOLATION: {violation}");
            }
            for line in &again.story {
                println!("  {line}");
            }
            ExitCode::FAILURE
        }
        Some("many") | Some("soak") => {
            let exploration = Exploration {
                from: arg(&args, "--from").unwrap_or(0),
                count: arg(&args, "--count"),
                minutes: arg(&args, "--minutes"),
                threads,
            };
            let report = explore(&exploration);
            println!("{report}");
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: shardline-sim run --seed N | many [--from N] [--count M] | soak --minutes M [--threads T]"
            );
            ExitCode::from(2)
        }
    }
}

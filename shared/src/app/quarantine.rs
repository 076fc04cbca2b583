//! The `quarantine` subcommands: list (`--count`), `replay`, `redrive`,
//! `purge`, with the same filters everywhere. Records go to stdout as JSON
//! lines; a one-line summary goes to stderr.

use serde::Serialize;

use super::invocation::InvocationHandler;
use super::{Error, Function};
use crate::quarantine::{
    Operation, QuarantineCommand, QuarantinedRecord, ReplayOptions, count_by_shard_and_reason,
    replay,
};

fn print_json(value: &impl Serialize) -> Result<(), Error> {
    let line = serde_json::to_string(value)
        .map_err(|e| Error::Usage(format!("cannot print JSON: {e}")))?;
    println!("{line}");
    Ok(())
}

/// One record's outcome as printed: the record's identity and the outcome.
#[derive(Serialize)]
struct OutcomeLine<'a, T: Serialize> {
    shard_id: &'a str,
    sequence_number: &'a str,
    subsequence_number: u64,
    partition_key: &'a str,
    #[serde(flatten)]
    outcome: &'a T,
}

fn outcome_line<'a, T: Serialize>(
    record: &'a QuarantinedRecord,
    outcome: &'a T,
) -> OutcomeLine<'a, T> {
    OutcomeLine {
        shard_id: &record.shard_id,
        sequence_number: &record.sequence_number,
        subsequence_number: record.subsequence_number,
        partition_key: &record.partition_key,
        outcome,
    }
}

/// `quarantine ...`: parses the arguments and runs the operation.
pub(super) async fn run<H: InvocationHandler>(
    function: &Function<H>,
    args: &[String],
) -> Result<(), Error> {
    let command = QuarantineCommand::parse(args, crate::time::now())
        .map_err(|e| Error::Usage(e.to_string()))?;
    let store = function.open_quarantine_store().await?;
    let consumer = function.consumer();
    let records = command
        .filter
        .select(store.list_quarantined(&consumer).await?);
    match command.operation {
        Operation::Replay {
            dry_run,
            include_interrupted,
        } => {
            let handler = function.handler.replay_handler().ok_or_else(|| {
                Error::Usage(
                    "quarantine replay: a windowed function's records belong to their window; \
                     put them back on a stream with quarantine redrive instead"
                        .into(),
                )
            })?;
            let options = ReplayOptions {
                dry_run,
                include_interrupted,
                timeout: function.settings.local_timeout,
            };
            let mut print_error = Ok(());
            let outcomes = replay(&*store, handler, &consumer, records, &options, |r, o| {
                if print_error.is_ok() {
                    print_error = print_json(&outcome_line(r, o));
                }
            })
            .await
            .map_err(|e| Error::Quarantine {
                command: "replay",
                source: e.into(),
            })?;
            print_error?;
            let tally = tally(outcomes.iter().map(|o| serde_json::to_value(o).ok()));
            eprintln!("{}: quarantine replay: {tally}", function.name);
        }
        Operation::Redrive { to_stream, dry_run } => {
            run_redrive(function, &*store, &to_stream, &consumer, records, dry_run).await?;
        }
        Operation::Purge => {
            for record in &records {
                print_json(record)?;
                store.remove_quarantined(&consumer, &record.key()).await?;
            }
            eprintln!(
                "{}: quarantine purge: {} deleted",
                function.name,
                records.len()
            );
        }
        Operation::List { count: true } => {
            for ((shard_id, reason), count) in count_by_shard_and_reason(&records) {
                print_json(
                    &serde_json::json!({"shard_id": shard_id, "reason": reason, "count": count}),
                )?;
            }
            eprintln!("{}: {} quarantined", function.name, records.len());
        }
        Operation::List { count: false } => {
            for record in &records {
                print_json(record)?;
            }
        }
    }
    Ok(())
}

/// "2 replayed, 1 failed" from the outcomes' `outcome` tags.
fn tally(outcomes: impl Iterator<Item = Option<serde_json::Value>>) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for outcome in outcomes.flatten() {
        let name = outcome["outcome"]
            .as_str()
            .unwrap_or("unknown")
            .replace('_', " ");
        *counts.entry(name).or_default() += 1;
    }
    if counts.is_empty() {
        return "no records".into();
    }
    counts
        .iter()
        .map(|(name, count)| format!("{count} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(feature = "kinesis")]
async fn run_redrive<H>(
    function: &Function<H>,
    store: &dyn crate::quarantine::QuarantineStore,
    stream: &str,
    consumer: &str,
    records: Vec<QuarantinedRecord>,
    dry_run: bool,
) -> Result<(), Error> {
    let client = crate::aws::kinesis_client().await;
    let mut print_error = Ok(());
    let outcomes = crate::quarantine::redrive(
        store,
        &client,
        stream,
        consumer,
        records,
        dry_run,
        |r, o| {
            if print_error.is_ok() {
                print_error = print_json(&outcome_line(r, o));
            }
        },
    )
    .await
    .map_err(|e| Error::Quarantine {
        command: "redrive",
        source: e.into(),
    })?;
    print_error?;
    let tally = tally(outcomes.iter().map(|o| serde_json::to_value(o).ok()));
    eprintln!("{}: quarantine redrive to {stream}: {tally}", function.name);
    Ok(())
}

#[cfg(not(feature = "kinesis"))]
async fn run_redrive<H>(
    _: &Function<H>,
    _: &dyn crate::state::QuarantineStore,
    _: &str,
    _: &str,
    _: Vec<QuarantinedRecord>,
    _: bool,
) -> Result<(), Error> {
    Err(Error::Usage(
        "quarantine redrive needs the `kinesis` feature".into(),
    ))
}

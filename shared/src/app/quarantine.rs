//! The `quarantine` subcommands: list (`--count`), `replay`, `redrive`,
//! `purge`, with the same filters everywhere. Records go to stdout as JSON
//! lines; a one-line summary goes to stderr.

use serde::Serialize;

use super::consumer::Consumer;
use super::{Error, Function};
use crate::ops::{ReplayOptions, replay};
use crate::quarantine::{
    QuarantineFilter, QuarantineReason, QuarantinedRecord, count_by_shard_and_reason, parse_time,
};

/// The command line after `quarantine`.
#[derive(Debug, Default)]
struct Args {
    command: &'static str,
    filter: QuarantineFilter,
    count: bool,
    dry_run: bool,
    include_interrupted: bool,
    all: bool,
    to_stream: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, Error> {
    let usage = |text: String| Error::Usage(format!("quarantine: {text}"));
    let mut parsed = Args {
        command: "list",
        ..Args::default()
    };
    let mut rest = args.iter().peekable();
    if let Some(name) = rest.peek().and_then(|command| {
        ["replay", "redrive", "purge"]
            .into_iter()
            .find(|c| c == command)
    }) {
        parsed.command = name;
        rest.next();
    }
    let now = crate::time::now();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| usage(format!("{flag} takes a value")))
        };
        let filter = &mut parsed.filter;
        match (parsed.command, flag.as_str()) {
            (_, "--shard") => filter.shard = Some(value()?),
            (_, "--reason") => {
                let text = value()?;
                filter.reason = Some(QuarantineReason::from_name(&text).ok_or_else(|| {
                    usage(format!(
                        "--reason is permanent, exhausted or undecodable, not {text:?}"
                    ))
                })?);
            }
            (_, "--since") => {
                filter.since = Some(parse_time(&value()?, now).map_err(|e| usage(e.to_string()))?)
            }
            (_, "--until") => {
                filter.until = Some(parse_time(&value()?, now).map_err(|e| usage(e.to_string()))?)
            }
            (_, "--limit") => {
                let text = value()?;
                let limit = text
                    .parse()
                    .map_err(|_| usage(format!("--limit takes a number, not {text:?}")))?;
                filter.limit = Some(limit);
            }
            ("list", "--count") => parsed.count = true,
            ("replay" | "redrive", "--dry-run") => parsed.dry_run = true,
            ("replay", "--include-interrupted") => parsed.include_interrupted = true,
            ("redrive", "--to-stream") => parsed.to_stream = Some(value()?),
            ("purge", "--all") => parsed.all = true,
            (command, other) => {
                return Err(usage(format!(
                    "unexpected argument {other:?} for {command}"
                )));
            }
        }
    }
    Ok(parsed)
}

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
pub(super) async fn run<H: Consumer>(function: &Function<H>, args: &[String]) -> Result<(), Error> {
    let args = parse(args)?;
    if args.command == "purge" && args.filter.is_empty() && !args.all {
        return Err(Error::Usage(
            "quarantine purge deletes records: give a filter, or --all for every record".into(),
        ));
    }
    if args.command == "redrive" && args.to_stream.is_none() {
        return Err(Error::Usage(
            "quarantine redrive needs --to-stream NAME".into(),
        ));
    }
    let store = function.open_quarantine_store().await?;
    let consumer = function.consumer();
    let records = args.filter.select(store.quarantined(&consumer).await?);
    match args.command {
        "replay" => {
            let handler = function.handler.replay_handler().ok_or_else(|| {
                Error::Usage(
                    "quarantine replay: a windowed function's records belong to their window; \
                     put them back on a stream with quarantine redrive instead"
                        .into(),
                )
            })?;
            let options = ReplayOptions {
                dry_run: args.dry_run,
                include_interrupted: args.include_interrupted,
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
        "redrive" => {
            let stream = args.to_stream.unwrap_or_default();
            redrive(function, &*store, &stream, &consumer, records, args.dry_run).await?;
        }
        "purge" => {
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
        _ if args.count => {
            for ((shard_id, reason), count) in count_by_shard_and_reason(&records) {
                print_json(
                    &serde_json::json!({"shard_id": shard_id, "reason": reason, "count": count}),
                )?;
            }
            eprintln!("{}: {} quarantined", function.name, records.len());
        }
        _ => {
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
async fn redrive<H>(
    function: &Function<H>,
    store: &dyn crate::state::QuarantineStore,
    stream: &str,
    consumer: &str,
    records: Vec<QuarantinedRecord>,
    dry_run: bool,
) -> Result<(), Error> {
    let client = crate::aws::kinesis_client().await;
    let mut print_error = Ok(());
    let outcomes = crate::ops::redrive(
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
async fn redrive<H>(
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

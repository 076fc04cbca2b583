//! The `quarantine` subcommand's arguments: which entries (the shared
//! filters) and what to do with them, checked before anything is read.

use std::time::SystemTime;

use super::{QuarantineFilter, QuarantineReason, parse_time};

/// `quarantine [replay | redrive | purge] [FILTERS] [FLAGS]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuarantineCommand {
    /// Which entries.
    pub(crate) filter: QuarantineFilter,
    /// What to do with them.
    pub(crate) operation: Operation,
}

/// What a `quarantine` command does with the entries it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Print them, or with `--count` their counts by shard and reason.
    List { count: bool },
    /// Run them through the handler again.
    Replay {
        dry_run: bool,
        include_interrupted: bool,
    },
    /// Put them back onto `to_stream`.
    Redrive { to_stream: String, dry_run: bool },
    /// Delete them (a filter, or `--all`, is required).
    Purge,
}

/// A `quarantine` command line that cannot be run, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CommandError(String);

/// The flags as given, before they are checked against each other.
#[derive(Default)]
struct Flags {
    count: bool,
    dry_run: bool,
    include_interrupted: bool,
    all: bool,
    to_stream: Option<String>,
}

impl QuarantineCommand {
    /// Parses the arguments after `quarantine`; `now` anchors relative
    /// times (`--since 2h`).
    ///
    /// # Errors
    /// [`CommandError`] for an unknown or misplaced flag, a bad value, a
    /// purge with neither filter nor `--all`, a redrive without `--to-stream`.
    pub(crate) fn parse(args: &[String], now: SystemTime) -> Result<Self, CommandError> {
        let usage = |text: String| CommandError(format!("quarantine: {text}"));
        let mut rest = args.iter().peekable();
        let command = match rest.peek().map(|c| c.as_str()) {
            Some(name @ ("replay" | "redrive" | "purge")) => {
                rest.next();
                name
            }
            _ => "list",
        };
        let mut filter = QuarantineFilter::default();
        let mut flags = Flags::default();
        while let Some(flag) = rest.next() {
            let mut value = || {
                rest.next()
                    .cloned()
                    .ok_or_else(|| usage(format!("{flag} takes a value")))
            };
            match (command, flag.as_str()) {
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
                    filter.since =
                        Some(parse_time(&value()?, now).map_err(|e| usage(e.to_string()))?)
                }
                (_, "--until") => {
                    filter.until =
                        Some(parse_time(&value()?, now).map_err(|e| usage(e.to_string()))?)
                }
                (_, "--limit") => {
                    let text = value()?;
                    let limit = text
                        .parse()
                        .map_err(|_| usage(format!("--limit takes a number, not {text:?}")))?;
                    filter.limit = Some(limit);
                }
                ("list", "--count") => flags.count = true,
                ("replay" | "redrive", "--dry-run") => flags.dry_run = true,
                ("replay", "--include-interrupted") => flags.include_interrupted = true,
                ("redrive", "--to-stream") => flags.to_stream = Some(value()?),
                ("purge", "--all") => flags.all = true,
                (command, other) => {
                    return Err(usage(format!(
                        "unexpected argument {other:?} for {command}"
                    )));
                }
            }
        }
        let operation = Self::operation(command, flags, &filter)?;
        Ok(QuarantineCommand { filter, operation })
    }

    /// The operation `command` names, once its flags are checked together.
    fn operation(
        command: &str,
        flags: Flags,
        filter: &QuarantineFilter,
    ) -> Result<Operation, CommandError> {
        Ok(match command {
            "replay" => Operation::Replay {
                dry_run: flags.dry_run,
                include_interrupted: flags.include_interrupted,
            },
            "redrive" => Operation::Redrive {
                to_stream: flags.to_stream.ok_or_else(|| {
                    CommandError("quarantine redrive needs --to-stream NAME".into())
                })?,
                dry_run: flags.dry_run,
            },
            "purge" if filter.is_empty() && !flags.all => {
                return Err(CommandError(
                    "quarantine purge deletes records: give a filter, or --all for every record"
                        .into(),
                ));
            }
            "purge" => Operation::Purge,
            _ => Operation::List { count: flags.count },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<QuarantineCommand, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        QuarantineCommand::parse(&args, SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())
    }

    #[test]
    fn each_operation_takes_its_own_flags_and_the_shared_filters() {
        let listed = parse(&["--count", "--shard", "shardId-1", "--limit", "3"]).unwrap();
        assert_eq!(listed.operation, Operation::List { count: true });
        assert_eq!(listed.filter.shard.as_deref(), Some("shardId-1"));
        assert_eq!(listed.filter.limit, Some(3));
        assert_eq!(
            parse(&["replay", "--dry-run", "--include-interrupted"])
                .unwrap()
                .operation,
            Operation::Replay {
                dry_run: true,
                include_interrupted: true
            }
        );
        assert_eq!(
            parse(&["redrive", "--to-stream", "orders"])
                .unwrap()
                .operation,
            Operation::Redrive {
                to_stream: "orders".into(),
                dry_run: false
            }
        );
        let purge = parse(&["purge", "--reason", "exhausted"]).unwrap();
        assert_eq!(purge.operation, Operation::Purge);
        assert_eq!(purge.filter.reason, Some(QuarantineReason::Exhausted));
        assert_eq!(
            parse(&["purge", "--all"]).unwrap().operation,
            Operation::Purge
        );
    }

    #[test]
    fn a_command_that_cannot_run_says_why() {
        assert_eq!(
            parse(&["purge"]).unwrap_err(),
            "quarantine purge deletes records: give a filter, or --all for every record"
        );
        assert_eq!(
            parse(&["redrive"]).unwrap_err(),
            "quarantine redrive needs --to-stream NAME"
        );
        assert_eq!(
            parse(&["--dry-run"]).unwrap_err(),
            "quarantine: unexpected argument \"--dry-run\" for list"
        );
        assert_eq!(
            parse(&["--limit"]).unwrap_err(),
            "quarantine: --limit takes a value"
        );
        assert!(
            parse(&["--reason", "tired"])
                .unwrap_err()
                .contains("not \"tired\"")
        );
    }
}

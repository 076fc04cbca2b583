//! On a developer's machine: the subcommands `invoke`, `quarantine`, `setup`,
//! `help`, and the function's own.

use std::path::PathBuf;
use std::time::Duration;

use super::invocation::{Invocation, InvocationHandler};
use super::{Error, Function};
use crate::decode::DecodeOptions;
use crate::time::Deadline;

/// Runs the subcommand named by `args`.
pub(super) async fn run<H: InvocationHandler>(
    function: Function<H>,
    args: Vec<String>,
) -> Result<(), Error> {
    let Some(command) = args.first().map(String::as_str) else {
        println!("{}", usage(&function));
        return Ok(());
    };
    match command {
        "invoke" => invoke(&function, &args[1..]).await,
        "setup" => setup(&function).await,
        "quarantine" => super::quarantine::run(&function, &args[1..]).await,
        "help" | "--help" | "-h" => {
            println!("{}", usage(&function));
            Ok(())
        }
        other => {
            let Some(found) = function.commands.iter().find(|c| c.name == other) else {
                return Err(Error::Usage(format!(
                    "unknown command {other:?}\n\n{}",
                    usage(&function)
                )));
            };
            (found.run)(function.handler.clone(), args[1..].to_vec())
                .await
                .map_err(|source| Error::Command {
                    name: other.to_owned(),
                    source,
                })
        }
    }
}

/// `invoke FILE [--remaining-ms N]`: one event file through the engine, with a
/// timeout as in Lambda.
async fn invoke<H: InvocationHandler>(
    function: &Function<H>,
    args: &[String],
) -> Result<(), Error> {
    let mut file = None;
    let mut deadline = Deadline::after(function.settings.local_timeout);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--remaining-ms" => {
                let ms = rest
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| Error::Usage("--remaining-ms takes milliseconds".into()))?;
                deadline = Deadline::after(Duration::from_millis(ms));
            }
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(Error::Usage(format!("unexpected argument {extra:?}"))),
        }
    }
    let path = file.ok_or_else(|| Error::Usage("invoke needs an event file".into()))?;
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let store = function.open_store().await?;
    let config = function.engine_config().await?;
    let invocation = Invocation {
        store: &*store,
        config: &config,
        deadline,
        decode: &DecodeOptions::default(),
    };
    let consumed = function
        .handler
        .consume(bytes::Bytes::from(bytes), invocation)
        .await?;
    let response = serde_json::to_string(&consumed.response)
        .map_err(|e| Error::Usage(format!("cannot print the response: {e}")))?;
    println!("{response}");
    eprintln!("{}: {}", function.name, consumed.report);
    Ok(())
}

/// `setup`: Shardline's state table and the function's own tables, each if its
/// variable is set.
async fn setup<H>(function: &Function<H>) -> Result<(), Error> {
    let mut named = Vec::new();
    if let Some(table) = &function.settings.state_table {
        named.push((table.clone(), "SHARDLINE_STATE_TABLE", None));
    }
    for spec in &function.tables {
        if let Some(name) = spec.table_name() {
            named.push((name, spec.env_var, Some(*spec)));
        }
    }
    if named.is_empty() {
        return Err(Error::Usage(format!(
            "setup creates DynamoDB tables, but none is named: set SHARDLINE_STATE_TABLE{}",
            function
                .tables
                .iter()
                .map(|t| format!(" or {}", t.env_var))
                .collect::<String>()
        )));
    }
    create_tables(named).await
}

#[cfg(feature = "dynamodb")]
async fn create_tables(
    tables: Vec<(String, &'static str, Option<crate::tables::TableSpec>)>,
) -> Result<(), Error> {
    use crate::aws::dynamodb::table::create_table;
    let client = crate::aws::dynamodb_client().await;
    for (name, variable, spec) in tables {
        let schema = spec.map_or(crate::state::dynamodb::KEY_SCHEMA, |s| s.key_schema());
        create_table(&client, &name, schema)
            .await
            .map_err(|e| Error::Setup(e.into()))?;
        eprintln!("table {name} ({variable}) is ready");
    }
    Ok(())
}

#[cfg(not(feature = "dynamodb"))]
async fn create_tables(
    _: Vec<(String, &'static str, Option<crate::tables::TableSpec>)>,
) -> Result<(), Error> {
    Err(Error::Usage(
        "this build has no DynamoDB support (feature `dynamodb`)".into(),
    ))
}

fn usage<H>(function: &Function<H>) -> String {
    let mut text = format!(
        "{name}: a Shardline Kinesis consumer\n\nUsage: {name} <command>\n\nCommands:\n  \
         invoke FILE [--remaining-ms N]  process one Lambda Kinesis event file (timeout: SHARDLINE_TIMEOUT_SECONDS)\n  \
         quarantine [FILTERS] [--count]  print quarantined records as JSON lines (--count: by shard and reason)\n  \
         quarantine replay [FILTERS] [--dry-run] [--include-interrupted]\n  \
         \x20                               run quarantined records through the handler again\n  \
         quarantine redrive --to-stream NAME [FILTERS] [--dry-run]\n  \
         \x20                               put quarantined records back on a stream\n  \
         quarantine purge [FILTERS | --all]  delete quarantined records, printing each\n  \
         \x20                               FILTERS: --shard ID --reason R --since T --until T --limit N\n  \
         setup                           create the DynamoDB tables named by the environment\n",
        name = function.name
    );
    for c in &function.commands {
        text.push_str(&format!("  {:<32}{}\n", c.name, c.about));
    }
    text
}

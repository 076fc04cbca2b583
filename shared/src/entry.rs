//! One entry point for every function: [`App::run`].
//!
//! Inside Lambda (`AWS_LAMBDA_RUNTIME_API` is set) it runs the Lambda runtime
//! loop. On a developer's machine the same binary takes subcommands:
//!
//! - `invoke FILE [--remaining-ms N]`: process one event file; stdout carries only
//!   the Lambda response JSON, stderr a one-line summary and the logs. As in
//!   Lambda, the invocation has a timeout: `--remaining-ms`, or
//!   `SHARDLINE_TIMEOUT_SECONDS` (60 by default, the template's timeout);
//! - `quarantine`: print the quarantined records as JSON lines;
//! - `setup`: create the DynamoDB tables the function needs (for local emulators;
//!   in AWS the SAM template creates them);
//! - the function's own commands, added with [`App::command`].
//!
//! With `SHARDLINE_STATE_TABLE` set, state lives in DynamoDB (endpoints from the
//! standard `AWS_ENDPOINT_URL*` variables); otherwise in the embedded SQLite store.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, Settings};
use crate::decode::{
    DecodedEvent, EventError, KinesisEventEnvelope, decode_envelope, decode_event,
};
use crate::engine::{EngineConfig, EngineError, process_event};
use crate::error::BoxError;
use crate::guard::ParentGuard;
use crate::handler::Handler;
use crate::record::Record;
use crate::response::BatchResponse;
use crate::skip::{DedupRule, SkipRules};
use crate::state::{EmbeddedStore, StateError, StateStore};
use crate::time::Deadline;

/// Why a Shardline program stopped.
#[derive(thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The state store could not be opened or used.
    #[error(transparent)]
    State(Box<StateError>),
    /// The event is not a Kinesis event.
    #[error(transparent)]
    Event(Box<EventError>),
    /// The engine failed.
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// A function's own command failed.
    #[error("command {name} failed: {source}")]
    Command {
        /// The command.
        name: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// The Lambda runtime stopped.
    #[error("Lambda runtime: {0}")]
    Runtime(#[source] BoxError),
}

// The inner errors are boxed so `Result<_, Error>` stays small.
macro_rules! boxed_from {
    ($($variant:ident($inner:ty)),*) => {$(
        impl From<$inner> for Error {
            fn from(error: $inner) -> Self {
                Error::$variant(Box::new(error))
            }
        }
    )*};
}
boxed_from!(
    Config(ConfigError),
    State(StateError),
    Event(EventError),
    Engine(EngineError)
);

// `main() -> Result<(), Error>` prints `Debug`: make it the readable message.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        let error_type = match &error {
            Error::Config(_) => "Shardline.Config",
            Error::State(_) => "Shardline.State",
            Error::Event(_) => "Shardline.NotAKinesisEvent",
            Error::Engine(_) => "Shardline.Engine",
            Error::Io { .. } => "Shardline.Io",
            Error::Usage(_) => "Shardline.Usage",
            Error::Command { .. } => "Shardline.Command",
            Error::Runtime(_) => "Shardline.Runtime",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

type CommandFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CommandFn<H> = Box<dyn Fn(Arc<H>, Vec<String>) -> CommandFuture + Send + Sync>;

/// A DynamoDB table a function needs, created by `setup` when its variable is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The environment variable that names the table.
    pub env_var: &'static str,
    /// The string hash key.
    pub hash_key: &'static str,
    /// The string range key, if any.
    pub range_key: Option<&'static str>,
    /// The TTL attribute, if any.
    pub ttl_attribute: Option<&'static str>,
}

struct Command<H> {
    name: &'static str,
    about: &'static str,
    run: CommandFn<H>,
}

/// A Shardline function: its handler, its rules and its extra commands.
///
/// ```no_run
/// use shardline::{App, HandlerError, Record};
///
/// #[tokio::main]
/// async fn main() -> Result<(), shardline::Error> {
///     let handler = shardline::handler_fn(|record: Record| async move {
///         let text = record.text().ok_or_else(|| HandlerError::permanent("not UTF-8"))?;
///         println!("{text}");
///         Ok(())
///     });
///     App::new("printer", handler).run().await
/// }
/// ```
pub struct App<H> {
    name: String,
    handler: Arc<H>,
    dedup: Option<DedupRule>,
    max_record_age: Option<Duration>,
    parent_guard: bool,
    tables: Vec<TableSpec>,
    commands: Vec<Command<H>>,
}

impl<H: Handler> App<H> {
    /// A function named `name` (the default consumer name of its state).
    pub fn new(name: impl Into<String>, handler: H) -> Self {
        App {
            name: name.into(),
            handler: Arc::new(handler),
            dedup: None,
            max_record_age: None,
            parent_guard: true,
            tables: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// Whether the parent-shard guard runs by default (it does; turn it off for
    /// an order-insensitive consumer). `SHARDLINE_PARENT_GUARD` overrides it. The
    /// guard needs shared state, so it only runs with `SHARDLINE_STATE_TABLE` unless
    /// `SHARDLINE_PARENT_GUARD=on` asks for it.
    pub fn parent_guard(mut self, on: bool) -> Self {
        self.parent_guard = on;
        self
    }

    /// Declares a DynamoDB table of the function's own, for the `setup` command.
    pub fn table(mut self, table: TableSpec) -> Self {
        self.tables.push(table);
        self
    }

    /// Skips records whose key (from `key`) another record claimed within `window`.
    pub fn dedup_by(
        mut self,
        window: Duration,
        key: impl Fn(&Record) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.dedup = Some(DedupRule {
            key: Arc::new(key),
            window,
        });
        self
    }

    /// Skips records older than `age` by default
    /// (`SHARDLINE_MAX_RECORD_AGE_SECONDS` overrides it).
    pub fn max_record_age(mut self, age: Duration) -> Self {
        self.max_record_age = Some(age);
        self
    }

    /// Adds a local subcommand. It gets the handler and the arguments after its name.
    pub fn command<F, Fut>(mut self, name: &'static str, about: &'static str, run: F) -> Self
    where
        F: Fn(Arc<H>, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.commands.push(Command {
            name,
            about,
            run: Box::new(move |handler, args| Box::pin(run(handler, args))),
        });
        self
    }

    /// Runs the function: the Lambda runtime loop inside Lambda, the subcommand
    /// named on the command line elsewhere.
    ///
    /// # Errors
    /// [`Error`] for invalid settings, an unusable state store, a bad command
    /// line or event file, or a failed command.
    pub async fn run(self) -> Result<(), Error> {
        let settings = Settings::from_env()?;
        if crate::config::in_lambda() {
            crate::logging::init_lambda(&settings.log);
            return self.run_lambda(settings).await;
        }
        crate::logging::init_local(&settings.log);
        let args: Vec<String> = std::env::args().skip(1).collect();
        self.run_command(settings, args).await
    }

    async fn engine_config(&self, settings: &Settings) -> Result<EngineConfig, Error> {
        let guard_on = settings
            .parent_guard
            .unwrap_or(self.parent_guard && settings.state_table.is_some());
        Ok(EngineConfig {
            consumer: settings
                .consumer
                .clone()
                .unwrap_or_else(|| self.name.clone()),
            max_attempts: settings.max_attempts,
            skip: SkipRules {
                max_record_age: settings.max_record_age.or(self.max_record_age),
                dedup: self.dedup.clone(),
            },
            time_reserve: settings.time_reserve,
            progress: settings.progress,
            guard: if guard_on {
                Some(Arc::new(parent_guard().await?))
            } else {
                None
            },
        })
    }

    async fn run_lambda(self, settings: Settings) -> Result<(), Error> {
        let store: Arc<dyn StateStore> = open_store(&settings).await?;
        if settings.state_table.is_none() {
            tracing::warn!(
                state_dir = %settings.state_dir.display(),
                "SHARDLINE_STATE_TABLE is not set: state is kept in this sandbox only and is lost \
                 with it; set it for durable checkpoints"
            );
        }
        let config = Arc::new(self.engine_config(&settings).await?);
        let metrics = Arc::new(crate::metrics::MetricsConfig::from_env(&self.name)?);
        let handler = self.handler;
        let service = lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<KinesisEventEnvelope>| {
                let (handler, store, config) = (handler.clone(), store.clone(), config.clone());
                let metrics = metrics.clone();
                async move {
                    let started = std::time::Instant::now();
                    let request_id = event.context.request_id.clone();
                    let deadline = Deadline::from_epoch_millis(event.context.deadline);
                    let result = async {
                        let decoded = decode_envelope(event.payload)?;
                        let range = BatchRange::of(&decoded);
                        let outcome =
                            process_event(decoded, &*handler, &*store, &config, deadline).await?;
                        Ok::<_, Error>((range, outcome))
                    }
                    .await;
                    // One metrics line per invocation, failed ones included.
                    crate::metrics::flush(
                        &metrics,
                        &crate::metrics::Invocation {
                            request_id: &request_id,
                            report: result.as_ref().ok().map(|(_, outcome)| &outcome.report),
                            duration: started.elapsed(),
                        },
                    );
                    let (range, outcome) = result?;
                    tracing::info!(
                        request_id = %request_id,
                        shard = %range.shards,
                        first_sequence = %range.first,
                        last_sequence = %range.last,
                        records = outcome.report.records,
                        processed = outcome.report.processed,
                        skipped = outcome.report.skipped(),
                        quarantined = outcome.report.quarantined(),
                        failed = outcome.report.failed,
                        iterator_age_ms = outcome
                            .report
                            .iterator_age
                            .map_or(0, |a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
                        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "batch done"
                    );
                    Ok::<BatchResponse, Error>(outcome.response)
                }
            },
        );
        lambda_runtime::run(service).await.map_err(Error::Runtime)
    }

    async fn run_command(self, settings: Settings, args: Vec<String>) -> Result<(), Error> {
        let Some(command) = args.first().map(String::as_str) else {
            println!("{}", self.usage());
            return Ok(());
        };
        match command {
            "invoke" => self.invoke(&settings, &args[1..]).await,
            "setup" => self.setup(&settings).await,
            "quarantine" => {
                let store = open_store(&settings).await?;
                let consumer = settings
                    .consumer
                    .clone()
                    .unwrap_or_else(|| self.name.clone());
                for record in store.quarantined(&consumer).await? {
                    let line = serde_json::to_string(&record)
                        .map_err(|e| Error::Usage(format!("cannot print quarantine: {e}")))?;
                    println!("{line}");
                }
                Ok(())
            }
            "help" | "--help" | "-h" => {
                println!("{}", self.usage());
                Ok(())
            }
            other => {
                let Some(found) = self.commands.iter().find(|c| c.name == other) else {
                    return Err(Error::Usage(format!(
                        "unknown command {other:?}\n\n{}",
                        self.usage()
                    )));
                };
                (found.run)(self.handler.clone(), args[1..].to_vec())
                    .await
                    .map_err(|source| Error::Command {
                        name: other.to_owned(),
                        source,
                    })
            }
        }
    }

    async fn invoke(&self, settings: &Settings, args: &[String]) -> Result<(), Error> {
        let mut file = None;
        let mut deadline = Deadline::after(settings.local_timeout);
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
        let decoded = decode_event(&bytes)?;
        let store = open_store(settings).await?;
        let config = self.engine_config(settings).await?;
        let outcome = process_event(decoded, &*self.handler, &*store, &config, deadline).await?;
        let response = serde_json::to_string(&outcome.response)
            .map_err(|e| Error::Usage(format!("cannot print the response: {e}")))?;
        println!("{response}");
        eprintln!("{}: {}", self.name, outcome.report);
        Ok(())
    }

    fn usage(&self) -> String {
        let mut text = format!(
            "{name}: a Shardline Kinesis consumer\n\nUsage: {name} <command>\n\nCommands:\n  \
             invoke FILE [--remaining-ms N]  process one Lambda Kinesis event file (timeout: SHARDLINE_TIMEOUT_SECONDS)\n  \
             quarantine                      print quarantined records as JSON lines\n  \
             setup                           create the DynamoDB tables named by the environment\n",
            name = self.name
        );
        for c in &self.commands {
            text.push_str(&format!("  {:<32}{}\n", c.name, c.about));
        }
        text
    }
}

impl<H> App<H> {
    /// Creates Shardline's state table and the function's own tables, each if
    /// its variable is set.
    async fn setup(&self, settings: &Settings) -> Result<(), Error> {
        let mut wanted: Vec<(String, TableSpec)> = Vec::new();
        if let Some(table) = &settings.state_table {
            wanted.push((
                table.clone(),
                TableSpec {
                    env_var: "SHARDLINE_STATE_TABLE",
                    hash_key: "pk",
                    range_key: Some("sk"),
                    ttl_attribute: Some("expires_at"),
                },
            ));
        }
        for spec in &self.tables {
            if let Some(name) = crate::config::process_env(spec.env_var).filter(|n| !n.is_empty()) {
                wanted.push((name, *spec));
            }
        }
        if wanted.is_empty() {
            return Err(Error::Usage(format!(
                "setup creates DynamoDB tables, but none is named: set SHARDLINE_STATE_TABLE{}",
                self.tables
                    .iter()
                    .map(|t| format!(" or {}", t.env_var))
                    .collect::<String>()
            )));
        }
        create_tables(&wanted).await
    }
}

#[cfg(feature = "dynamodb")]
async fn create_tables(tables: &[(String, TableSpec)]) -> Result<(), Error> {
    let client = crate::aws::dynamodb().await;
    for (name, spec) in tables {
        crate::state::dynamodb::create_table(
            &client,
            name,
            spec.hash_key,
            spec.range_key,
            spec.ttl_attribute,
        )
        .await?;
        eprintln!("table {name} ({}) is ready", spec.env_var);
    }
    Ok(())
}

#[cfg(not(feature = "dynamodb"))]
async fn create_tables(_: &[(String, TableSpec)]) -> Result<(), Error> {
    Err(Error::Usage(
        "this build has no DynamoDB support (feature `dynamodb`)".into(),
    ))
}

#[cfg(feature = "kinesis")]
async fn parent_guard() -> Result<ParentGuard, Error> {
    let directory = crate::guard::kinesis::KinesisShards::new(crate::aws::kinesis().await);
    Ok(ParentGuard::new(Arc::new(directory)))
}

#[cfg(not(feature = "kinesis"))]
async fn parent_guard() -> Result<ParentGuard, Error> {
    Err(Error::Usage(
        "the parent-shard guard needs the `kinesis` feature; set SHARDLINE_PARENT_GUARD=off".into(),
    ))
}

/// The shards and the sequence range of a batch, for its log line (never the payloads).
struct BatchRange {
    shards: String,
    first: String,
    last: String,
}

impl BatchRange {
    fn of(event: &DecodedEvent) -> Self {
        let mut shards: Vec<&str> = Vec::new();
        for item in &event.items {
            let shard = &*item.record().shard.shard_id;
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        let position = |item: Option<&crate::decode::Item>| {
            item.map_or_else(String::new, |i| i.record().position.to_string())
        };
        BatchRange {
            shards: shards.join(","),
            first: position(event.items.first()),
            last: position(event.items.last()),
        }
    }
}

/// Opens the state store the settings name: DynamoDB with
/// `SHARDLINE_STATE_TABLE`, else the embedded store.
async fn open_store(settings: &Settings) -> Result<Arc<dyn StateStore>, Error> {
    match &settings.state_table {
        #[cfg(feature = "dynamodb")]
        Some(table) => Ok(Arc::new(crate::state::DynamoDbStore::new(
            crate::aws::dynamodb().await,
            table.clone(),
        ))),
        #[cfg(not(feature = "dynamodb"))]
        Some(_) => Err(Error::Usage(
            "SHARDLINE_STATE_TABLE is set but this build has no DynamoDB support".into(),
        )),
        None => Ok(Arc::new(EmbeddedStore::open(&settings.state_dir)?)),
    }
}

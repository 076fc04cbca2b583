//! One entry point for every function: [`App::run`].
//!
//! Inside Lambda (`AWS_LAMBDA_RUNTIME_API` is set) it runs the Lambda runtime
//! loop (`lambda.rs`). On a developer's machine the same binary takes
//! subcommands (`commands.rs`):
//!
//! - `invoke FILE [--remaining-ms N]`: process one event file; stdout carries only
//!   the Lambda response JSON, stderr a one-line summary and the logs. As in
//!   Lambda, the invocation has a timeout: `--remaining-ms`, or
//!   `SHARDLINE_TIMEOUT_SECONDS` (60 by default, the template's timeout);
//! - `quarantine [replay | redrive --to-stream NAME | purge] [--shard ID]
//!   [--reason R] [--since T] [--until T] [--limit N]`: list (`--count`: by
//!   shard and reason), replay, redrive or purge quarantined records
//!   (`quarantine.rs`; README "Quarantine operations");
//! - `setup`: create the DynamoDB tables the function needs (for local emulators;
//!   in AWS the SAM template creates them);
//! - the function's own commands, added with [`App::command`].
//!
//! With `SHARDLINE_STATE_TABLE` set, state lives in DynamoDB (endpoints from the
//! standard `AWS_ENDPOINT_URL*` variables); otherwise in the embedded SQLite store.

mod commands;
mod invocation;
mod lambda;
mod quarantine;
mod raw_body;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, Settings};
use crate::decode::EventError;
use crate::engine::{EngineConfig, EngineError};
use crate::error::BoxError;
use crate::guard::ParentGuard;
use crate::record::Record;
use crate::skip::{DedupRule, SkipRules};
use crate::state::{EmbeddedStore, QuarantineStore, StateError, StateStore};
use crate::tables::TableSpec;
use crate::window::{WindowError, WindowEventError};

pub use invocation::{Invocation, InvocationHandler, InvocationOutput, NoReplay, Response};
/// The old names of [`InvocationHandler`] and [`InvocationOutput`] ("consumer"
/// is the name a function keeps its state under).
pub use invocation::{InvocationHandler as Consumer, InvocationOutput as Consumed};

/// Why a Shardline program stopped.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The function could not be set up (its handler or its own store).
    #[error("cannot set the function up: {0}")]
    Setup(#[source] BoxError),
    /// The state store could not be opened or used.
    #[error(transparent)]
    State(Box<StateError>),
    /// The event is not a Kinesis event.
    #[error(transparent)]
    Event(Box<EventError>),
    /// The engine failed.
    #[error(transparent)]
    Engine(Box<EngineError>),
    /// A windowed function's event is not a tumbling-window Kinesis event.
    #[error(transparent)]
    WindowEvent(Box<WindowEventError>),
    /// A windowed invocation failed (its state, or closing the window).
    #[error(transparent)]
    Window(Box<WindowError>),
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
    /// A quarantine operation failed.
    #[error("quarantine {command}: {source}")]
    Quarantine {
        /// The operation (`replay`, `redrive`, `purge`).
        command: &'static str,
        /// Its error.
        #[source]
        source: BoxError,
    },
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
    Engine(EngineError),
    WindowEvent(WindowEventError),
    Window(WindowError)
);

// `main() -> Result<(), Error>` prints `Debug`: make it the readable message.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

type CommandFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type CommandFn<H> = Box<dyn Fn(Arc<H>, Vec<String>) -> CommandFuture + Send + Sync>;
type BuildFuture<H> = Pin<Box<dyn Future<Output = Result<H, BoxError>> + Send>>;

struct Command<H> {
    name: &'static str,
    about: &'static str,
    run: CommandFn<H>,
}

/// Where the handler comes from: given, or built from the settings at start.
enum Source<H> {
    Ready(H),
    Build(Box<dyn FnOnce(Settings) -> BuildFuture<H> + Send>),
}

/// A Shardline function: its handler, its rules and its extra commands.
///
/// The handler is a [`crate::Handler`] (one record at a time), or a
/// [`crate::window::Windowed`] handler for a mapping with tumbling windows
/// (`App::new(name, Windowed::new(handler))`; see [`crate::window`]).
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
    source: Source<H>,
    dedup: Option<DedupRule>,
    max_record_age: Option<Duration>,
    parent_guard: bool,
    concurrency: Option<usize>,
    key_progress_ttl: Option<Duration>,
    tables: Vec<TableSpec>,
    commands: Vec<Command<H>>,
}

impl<H> std::fmt::Debug for App<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("max_record_age", &self.max_record_age)
            .field("parent_guard", &self.parent_guard)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<H: InvocationHandler> App<H> {
    /// A function named `name` (the default consumer name of its state).
    pub fn new(name: impl Into<String>, handler: H) -> Self {
        Self::with_source(name.into(), Source::Ready(handler))
    }

    /// A function whose handler is built from Shardline's settings, once,
    /// before the first batch (to open the function's own store in the state
    /// folder, say). In Lambda that is at the first invocation, not at init:
    /// the runtime asks for its first event without waiting for SDK clients or
    /// stores, and a function that never gets one never builds them. If the
    /// closure fails there, the error is logged and the process exits, so
    /// Lambda starts a fresh sandbox, as it would after a failed init.
    ///
    /// ```no_run
    /// use shardline::{App, Handler, HandlerError, Record};
    /// use shardline::config::Settings;
    ///
    /// struct Echo { folder: std::path::PathBuf }
    ///
    /// impl Handler for Echo {
    ///     async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
    ///         println!("{} {:?}", self.folder.display(), record.text());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// #[tokio::main]
    /// async fn main() -> Result<(), shardline::Error> {
    ///     App::build("echo", |settings: Settings| async move {
    ///         Ok(Echo { folder: settings.state_dir })
    ///     })
    ///     .run()
    ///     .await
    /// }
    /// ```
    pub fn build<F, Fut>(name: impl Into<String>, build: F) -> Self
    where
        F: FnOnce(Settings) -> Fut + Send + 'static,
        Fut: Future<Output = Result<H, BoxError>> + Send + 'static,
    {
        Self::with_source(
            name.into(),
            Source::Build(Box::new(move |settings| Box::pin(build(settings)))),
        )
    }

    fn with_source(name: String, source: Source<H>) -> Self {
        App {
            name,
            source,
            dedup: None,
            max_record_age: None,
            parent_guard: true,
            concurrency: None,
            key_progress_ttl: None,
            tables: Vec::new(),
            commands: Vec::new(),
        }
    }

    /// Records in flight at once within a batch, across distinct partition
    /// keys: a key's records still run one after another, in order, and a
    /// retryable failure stops only its key. 1 runs a shard's records one at a
    /// time. `SHARDLINE_CONCURRENCY` overrides it; without either,
    /// [`crate::config::DEFAULT_CONCURRENCY`]. 0 is taken as 1.
    ///
    /// The handler's `handle` is then called for several records at once (on
    /// one task: it overlaps waiting, such as requests to a database, not CPU work).
    pub fn concurrency(mut self, records: usize) -> Self {
        self.concurrency = Some(records.max(1));
        self
    }

    /// Whether the parent-shard guard runs by default (it does; turn it off for
    /// an order-insensitive consumer). `SHARDLINE_PARENT_GUARD` overrides it. The
    /// guard needs shared state, so it only runs with `SHARDLINE_STATE_TABLE` unless
    /// `SHARDLINE_PARENT_GUARD=on` asks for it.
    pub fn parent_guard(mut self, on: bool) -> Self {
        self.parent_guard = on;
        self
    }

    /// How long a partition key's progress (per-key mode) is kept after its
    /// last write, by default: at least the stream's retention period, so a
    /// key's progress outlives every record of it Lambda can still deliver.
    /// `SHARDLINE_KEY_PROGRESS_TTL_HOURS` overrides it; without either,
    /// [`crate::state::DEFAULT_KEY_PROGRESS_TTL`] (8 days). A TTL outside
    /// [`crate::config::KEY_PROGRESS_TTL_RANGE`] (24 hours to 366 days) stops
    /// the function at start.
    pub fn key_progress_ttl(mut self, ttl: Duration) -> Self {
        self.key_progress_ttl = Some(ttl);
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
    ///
    /// The age is checked on every delivery: a record Lambda retries after it
    /// grew stale is acknowledged then, even if an earlier attempt ran its
    /// handler (a flush that had not written it then never does).
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
    /// [`Error`] for invalid settings, a handler that cannot be built, an
    /// unusable state store, a bad command line or event file, or a failed command.
    pub async fn run(self) -> Result<(), Error> {
        let settings = Settings::from_env()?;
        let lambda = crate::config::in_lambda();
        let log = settings
            .log
            .clone()
            .unwrap_or_else(|| crate::logging::default_filter::<H>(lambda));
        if lambda {
            crate::logging::init_lambda(&log);
        } else {
            crate::logging::init_local(&log);
        }
        if lambda {
            // Nothing is built before the runtime asks for its first event.
            return lambda::run(self, settings).await;
        }
        let function = self.into_function(settings).await?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        commands::run(function, args).await
    }

    /// Builds the handler (running [`App::build`]'s closure).
    async fn into_function(self, settings: Settings) -> Result<Function<H>, Error> {
        if let Some(ttl) = self.key_progress_ttl
            && !crate::config::KEY_PROGRESS_TTL_RANGE.contains(&ttl)
        {
            return Err(Error::Usage(format!(
                "App::key_progress_ttl({ttl:?}) is not valid: expected 24 hours to 366 days, \
                 at least the stream's retention period"
            )));
        }
        let handler = match self.source {
            Source::Ready(handler) => handler,
            Source::Build(build) => build(settings.clone()).await.map_err(Error::Setup)?,
        };
        Ok(Function {
            name: self.name,
            handler: Arc::new(handler),
            dedup: self.dedup,
            max_record_age: self.max_record_age,
            parent_guard: self.parent_guard,
            concurrency: self.concurrency,
            key_progress_ttl: self.key_progress_ttl,
            tables: self.tables,
            commands: self.commands,
            settings,
        })
    }
}

/// A function with its handler built and its settings read.
struct Function<H> {
    name: String,
    handler: Arc<H>,
    dedup: Option<DedupRule>,
    max_record_age: Option<Duration>,
    parent_guard: bool,
    concurrency: Option<usize>,
    key_progress_ttl: Option<Duration>,
    tables: Vec<TableSpec>,
    commands: Vec<Command<H>>,
    settings: Settings,
}

impl<H> Function<H> {
    fn consumer(&self) -> String {
        self.settings
            .consumer
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }

    async fn engine_config(&self) -> Result<EngineConfig, Error> {
        let settings = &self.settings;
        let guard_on = settings
            .parent_guard
            .unwrap_or(self.parent_guard && settings.state_table.is_some());
        Ok(EngineConfig {
            consumer: self.consumer(),
            max_attempts: settings.max_attempts,
            skip: SkipRules {
                max_record_age: settings.max_record_age.or(self.max_record_age),
                dedup: self.dedup.clone(),
                handle_checkpointed: false,
            },
            time_reserve: settings.time_reserve,
            progress: settings.progress,
            guard: if guard_on {
                Some(Arc::new(parent_guard().await?))
            } else {
                None
            },
            concurrency: settings
                .concurrency
                .or(self.concurrency)
                .unwrap_or(crate::config::DEFAULT_CONCURRENCY),
        })
    }

    /// Opens the state store the settings name: DynamoDB with
    /// `SHARDLINE_STATE_TABLE`, else the embedded store.
    async fn open_store(&self) -> Result<Arc<dyn StateStore>, Error> {
        let ttl = self.key_progress_ttl();
        match &self.settings.state_table {
            #[cfg(feature = "dynamodb")]
            Some(table) => Ok(Arc::new(
                crate::state::DynamoDbStore::new(
                    crate::aws::dynamodb_client().await,
                    table.clone(),
                )
                .with_key_progress_ttl(ttl),
            )),
            #[cfg(not(feature = "dynamodb"))]
            Some(_) => Err(Error::Usage(
                "SHARDLINE_STATE_TABLE is set but this build has no DynamoDB support".into(),
            )),
            None => Ok(Arc::new(
                EmbeddedStore::open(&self.settings.state_dir)?.with_key_progress_ttl(ttl),
            )),
        }
    }

    /// How long per-key progress is kept: the setting, else the function's
    /// choice, else [`crate::state::DEFAULT_KEY_PROGRESS_TTL`].
    fn key_progress_ttl(&self) -> Duration {
        self.settings
            .key_progress_ttl
            .or(self.key_progress_ttl)
            .unwrap_or(crate::state::DEFAULT_KEY_PROGRESS_TTL)
    }

    /// [`Function::open_store`], for the quarantine operations.
    async fn open_quarantine_store(&self) -> Result<Arc<dyn QuarantineStore>, Error> {
        Ok(self.open_store().await?)
    }
}

#[cfg(test)]
mod tests;

#[cfg(feature = "kinesis")]
async fn parent_guard() -> Result<ParentGuard, Error> {
    let client = crate::aws::kinesis_client().await;
    let directory = crate::guard::kinesis::KinesisShards::new(client);
    Ok(ParentGuard::new(Arc::new(directory)))
}

#[cfg(not(feature = "kinesis"))]
async fn parent_guard() -> Result<ParentGuard, Error> {
    Err(Error::Usage(
        "the parent-shard guard needs the `kinesis` feature; set SHARDLINE_PARENT_GUARD=off".into(),
    ))
}

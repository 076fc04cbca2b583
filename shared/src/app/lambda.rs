//! Inside Lambda: the runtime loop, one batch per invocation, one metrics line
//! and one log line per invocation.

use std::sync::Arc;
use std::time::Duration;

use crate::time::Instant;

use bytes::Bytes;
use lambda_runtime::LambdaEvent;
use serde::de::IgnoredAny;
use tokio::sync::{Mutex, OnceCell};
use tracing::Instrument as _;

use super::invocation::{Invocation, InvocationHandler, InvocationOutput, Response};
use super::raw_body::{Bodies, RawBody};
use super::{App, Error};
use crate::config::Settings;
use crate::decode::{DecodeOptions, DecodedEvent, Item};
use crate::engine::EngineConfig;
use crate::state::StateStore;
use crate::time::Deadline;

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        let error_type = match &error {
            Error::Config(_) => "Shardline.Config",
            Error::Setup(_) => "Shardline.Setup",
            Error::State(_) => "Shardline.State",
            Error::Event(_) => "Shardline.NotAKinesisEvent",
            Error::Engine(_) => "Shardline.Engine",
            Error::WindowEvent(_) => "Shardline.NotAWindowEvent",
            Error::Window(_) => "Shardline.Window",
            Error::Io { .. } => "Shardline.Io",
            Error::Usage(_) => "Shardline.Usage",
            Error::Command { .. } => "Shardline.Command",
            Error::Quarantine { .. } => "Shardline.Quarantine",
            Error::Runtime(_) => "Shardline.Runtime",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What one invocation needs, shared by all; built at the first invocation.
struct Shared<H> {
    handler: Arc<H>,
    store: Arc<dyn StateStore>,
    config: EngineConfig,
    metrics: crate::metrics::MetricsConfig,
}

/// The function before its first invocation, and after it.
struct Lazy<H> {
    pending: Mutex<Option<(App<H>, Settings)>>,
    shared: OnceCell<Shared<H>>,
    bodies: Bodies,
}

impl<H: InvocationHandler> Lazy<H> {
    /// The shared parts, built on the first call. A failed build exits the
    /// process: its builder is spent, and Lambda starts a fresh sandbox.
    async fn shared(&self) -> &Shared<H> {
        let built = self
            .shared
            .get_or_try_init(|| async {
                let (app, settings) = self.pending.lock().await.take().ok_or_else(|| {
                    Error::Setup("the function's setup already failed in this sandbox".into())
                })?;
                Box::pin(setup(app, settings)).await
            })
            .await;
        match built {
            Ok(shared) => shared,
            Err(error) => {
                tracing::error!(error = %error, "the function cannot be set up; exiting so Lambda starts a fresh sandbox");
                std::process::exit(1)
            }
        }
    }
}

async fn setup<H: InvocationHandler>(app: App<H>, settings: Settings) -> Result<Shared<H>, Error> {
    let function = app.into_function(settings).await?;
    let store = function.open_store().await?;
    if function.settings.state_table.is_none() {
        tracing::warn!(
            state_dir = %function.settings.state_dir.display(),
            "SHARDLINE_STATE_TABLE is not set: state is kept in this sandbox only and is lost \
             with it; set it for durable checkpoints"
        );
    }
    Ok(Shared {
        config: function.engine_config().await?,
        metrics: crate::metrics::MetricsConfig::from_env(&function.name)?,
        handler: function.handler,
        store,
    })
}

/// How many invocations Lambda may hand this process at once:
/// `AWS_LAMBDA_MAX_CONCURRENCY`, set on Lambda Managed Instances to the
/// function's `PerExecutionEnvironmentMaxConcurrency`; 1 when unset or not a
/// number above 0 (classic Lambda), as the runtime reads it.
fn max_concurrency() -> u32 {
    std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Runs the Lambda runtime loop until the runtime stops.
///
/// The event's bytes are taken from the invocation as they came
/// ([`RawBody`]) and decoded by [`decode_event_with`], borrowing from them,
/// instead of being deserialized into owned strings by the runtime.
///
/// On Lambda Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` above 1) the
/// runtime's concurrent mode answers up to that many invocations at once, one
/// long-poll worker each, all sharing the one handler and store; otherwise the
/// runtime's one-at-a-time loop. Each invocation keeps its own event bytes
/// (by request id), deadline, counts and metrics line, and log span.
pub(super) async fn run<H: InvocationHandler>(
    app: App<H>,
    settings: Settings,
) -> Result<(), Error> {
    let lazy = Arc::new(Lazy {
        pending: Mutex::new(Some((app, settings))),
        shared: OnceCell::new(),
        bodies: Bodies::default(),
    });
    let bodies = lazy.bodies.clone();
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<IgnoredAny>| {
        let lazy = lazy.clone();
        async move {
            let body = lazy.bodies.take(&event.context.request_id)?;
            let shared = lazy.shared().await;
            // Boxed, so that the future every runtime layer builds and moves
            // stays small: on Lambda Managed Instances an invocation runs on
            // a tokio worker thread (2 MiB of stack), where an unboxed one,
            // copied through each layer's `call`, overflows a debug build.
            Box::pin(invocation(shared, body, event.context)).await
        }
    });
    let runtime = lambda_runtime::Runtime::new(service)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(RawBody { bodies });
    let concurrency = max_concurrency();
    let ran = if concurrency > 1 {
        tracing::info!(
            concurrency,
            "Lambda Managed Instances: up to {concurrency} invocations at once in this process"
        );
        runtime.run_concurrent().await
    } else {
        runtime.run().await
    };
    ran.map_err(Error::Runtime)
}

/// One invocation: decode, process, a metrics line, a log line, the response.
async fn invocation<H: InvocationHandler>(
    shared: &Shared<H>,
    body: Bytes,
    context: lambda_runtime::Context,
) -> Result<Response, Error> {
    let started = Instant::now();
    let request_id = context.request_id;
    let invocation = Invocation {
        store: &*shared.store,
        config: &shared.config,
        deadline: Deadline::from_epoch_millis(context.deadline),
        decode: &DecodeOptions::default(),
    };
    // The batch's own log span: the runtime's span above it carries the
    // request id, this one the shard once the event is decoded, so that every
    // line of overlapping invocations says which batch it belongs to.
    let span = tracing::info_span!("batch", shard = tracing::field::Empty);
    let consume = Box::pin(shared.handler.consume(body, invocation));
    let (result, added) = crate::metrics::counted(consume).instrument(span).await;
    // One metrics line per invocation, failed ones included.
    crate::metrics::flush(
        &shared.metrics,
        &crate::metrics::Invocation {
            request_id: &request_id,
            report: result.as_ref().ok().map(|consumed| &consumed.report),
            duration: started.elapsed(),
        },
        added,
    );
    let consumed = result?;
    log_batch(&request_id, &consumed, started.elapsed());
    Ok(consumed.response)
}

fn log_batch(request_id: &str, consumed: &InvocationOutput, took: Duration) {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (range, report) = (&consumed.range, &consumed.report);
    tracing::info!(
        request_id = %request_id,
        shard = %range.shards,
        first_sequence = %range.first,
        last_sequence = %range.last,
        records = report.records,
        processed = report.processed,
        skipped = report.skipped(),
        quarantined = report.quarantined(),
        failed = report.failed,
        iterator_age_ms = report.iterator_age.map_or(0, millis),
        duration_ms = millis(took),
        "batch done"
    );
}

/// The shards and the sequence range of a batch, for its log line (never the payloads).
#[derive(Debug)]
pub(crate) struct BatchRange {
    shards: String,
    first: String,
    last: String,
}

impl BatchRange {
    /// Names the batch's shards on the current log span's `shard` field (the
    /// invocation's, inside Lambda; nothing elsewhere).
    pub(crate) fn record_shard(&self) {
        tracing::Span::current().record("shard", self.shards.as_str());
    }

    pub(crate) fn of(event: &DecodedEvent) -> Self {
        let mut shards: Vec<&str> = Vec::new();
        for item in &event.items {
            let shard = &*item.record().shard.shard_id;
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        let position = |item: Option<&Item>| {
            item.map_or_else(String::new, |i| i.record().position.to_string())
        };
        BatchRange {
            shards: shards.join(","),
            first: position(event.items.first()),
            last: position(event.items.last()),
        }
    }
}

//! Inside Lambda: the runtime loop, one batch per invocation, one metrics line
//! and one log line per invocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Error, Function};
use crate::decode::{DecodedEvent, Item, KinesisEventEnvelope, decode_envelope};
use crate::engine::{BatchOutcome, EngineConfig, process_event};
use crate::handler::Handler;
use crate::response::BatchResponse;
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

/// What one invocation needs, shared by all.
struct Shared<H> {
    handler: Arc<H>,
    store: Arc<dyn StateStore>,
    config: EngineConfig,
    metrics: crate::metrics::MetricsConfig,
}

/// Runs the Lambda runtime loop until the runtime stops.
pub(super) async fn run<H: Handler>(function: Function<H>) -> Result<(), Error> {
    let store = function.open_store().await?;
    if function.settings.state_table.is_none() {
        tracing::warn!(
            state_dir = %function.settings.state_dir.display(),
            "SHARDLINE_STATE_TABLE is not set: state is kept in this sandbox only and is lost \
             with it; set it for durable checkpoints"
        );
    }
    let shared = Arc::new(Shared {
        config: function.engine_config().await?,
        metrics: crate::metrics::MetricsConfig::from_env(&function.name)?,
        handler: function.handler,
        store,
    });
    let service = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<KinesisEventEnvelope>| {
            let shared = shared.clone();
            async move { invocation(&shared, event).await }
        },
    );
    lambda_runtime::run(service).await.map_err(Error::Runtime)
}

/// One invocation: decode, process, a metrics line, a log line, the response.
async fn invocation<H: Handler>(
    shared: &Shared<H>,
    event: lambda_runtime::LambdaEvent<KinesisEventEnvelope>,
) -> Result<BatchResponse, Error> {
    let started = Instant::now();
    let request_id = event.context.request_id.clone();
    let deadline = Deadline::from_epoch_millis(event.context.deadline);
    let result = async {
        let decoded = decode_envelope(event.payload)?;
        let range = BatchRange::of(&decoded);
        let outcome = process_event(
            decoded,
            &*shared.handler,
            &*shared.store,
            &shared.config,
            deadline,
        )
        .await?;
        Ok::<_, Error>((range, outcome))
    }
    .await;
    // One metrics line per invocation, failed ones included.
    crate::metrics::flush(
        &shared.metrics,
        &crate::metrics::Invocation {
            request_id: &request_id,
            report: result.as_ref().ok().map(|(_, outcome)| &outcome.report),
            duration: started.elapsed(),
        },
    );
    let (range, outcome) = result?;
    log_batch(&request_id, &range, &outcome, started.elapsed());
    Ok(outcome.response)
}

fn log_batch(request_id: &str, range: &BatchRange, outcome: &BatchOutcome, took: Duration) {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let report = &outcome.report;
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

//! `fanout`: copies every record of the source stream to N Kinesis streams
//! (seed 001), never losing one (failed PutRecords entries are retried), not
//! writing one twice on a Lambda retry (delivery progress beside the
//! checkpoint), in order per partition key by default. KPL aggregates are
//! fanned out as user records, and with `FANOUT_AGGREGATE=on` the records bound
//! for one destination shard go out packed in KPL aggregates. Settings: [`settings`].

mod destinations;
mod settings;

use std::sync::Arc;

use shardline::config::Settings;
use shardline::sink::file::FileSink;
use shardline::sink::kinesis::KinesisSink;
use shardline::sink::{FanOut, Sink};
use shardline::{App, BoxError};

use crate::destinations::{ConfigTable, ConfiguredDestinations, SinkFactory};
use crate::settings::{CONFIG_TABLE, FanoutSettings, SinkKind};

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    App::build("fanout", fanout)
        .table(CONFIG_TABLE)
        .command(
            "stats",
            "print this process's fan-out request and retry counts",
            stats,
        )
        .run()
        .await
}

/// The handler, from the settings.
async fn fanout(settings: Settings) -> Result<FanOut, BoxError> {
    let config = FanoutSettings::from_lookup(
        &shardline::config::process_env,
        shardline::config::in_lambda(),
        &settings.state_dir,
    )?;
    let (order, max_record_bytes) = (config.order, config.max_record_bytes);
    let aggregate = config.aggregate;
    let make: SinkFactory = match config.sink {
        SinkKind::Kinesis => {
            let client = shardline::aws::kinesis_client().await;
            Box::new(move |name: &str| -> Arc<dyn Sink> {
                Arc::new(
                    KinesisSink::new(client.clone(), name)
                        .order(order)
                        .max_record_bytes(max_record_bytes)
                        .aggregate(aggregate),
                )
            })
        }
        SinkKind::File(dir) => Box::new(move |name: &str| -> Arc<dyn Sink> {
            let file = name.rsplit(['/', ':']).next().unwrap_or(name);
            Arc::new(
                FileSink::new(name, dir.join(format!("{file}.jsonl")))
                    .max_record_bytes(max_record_bytes),
            )
        }),
    };
    let table = match config.config_table {
        Some(table) => Some(ConfigTable {
            client: shardline::aws::dynamodb_client().await,
            table,
            ttl: config.config_ttl,
        }),
        None => None,
    };
    let destinations = ConfiguredDestinations::new(config.destinations, table, make);
    Ok(FanOut::new(destinations, max_record_bytes))
}

async fn stats(fanout: Arc<FanOut>, _args: Vec<String>) -> Result<(), BoxError> {
    println!(
        "{{\"requests\":{},\"retried_entries\":{}}}",
        fanout.requests(),
        fanout.retried_entries()
    );
    Ok(())
}

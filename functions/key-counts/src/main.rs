//! `key-counts`: records and bytes per partition key per tumbling window.
//!
//! The event source mapping sets `TumblingWindowInSeconds`: Lambda carries
//! each window's counts from one invocation to the next in the event's
//! `state` ([`Counts`]: `{"first": ..., "keys": {"<key>": [records, bytes]}}`),
//! and at the window's final invocation the function adds them to its table
//! (`KEY_COUNTS_TABLE` in DynamoDB, `key-counts.sqlite` locally): one row per
//! window, shard and partition key. Any payload counts; an undecodable record
//! is quarantined by Shardline and counts nowhere. A window Lambda ends early
//! (its state over 1 MB) is written in parts that add up to the same rows.

mod counts;
mod dynamodb;
mod store;

use std::sync::Arc;

use shardline::window::{WindowHandler, WindowInfo, Windowed};
use shardline::{App, HandlerError, Record};

use crate::counts::Counts;
use crate::store::{CountStore, KEY_COUNTS_TABLE};

struct KeyCounts {
    store: CountStore,
}

impl WindowHandler for KeyCounts {
    type State = Counts;

    fn add(&self, state: &mut Counts, record: &Record) -> Result<(), HandlerError> {
        state.add(record);
        Ok(())
    }

    async fn close(&self, window: &WindowInfo, state: &Counts) -> Result<(), HandlerError> {
        self.store.write(window, state).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    App::build("key-counts", |settings| async move {
        Ok(Windowed::new(KeyCounts {
            store: CountStore::open(&settings).await?,
        }))
    })
    .table(KEY_COUNTS_TABLE)
    .command(
        "counts",
        "print every window's counts as JSON lines (window, shard, key, records, bytes)",
        print_counts,
    )
    .run()
    .await
}

async fn print_counts(
    function: Arc<Windowed<KeyCounts>>,
    _args: Vec<String>,
) -> Result<(), shardline::BoxError> {
    for row in function.store.rows().await? {
        println!("{}", serde_json::to_string(&row)?);
    }
    Ok(())
}

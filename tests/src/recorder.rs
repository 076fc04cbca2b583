//! A recording handler and a one-call engine run against a fresh DynamoDB
//! state table, for the state tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use shardline::decode::decode_event;
use shardline::state::DynamoDbStore;
use shardline::{
    BatchOutcome, Deadline, EngineConfig, Handler, HandlerError, Record, process_event,
};

use crate::lambda::{EventRecord, event, stream_arn};
use crate::{Emulators, RequestCounter, unique_name};

/// A handler that records the payloads it saw (as text) and fails as told.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<String>>>,
    /// Payloads that fail with a retryable error.
    pub retry: Arc<Mutex<Vec<String>>>,
    /// Payloads that fail permanently.
    pub permanent: Arc<Mutex<Vec<String>>>,
    /// Payloads whose handling waits on this notify first.
    pub gate: Option<Arc<tokio::sync::Notify>>,
}

impl Recorder {
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let text = String::from_utf8_lossy(&record.data).into_owned();
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        if self.retry.lock().unwrap().contains(&text) {
            return Err(HandlerError::retryable(format!("{text} not yet")));
        }
        if self.permanent.lock().unwrap().contains(&text) {
            return Err(HandlerError::permanent(format!("{text} is poison")));
        }
        self.seen.lock().unwrap().push(text);
        Ok(())
    }
}

pub async fn fresh_store() -> (DynamoDbStore, RequestCounter) {
    let emulators = Emulators::from_env();
    let (client, counter) = emulators.dynamodb_counted();
    let store = DynamoDbStore::new(client, unique_name("state"));
    store.create_table().await.unwrap();
    counter.reset();
    (store, counter)
}

pub async fn run(
    records: &[EventRecord],
    shard: &str,
    handler: &Recorder,
    store: &DynamoDbStore,
    config: &EngineConfig,
) -> BatchOutcome {
    run_with(records, shard, handler, store, config).await
}

/// [`run`] with any handler.
pub async fn run_with<H: Handler>(
    records: &[EventRecord],
    shard: &str,
    handler: &H,
    store: &DynamoDbStore,
    config: &EngineConfig,
) -> BatchOutcome {
    let json = event(&stream_arn("orders"), shard, records);
    process_event(
        decode_event(&json).unwrap(),
        handler,
        store,
        config,
        Deadline::none(),
    )
    .await
    .unwrap()
}

pub fn text(i: u64) -> Vec<u8> {
    format!("r{i}").into_bytes()
}

pub fn counts(counter: &RequestCounter) -> BTreeMap<String, u64> {
    counter.take()
}

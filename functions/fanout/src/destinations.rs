//! Where the fan-out sends records: `FANOUT_DESTINATIONS`, and optionally a
//! DynamoDB configuration table keyed by source stream ARN (targets change
//! without a redeploy), read whole (every page) and cached for a short time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use shardline::BoxError;
use shardline::aws::dynamodb::attr::{get_s, s};
use shardline::aws::dynamodb::read;
use shardline::sink::{Destinations, Sink};

/// Makes the sink for a destination name.
pub(crate) type SinkFactory = Box<dyn Fn(&str) -> Arc<dyn Sink> + Send + Sync>;

/// The configuration table: hash key `source_arn`, range key `destination`,
/// optional boolean `enabled` (default true).
pub(crate) struct ConfigTable {
    pub client: Client,
    pub table: String,
    pub ttl: Duration,
}

/// Fixed destinations plus those of the configuration table.
pub(crate) struct ConfiguredDestinations {
    fixed: Vec<String>,
    table: Option<ConfigTable>,
    make: SinkFactory,
    sinks: Mutex<HashMap<String, Arc<dyn Sink>>>,
    cache: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl ConfiguredDestinations {
    pub(crate) fn new(fixed: Vec<String>, table: Option<ConfigTable>, make: SinkFactory) -> Self {
        ConfiguredDestinations {
            fixed,
            table,
            make,
            sinks: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn sink(&self, name: &str) -> Arc<dyn Sink> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        sinks
            .entry(name.to_owned())
            .or_insert_with(|| (self.make)(name))
            .clone()
    }

    async fn read_table(
        &self,
        table: &ConfigTable,
        source_arn: &str,
    ) -> Result<Vec<String>, BoxError> {
        if let Some((at, names)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source_arn)
            && at.elapsed() < table.ttl
        {
            return Ok(names.clone());
        }
        let query = table
            .client
            .query()
            .table_name(&table.table)
            .key_condition_expression("source_arn = :arn")
            .expression_attribute_values(":arn", s(source_arn));
        let items = read::query_all(query, "read the fan-out configuration table")
            .await
            .map_err(|e| format!("fan-out configuration table {}: {e}", table.table))?;
        let names: Vec<String> = items
            .iter()
            .filter(|item| {
                item.get("enabled")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(true)
            })
            .filter_map(|item| get_s(item, "destination").map(str::to_owned))
            .collect();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source_arn.to_owned(), (Instant::now(), names.clone()));
        Ok(names)
    }
}

#[async_trait]
impl Destinations for ConfiguredDestinations {
    async fn for_stream(&self, stream_arn: &str) -> Result<Vec<Arc<dyn Sink>>, BoxError> {
        let mut names = self.fixed.clone();
        if let Some(table) = &self.table {
            for name in self.read_table(table, stream_arn).await? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if names.is_empty() {
            tracing::warn!(source = %stream_arn, "no fan-out destination for this stream: records are acknowledged unsent");
        }
        Ok(names.iter().map(|name| self.sink(name)).collect())
    }
}

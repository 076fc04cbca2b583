//! The counts in DynamoDB (`KEY_COUNTS_TABLE`): one item per window, shard and
//! key (`pk = window#{start}`, `sk = {shard}#{key}`), with `records`, `bytes`
//! and `parts`, the set of window parts already added.
//!
//! Each key's counts are added with one conditional UpdateItem: `ADD` to the
//! counts and to `parts`, only if `parts` does not hold this part yet. A part
//! written again adds nothing, item by item, so a close that failed half-way
//! finishes on the retry without counting anything twice.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use shardline::aws::dynamodb::attr::{get_n, get_s, item, n, s};
use shardline::aws::dynamodb::{DynamoError, read};
use shardline::tables::StoreError;
use shardline::window::WindowInfo;

use crate::counts::{Counts, KeyCount};
use crate::store::Row;

/// Keys written at once at a window's close.
const WRITES_IN_FLIGHT: usize = 16;

/// The counts' DynamoDB store.
pub(crate) struct DynamoCounts {
    client: Client,
    table: String,
}

impl DynamoCounts {
    /// The counts in `table` (hash key `pk`, range key `sk`, both strings).
    pub(crate) fn new(client: Client, table: String) -> Self {
        DynamoCounts { client, table }
    }

    /// Adds each key's counts of `part` of `window`, unless already added.
    pub(crate) async fn write(
        &self,
        window: &WindowInfo,
        part: &str,
        counts: &Counts,
    ) -> Result<(), StoreError> {
        // The futures are made first: a closure inside the stream would make
        // the close's future not Send (a higher-ranked lifetime limitation).
        let writes: Vec<_> = counts
            .keys
            .iter()
            .map(|(key, count)| self.add(window, part, key, *count))
            .collect();
        stream::iter(writes)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn add(
        &self,
        window: &WindowInfo,
        part: &str,
        key: &str,
        count: KeyCount,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item([
                ("pk", s(format!("window#{}", window.start))),
                ("sk", s(format!("{}#{key}", window.shard_id))),
            ])))
            .update_expression(
                "ADD records :records, bytes :bytes, parts :parts \
                 SET window_start = :start, window_end = :end, stream_arn = :arn, \
                 shard_id = :shard, partition_key = :key",
            )
            .condition_expression("attribute_not_exists(parts) OR NOT contains(parts, :part)")
            .expression_attribute_values(":records", n(count.records()))
            .expression_attribute_values(":bytes", n(count.bytes()))
            .expression_attribute_values(":parts", AttributeValue::Ss(vec![part.to_owned()]))
            .expression_attribute_values(":part", s(part))
            .expression_attribute_values(":start", s(window.start.clone()))
            .expression_attribute_values(":end", s(window.end.clone()))
            .expression_attribute_values(":arn", s(window.stream_arn.clone()))
            .expression_attribute_values(":shard", s(window.shard_id.clone()))
            .expression_attribute_values(":key", s(key))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // This part of the window was added to this key before.
                Ok(())
            }
            Err(error) => Err(DynamoError::service("add a key's window counts", error).into()),
        }
    }

    /// Every row (a full scan: for the `counts` command).
    pub(crate) async fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true);
        let items = read::scan_all(scan, "scan window counts").await?;
        Ok(items
            .iter()
            .map(|item| {
                let text = |name: &str| get_s(item, name).unwrap_or_default().to_owned();
                Row {
                    window_start: text("window_start"),
                    window_end: text("window_end"),
                    stream_arn: text("stream_arn"),
                    shard_id: text("shard_id"),
                    partition_key: text("partition_key"),
                    records: get_n(item, "records").unwrap_or(0),
                    bytes: get_n(item, "bytes").unwrap_or(0),
                }
            })
            .collect())
    }
}

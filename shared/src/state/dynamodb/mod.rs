//! The DynamoDB store: all of Shardline's state in one table.
//!
//! Key schema: string hash key `pk`, string range key `sk`, on-demand capacity,
//! TTL on `expires_at`. Keys carry the consumer's name and the stream ARN, so one
//! table serves many functions and one function can read several streams.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | shard | `{consumer}#shard#{stream_arn}#{shard_id}` | `state` | `checkpoint`, `done_after`, `failing_heads`, `delivered`, `version`, `lineage`, `lineage_rank`, `parents`, `status`, `children` |
//! | key progress | `{consumer}#key#{stream_arn}#{shard_id}#{partition_key}` | `progress` | `checkpoint`, `done_after`, `failing_heads`, `delivered`, `version`, `expires_at` (TTL) |
//! | dedup claim | `{consumer}#dedup#{key}` | `claim` | `owner`, `expires_ms`, `expires_at` (TTL) |
//! | quarantine | `{consumer}#quarantine` | `{stream_arn}#{shard_id}#{sequence}#{subsequence}` | record fields, `data`, `parts` |
//! | quarantine part | same `pk` | the entry's `sk` + `#part#0001`... | `data` |
//!
//! `delivered` is a map from destination to the text of its position ranges
//! ([`crate::state::PositionRanges`]). Positions are stored as
//! `{sequence, 129 digits}.{subsequence, 20 digits}`, so the string comparisons
//! of condition expressions order them as numbers. Every progress write is
//! conditional: a commit names the version it read (of the shard, or of the
//! key), so a stale invocation cannot overwrite a newer one, and a checkpoint
//! never moves backwards.
//!
//! Requests per batch: checkpoint mode reads the shard item (GetItem) and writes
//! it (one UpdateItem; with quarantined records, one TransactWriteItems holding
//! the progress, the quarantine entries and the dedup claims given back, all
//! under the fence, see `commit.rs`; the parts of payloads over 300 KB go first
//! in BatchWriteItems of 25): 2 in the steady state. Per-key mode and dedup
//! claims batch 100 items a request.

mod commit;
mod items;
mod keys;
mod lineage;
mod progress;
mod quarantine;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{Delete, Put, Update};

use self::commit::Group;
use self::items::record_items;
use self::keys::{PK, SK, dedup_pk, shard_pk};
use super::{ConsumerShard, DedupClaim, Settled, StateError};
use crate::aws::dynamodb::DynamoError;
use crate::aws::dynamodb::attr::{Attributes, item, n, s};
use crate::aws::dynamodb::table::{KeySchema, create_table};
use crate::aws::dynamodb::write::put_all;
use crate::time::epoch_millis;

/// The TTL attribute of the state table.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The mark of a dedup claim whose record has not finished (absent: done).
const IN_FLIGHT: &str = "in_flight";
/// The state table's key schema.
pub const KEY_SCHEMA: KeySchema<'static> = KeySchema {
    hash_key: PK,
    range_key: Some(SK),
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

/// Shardline's state in a DynamoDB table.
///
/// ```no_run
/// # async fn example() -> Result<(), shardline::state::StateError> {
/// use shardline::state::{DynamoDbStore, QuarantineStore};
/// let client = shardline::aws::dynamodb_client().await;
/// let store = DynamoDbStore::new(client, "shardline-state");
/// store.create_table().await?; // for emulators; in AWS the template makes it
/// let quarantined = store.list_quarantined("ledger").await?;
/// # let _ = quarantined; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    key_progress_ttl: Duration,
}

impl DynamoDbStore {
    /// A store in `table`, which must exist (see [`DynamoDbStore::create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
            key_progress_ttl: super::DEFAULT_KEY_PROGRESS_TTL,
        }
    }

    /// Sets how long a partition key's progress is kept after its last write
    /// ([`super::DEFAULT_KEY_PROGRESS_TTL`] by default; DynamoDB's TTL deletes it).
    pub fn with_key_progress_ttl(mut self, ttl: Duration) -> Self {
        self.key_progress_ttl = ttl;
        self
    }

    /// Creates the state table (on-demand, TTL on `expires_at`) if it does not
    /// exist, and waits until it is active. For local emulators and tests; in
    /// AWS the SAM template creates it.
    ///
    /// # Errors
    /// [`StateError::DynamoDb`] when DynamoDB refuses.
    pub async fn create_table(&self) -> Result<(), StateError> {
        Ok(create_table(&self.client, &self.table, KEY_SCHEMA).await?)
    }

    fn key(pk: String, sk: &str) -> Attributes {
        item([(PK, s(pk)), (SK, s(sk))])
    }

    /// The write of one unit: its progress update `fence` with what it
    /// settled (see `commit.rs`); the parts of large payloads are written first.
    async fn group(
        &self,
        consumer: &str,
        unit: String,
        fence: Update,
        settled: &Settled,
    ) -> Result<Group, StateError> {
        let operation = "commit quarantined records";
        let mut group = Group::new(unit, fence);
        let mut parts = Vec::new();
        for record in &settled.quarantine {
            let (entry, record_parts) = record_items(consumer, record);
            parts.extend(record_parts);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(entry))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| DynamoError::build(operation, e))?;
            group.entry(put, record.data.len());
        }
        for claim in &settled.released {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(dedup_pk(consumer, &claim.key), "claim")))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(claim.owner.clone()))
                .build()
                .map_err(|e| DynamoError::build("release a dedup claim", e))?;
            group.release(delete);
        }
        self.put_quarantine(parts).await?;
        Ok(group)
    }

    /// A dedup claim's item, done (an in-flight claim adds its mark).
    fn claim_put(&self, consumer: &str, claim: &DedupClaim) -> PutBuilder {
        let expires_ms = epoch_millis(claim.expires_at);
        Put::builder()
            .table_name(&self.table)
            .item(PK, s(dedup_pk(consumer, &claim.key)))
            .item(SK, s("claim"))
            .item("owner", s(claim.owner.clone()))
            .item("expires_ms", n(expires_ms))
            .item(TTL_ATTRIBUTE, n(expires_ms / 1000 + 1))
    }

    /// The claims of handled records marked done (no in-flight mark), a
    /// group each ([`Group::done`]).
    fn done_groups(&self, consumer: &str, done: &[DedupClaim]) -> Result<Vec<Group>, StateError> {
        done.iter()
            .map(|claim| {
                let put = self
                    .claim_put(consumer, claim)
                    .build()
                    .map_err(|e| DynamoError::build("mark a dedup claim done", e))?;
                Ok(Group::done(put))
            })
            .collect()
    }

    /// One UpdateItem under `condition`; `false` when the condition failed
    /// (a newer writer, or a quarantine entry claimed or gone).
    pub(super) async fn update_if(
        &self,
        key: Attributes,
        expression: &str,
        condition: &str,
        values: Attributes,
        operation: &'static str,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(DynamoError::service(operation, e).into()),
        }
    }

    /// Writes quarantine items, 25 a request.
    async fn put_quarantine(&self, items: Vec<Attributes>) -> Result<(), StateError> {
        if !items.is_empty() {
            put_all(
                &self.client,
                &self.table,
                items,
                "write quarantined records",
            )
            .await?;
        }
        Ok(())
    }

    /// Updates a shard item outside its progress (lineage, end), with an
    /// optional condition; a failed condition is not an error.
    async fn update_shard(
        &self,
        key: &ConsumerShard,
        expression: &str,
        condition: Option<&str>,
        names: &[(&str, &str)],
        values: Attributes,
        operation: &'static str,
    ) -> Result<(), StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shard_pk(key), "state")))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names((!names.is_empty()).then(|| {
                names
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(DynamoError::service(operation, e).into()),
        }
    }
}

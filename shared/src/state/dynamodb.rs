//! The DynamoDB store: all of Shardline's state in one table.
//!
//! Key schema: string hash key `pk`, string range key `sk`, on-demand capacity,
//! TTL on `expires_at`. Keys carry the consumer's name and the stream ARN, so one
//! table serves many functions and one function can read several streams.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | shard | `{consumer}#shard#{stream_arn}#{shard_id}` | `state` | `checkpoint`, `head`, `head_attempts`, `delivered`, `version`, `lineage`, `lineage_rank`, `parents`, `status`, `children` |
//! | key progress | `{consumer}#key#{stream_arn}#{shard_id}#{partition_key}` | `progress` | `checkpoint`, `head`, `head_attempts`, `delivered`, `version`, `expires_at` (TTL) |
//! | dedup claim | `{consumer}#dedup#{key}` | `claim` | `owner`, `expires_ms`, `expires_at` (TTL) |
//! | quarantine | `{consumer}#quarantine` | `{stream_arn}#{shard_id}#{sequence}#{subsequence}` | record fields, `data`, `parts` |
//! | quarantine part | same `pk` | the entry's `sk` + `#part#0001`... | `data` |
//!
//! `delivered` is a map from destination to the text of its position ranges
//! ([`crate::state::PositionRanges`]).
//!
//! Positions are stored as `{sequence, 129 digits}.{subsequence, 20 digits}`, so
//! the string comparisons of condition expressions order them as numbers. Every
//! progress write is conditional: a commit names the version it read (of the
//! shard, or of the key), so a stale invocation cannot overwrite a newer one, and
//! a checkpoint never moves backwards.
//!
//! Requests per batch: checkpoint mode reads the shard item (GetItem) and writes
//! it with any quarantined records (one UpdateItem, or TransactWriteItems with up
//! to 99 quarantine items and 3 MB of payload; more go first in BatchWriteItems
//! of 25): 2 in the steady state. Per-key mode and dedup claims batch 100 keys a
//! request; released claims take one more TransactWriteItems per 100.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, Delete, KeySchemaElement,
    KeyType, KeysAndAttributes, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use bytes::Bytes;

use super::{
    ClaimOutcome, CommitOutcome, DedupClaim, Delivered, HeadAttempts, KeyCommit, Lineage, Progress,
    Settled, ShardKey, ShardState, ShardStatus, StateError, StateStore,
};
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, SequenceNumber};
use crate::time::epoch_millis;

const PK: &str = "pk";
const SK: &str = "sk";
/// The TTL attribute of the state table.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Payload bytes per quarantine item, well under DynamoDB's 400 KB item limit.
const PART_BYTES: usize = 300 * 1024;
/// Items per TransactWriteItems request.
const TRANSACT_ITEMS: usize = 100;
/// Bytes of quarantined payload that still go in the same transaction as the checkpoint.
const TRANSACT_BYTES: usize = 3 * 1024 * 1024;
/// Tries for a batched request whose items come back unprocessed or conflicting.
const MAX_TRIES: u32 = 8;

/// Shardline's state in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    key_progress_ttl: Duration,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn backend(operation: &'static str, error: impl std::error::Error) -> StateError {
    StateError::Backend {
        backend: "DynamoDB",
        operation,
        source: DisplayErrorContext(error).to_string().into(),
    }
}

fn encode_position(position: &Position) -> String {
    format!(
        "{}.{:020}",
        position.sequence.to_fixed_width(),
        position.subsequence
    )
}

fn decode_position(text: &str) -> Option<Position> {
    let (sequence, subsequence) = text.split_once('.')?;
    let sequence: SequenceNumber = sequence.parse().ok()?;
    Some(Position::new(sequence, subsequence.parse().ok()?))
}

fn shard_pk(key: &ShardKey) -> String {
    format!(
        "{}#shard#{}#{}",
        key.consumer, key.shard.stream_arn, key.shard.shard_id
    )
}

fn progress_pk(key: &ShardKey, partition_key: &str) -> String {
    format!(
        "{}#key#{}#{}#{partition_key}",
        key.consumer, key.shard.stream_arn, key.shard.shard_id
    )
}

fn dedup_pk(consumer: &str, key: &str) -> String {
    format!("{consumer}#dedup#{key}")
}

fn quarantine_pk(consumer: &str) -> String {
    format!("{consumer}#quarantine")
}

fn quarantine_sk(record: &QuarantinedRecord) -> String {
    let sequence = record
        .sequence_number
        .parse::<SequenceNumber>()
        .map(|s| s.to_fixed_width())
        .unwrap_or_else(|_| record.sequence_number.clone());
    format!(
        "{}#{}#{sequence}#{:020}",
        record.stream_arn, record.shard_id, record.subsequence_number
    )
}

type Item = HashMap<String, AttributeValue>;

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_list(item: &Item, name: &str) -> Vec<String> {
    item.get(name)
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default()
}

fn list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

fn corrupt(what: &str, detail: impl Into<String>) -> StateError {
    StateError::Corrupt {
        what: what.to_owned(),
        detail: detail.into(),
    }
}

/// Reads a [`Progress`]: `checkpoint`, `head`, `head_attempts`, `delivered`, `version`.
fn read_progress(item: &Item, what: &str) -> Result<Progress, StateError> {
    let position = |name: &str| -> Result<Option<Position>, StateError> {
        get_s(item, name)
            .map(|text| {
                decode_position(text).ok_or_else(|| corrupt(what, format!("{name} {text:?}")))
            })
            .transpose()
    };
    let texts: Vec<(&str, &str)> = item
        .get("delivered")
        .and_then(|v| v.as_m().ok())
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.as_str(), v.as_s().ok()?.as_str())))
        .collect();
    let delivered = Delivered::from_texts(texts)
        .map_err(|name| corrupt(what, format!("delivered ranges of {name}")))?;
    Ok(Progress {
        checkpoint: position("checkpoint")?,
        head: position("head")?.map(|position| HeadAttempts {
            position,
            attempts: get_n(item, "head_attempts").unwrap_or(0),
        }),
        delivered,
        version: get_n(item, "version").unwrap_or(0),
    })
}

/// An update that writes a [`Progress`], fenced on the version it was read at.
struct ProgressUpdate {
    expression: String,
    condition: String,
    values: Item,
}

impl ProgressUpdate {
    /// Writes `progress` as version `read_version + 1` if the item is still at
    /// `read_version`, with `also` set beside it.
    fn new(
        progress: &Progress,
        read_version: u64,
        also: &[(&'static str, AttributeValue)],
    ) -> Self {
        let mut values: Item = HashMap::from([(":new".into(), n(read_version + 1))]);
        let mut set = vec!["version = :new".to_owned()];
        let mut remove = Vec::new();
        let mut condition = if read_version == 0 {
            "attribute_not_exists(version)".to_owned()
        } else {
            values.insert(":read".into(), n(read_version));
            "version = :read".to_owned()
        };
        if let Some(cp) = &progress.checkpoint {
            set.push("checkpoint = :cp".into());
            values.insert(":cp".into(), s(encode_position(cp)));
            condition.push_str(" AND (attribute_not_exists(checkpoint) OR checkpoint <= :cp)");
        }
        match &progress.head {
            Some(h) => {
                set.push("head = :head, head_attempts = :attempts".into());
                values.insert(":head".into(), s(encode_position(&h.position)));
                values.insert(":attempts".into(), n(h.attempts));
            }
            None => remove.push("head, head_attempts"),
        }
        let delivered = progress.delivered.to_texts();
        if delivered.is_empty() {
            remove.push("delivered");
        } else {
            set.push("delivered = :delivered".into());
            let map = delivered
                .into_iter()
                .map(|(name, text)| (name, s(text)))
                .collect();
            values.insert(":delivered".into(), AttributeValue::M(map));
        }
        for (name, value) in also {
            set.push(format!("{name} = :{name}"));
            values.insert(format!(":{name}"), value.clone());
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&remove.join(", "));
        }
        ProgressUpdate {
            expression,
            condition,
            values,
        }
    }

    fn build(self, table: &str, key: Item) -> Result<Update, StateError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.expression)
            .condition_expression(self.condition)
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(|e| backend("build a progress write", e))
    }
}

/// The items of one quarantined record: the entry, and parts for a large payload.
fn quarantine_items(consumer: &str, record: &QuarantinedRecord) -> Vec<Item> {
    let pk = quarantine_pk(consumer);
    let sk = quarantine_sk(record);
    let mut chunks = record.data.chunks(PART_BYTES);
    let first = chunks.next().unwrap_or(&[]);
    let rest: Vec<&[u8]> = chunks.collect();
    let mut entry: Item = HashMap::from([
        (PK.into(), s(pk.clone())),
        (SK.into(), s(sk.clone())),
        ("stream_arn".into(), s(record.stream_arn.clone())),
        ("shard_id".into(), s(record.shard_id.clone())),
        ("sequence_number".into(), s(record.sequence_number.clone())),
        ("subsequence_number".into(), n(record.subsequence_number)),
        ("partition_key".into(), s(record.partition_key.clone())),
        ("reason".into(), s(record.reason.name())),
        ("detail".into(), s(record.detail.clone())),
        ("attempts".into(), n(record.attempts)),
        ("quarantined_at".into(), n(record.quarantined_at)),
        ("data".into(), AttributeValue::B(Blob::new(first))),
        ("parts".into(), n(rest.len() + 1)),
    ]);
    if record.partition_key.is_empty() {
        entry.remove("partition_key");
    }
    let mut items = vec![entry];
    for (index, part) in rest.into_iter().enumerate() {
        items.push(HashMap::from([
            (PK.into(), s(pk.clone())),
            (SK.into(), s(format!("{sk}#part#{:04}", index + 1))),
            ("data".into(), AttributeValue::B(Blob::new(part))),
        ]));
    }
    items
}

fn is_conditional_check_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// The cancellation reasons of a cancelled transaction, or `None` for other errors.
fn cancellation_reasons<R>(
    error: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<CancellationReason>> {
    match error.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(e) => {
            Some(e.cancellation_reasons().to_vec())
        }
        _ => None,
    }
}

async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(20u64 << attempt.min(6))).await;
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
    /// [`StateError::Backend`] when DynamoDB refuses.
    pub async fn create_table(&self) -> Result<(), StateError> {
        create_table(&self.client, &self.table, PK, Some(SK), Some(TTL_ATTRIBUTE)).await
    }

    fn key(pk: String, sk: &str) -> Item {
        HashMap::from([(PK.into(), s(pk)), (SK.into(), s(sk))])
    }

    /// Reads items by `pk` (all with range key `sk`) with BatchGetItem, 100 a
    /// request, retrying unprocessed keys; returns the items found by `pk`.
    async fn get_all(
        &self,
        pks: &[String],
        sk: &str,
        operation: &'static str,
    ) -> Result<HashMap<String, Item>, StateError> {
        let mut found = HashMap::new();
        for chunk in pks.chunks(100) {
            let mut request = KeysAndAttributes::builder().consistent_read(true);
            for pk in chunk {
                request = request.keys(Self::key(pk.clone(), sk));
            }
            let mut request = Some(request.build().map_err(|e| backend(operation, e))?);
            let mut tries = 0;
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| backend(operation, e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(pk) = get_s(item, PK) {
                        found.insert(pk.to_owned(), item.clone());
                    }
                }
                request = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if request.is_some() {
                    tries += 1;
                    if tries >= MAX_TRIES {
                        return Err(corrupt(
                            operation,
                            "DynamoDB left reads unprocessed after retries",
                        ));
                    }
                    pause(tries).await;
                }
            }
        }
        Ok(found)
    }

    /// Writes conditional items with TransactWriteItems, 100 a request. An item
    /// whose condition fails is set aside (with the item DynamoDB returned for
    /// it, if asked with `ALL_OLD`); the others of a cancelled transaction are
    /// sent again (after a pause when DynamoDB reports a conflict), at most
    /// [`MAX_TRIES`] times. Returns the items whose condition failed.
    async fn transact_conditional<'t, T>(
        &self,
        entries: &'t [T],
        build: impl Fn(&T) -> Result<TransactWriteItem, StateError>,
        operation: &'static str,
    ) -> Result<Vec<(&'t T, Option<Item>)>, StateError> {
        let mut failed = Vec::new();
        for chunk in entries.chunks(TRANSACT_ITEMS) {
            let mut pending: Vec<&T> = chunk.iter().collect();
            let mut tries = 0;
            while !pending.is_empty() {
                let items = pending
                    .iter()
                    .map(|entry| build(entry))
                    .collect::<Result<Vec<_>, _>>()?;
                let error = match self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                {
                    Ok(_) => break,
                    Err(e) => e,
                };
                let Some(reasons) = cancellation_reasons(&error) else {
                    return Err(backend(operation, error));
                };
                let mut retry = Vec::new();
                let mut conflicted = false;
                for (index, entry) in pending.into_iter().enumerate() {
                    let reason = reasons.get(index);
                    match reason.and_then(|r| r.code()) {
                        Some("ConditionalCheckFailed") => {
                            failed.push((entry, reason.and_then(|r| r.item()).cloned()));
                        }
                        Some("None") | None => retry.push(entry),
                        Some(_) => {
                            conflicted = true;
                            retry.push(entry);
                        }
                    }
                }
                pending = retry;
                tries += 1;
                if tries >= MAX_TRIES {
                    return Err(backend(operation, error));
                }
                if conflicted {
                    pause(tries).await;
                }
            }
        }
        Ok(failed)
    }

    /// Writes items with BatchWriteItem, 25 a request, retrying unprocessed ones.
    async fn put_all(&self, items: Vec<Item>, operation: &'static str) -> Result<(), StateError> {
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| backend(operation, e))
                })
                .collect::<Result<_, _>>()?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| backend(operation, e))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt + 1 >= MAX_TRIES {
                    return Err(corrupt(
                        operation,
                        "DynamoDB left writes unprocessed after retries",
                    ));
                }
                pause(attempt).await;
            }
        }
        Ok(())
    }
}

impl DynamoDbStore {
    /// Deletes the dedup claims of quarantined records that still name them as
    /// owner (a claim taken over since is left alone), 100 a request.
    async fn release_claims(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
    ) -> Result<(), StateError> {
        let build = |claim: &DedupClaim| {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(dedup_pk(consumer, &claim.key), "claim")))
                .condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(claim.owner.clone()))
                .build()
                .map(|delete| TransactWriteItem::builder().delete(delete).build())
                .map_err(|e| backend("build a dedup release", e))
        };
        self.transact_conditional(claims, build, "release dedup claims")
            .await
            .map(drop)
    }
}

/// Creates a table with string keys, on-demand, optionally with TTL, if missing,
/// and waits until it is active.
///
/// # Errors
/// [`StateError::Backend`] when DynamoDB refuses.
pub async fn create_table(
    client: &Client,
    table: &str,
    hash_key: &str,
    range_key: Option<&str>,
    ttl_attribute: Option<&str>,
) -> Result<(), StateError> {
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in [(Some(hash_key), KeyType::Hash), (range_key, KeyType::Range)] {
        let Some(name) = name else { continue };
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| backend("create a table", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .map_err(|e| backend("create a table", e))?,
            );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(backend("create a table", e)),
    }
    for attempt in 0..50 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| backend("describe a table", e))?;
        let active = described
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| s.as_str() == "ACTIVE");
        if active {
            break;
        }
        pause(attempt.min(4)).await;
    }
    if let Some(attribute) = ttl_attribute {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| backend("enable TTL", e))?,
            )
            .send()
            .await
            .map_err(|e| backend("enable TTL", e))?;
    }
    Ok(())
}

#[async_trait]
impl StateStore for DynamoDbStore {
    async fn load_shard(&self, key: &ShardKey) -> Result<ShardState, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shard_pk(key), "state")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("read a shard checkpoint", e))?;
        let Some(item) = out.item() else {
            return Ok(ShardState::default());
        };
        let what = shard_pk(key);
        let parents = get_list(item, "parents");
        Ok(ShardState {
            progress: read_progress(item, &what)?,
            lineage: match get_s(item, "lineage") {
                Some("pending") => Lineage::Pending { parents },
                Some("cleared") => Lineage::Cleared { parents },
                _ => Lineage::Unknown,
            },
            status: match get_s(item, "status") {
                Some("ended") => ShardStatus::Ended {
                    children: get_list(item, "children"),
                },
                _ => ShardStatus::Active,
            },
        })
    }

    async fn claim_dedup_keys(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        let build = |claim: &DedupClaim| {
            let expires_ms = epoch_millis(claim.expires_at);
            Put::builder()
                .table_name(&self.table)
                .item(PK, s(dedup_pk(consumer, &claim.key)))
                .item(SK, s("claim"))
                .item("owner", s(claim.owner.clone()))
                .item("expires_ms", n(expires_ms))
                .item(TTL_ATTRIBUTE, n(expires_ms / 1000 + 1))
                .condition_expression(
                    "attribute_not_exists(pk) OR #owner = :owner OR expires_ms < :now",
                )
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(claim.owner.clone()))
                .expression_attribute_values(":now", n(epoch_millis(now)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| backend("build a dedup claim", e))
        };
        let lost = self
            .transact_conditional(claims, build, "claim dedup keys")
            .await?;
        let mut holders: HashMap<&str, String> = HashMap::new();
        for (claim, item) in lost {
            let holder = item
                .as_ref()
                .and_then(|item| get_s(item, "owner"))
                .unwrap_or("another record");
            holders.insert(claim.key.as_str(), holder.to_owned());
        }
        Ok(claims
            .iter()
            .map(|claim| match holders.remove(claim.key.as_str()) {
                Some(holder) => ClaimOutcome::HeldBy(holder),
                None => ClaimOutcome::Won,
            })
            .collect())
    }

    async fn commit(
        &self,
        key: &ShardKey,
        read_version: u64,
        progress: &Progress,
        settled: &Settled,
    ) -> Result<CommitOutcome, StateError> {
        let update = ProgressUpdate::new(progress, read_version, &[]);
        let item_key = Self::key(shard_pk(key), "state");
        let quarantine: Vec<Item> = settled
            .quarantine
            .iter()
            .flat_map(|q| quarantine_items(&key.consumer, q))
            .collect();
        let quarantine_bytes: usize = settled.quarantine.iter().map(|q| q.data.len()).sum();
        let one_transaction = !quarantine.is_empty()
            && quarantine.len() < TRANSACT_ITEMS
            && quarantine_bytes <= TRANSACT_BYTES;
        let committed = CommitOutcome::Committed {
            version: read_version + 1,
        };
        let outcome = if one_transaction {
            let mut items = Vec::with_capacity(quarantine.len() + 1);
            for item in quarantine {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| backend("build a quarantine write", e))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            let update = update.build(&self.table, item_key)?;
            items.push(TransactWriteItem::builder().update(update).build());
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => committed,
                Err(e) => match cancellation_reasons(&e) {
                    Some(reasons)
                        if reasons
                            .last()
                            .and_then(|r| r.code())
                            .is_some_and(|c| c == "ConditionalCheckFailed") =>
                    {
                        CommitOutcome::Superseded
                    }
                    _ => return Err(backend("commit a checkpoint with quarantined records", e)),
                },
            }
        } else {
            // Large quarantines go first, on their own: they are kept even if the
            // progress write then loses to a newer invocation.
            if !quarantine.is_empty() {
                self.put_all(quarantine, "write quarantined records")
                    .await?;
            }
            match self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key))
                .update_expression(update.expression)
                .condition_expression(update.condition)
                .set_expression_attribute_values(Some(update.values))
                .send()
                .await
            {
                Ok(_) => committed,
                Err(e) if is_conditional_check_failed(&e) => CommitOutcome::Superseded,
                Err(e) => return Err(backend("commit a checkpoint", e)),
            }
        };
        if let CommitOutcome::Committed { .. } = outcome {
            self.release_claims(&key.consumer, &settled.released)
                .await?;
        }
        Ok(outcome)
    }

    async fn save_lineage(&self, key: &ShardKey, lineage: &Lineage) -> Result<(), StateError> {
        let (name, rank, parents) = match lineage {
            Lineage::Unknown => return Ok(()),
            Lineage::Pending { parents } => ("pending", 1, parents),
            Lineage::Cleared { parents } => ("cleared", 2, parents),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shard_pk(key), "state")))
            .update_expression("SET lineage = :name, lineage_rank = :rank, parents = :parents")
            .condition_expression("attribute_not_exists(lineage_rank) OR lineage_rank <= :rank")
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":rank", n(rank))
            .expression_attribute_values(":parents", list(parents))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another invocation got further already.
            Err(e) if is_conditional_check_failed(&e) => Ok(()),
            Err(e) => Err(backend("record a shard's lineage", e)),
        }
    }

    async fn mark_shard_end(&self, key: &ShardKey, children: &[String]) -> Result<(), StateError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shard_pk(key), "state")))
            .update_expression("SET #status = :ended, children = :children")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ended", s("ended"))
            .expression_attribute_values(":children", list(children))
            .send()
            .await
            .map_err(|e| backend("record a shard's end", e))?;
        Ok(())
    }

    async fn load_key_progress(
        &self,
        key: &ShardKey,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        let pks: Vec<String> = partition_keys.iter().map(|k| progress_pk(key, k)).collect();
        let items = self.get_all(&pks, "progress", "read key progress").await?;
        let mut found = HashMap::new();
        for (partition_key, pk) in partition_keys.iter().zip(&pks) {
            if let Some(item) = items.get(pk) {
                found.insert(partition_key.clone(), read_progress(item, pk)?);
            }
        }
        Ok(found)
    }

    async fn commit_key_progress(
        &self,
        key: &ShardKey,
        commits: &[KeyCommit],
        settled: &Settled,
    ) -> Result<Vec<String>, StateError> {
        let quarantine: Vec<Item> = settled
            .quarantine
            .iter()
            .flat_map(|q| quarantine_items(&key.consumer, q))
            .collect();
        if !quarantine.is_empty() {
            self.put_all(quarantine, "write quarantined records")
                .await?;
        }
        let expires = n(epoch_millis(SystemTime::now() + self.key_progress_ttl) / 1000);
        let build = |commit: &KeyCommit| {
            let also = [(TTL_ATTRIBUTE, expires.clone())];
            ProgressUpdate::new(&commit.progress, commit.read_version, &also)
                .build(
                    &self.table,
                    Self::key(progress_pk(key, &commit.partition_key), "progress"),
                )
                .map(|u| TransactWriteItem::builder().update(u).build())
        };
        let superseded = self
            .transact_conditional(commits, build, "commit key progress")
            .await?;
        self.release_claims(&key.consumer, &settled.released)
            .await?;
        Ok(superseded
            .into_iter()
            .map(|(commit, _)| commit.partition_key.clone())
            .collect())
    }

    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        let pk = quarantine_pk(consumer);
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("list quarantined records", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        // Parts follow their entry in sort-key order.
        let mut records: Vec<QuarantinedRecord> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for item in items {
            let sk = get_s(&item, SK).unwrap_or_default().to_owned();
            let bytes = item
                .get("data")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            if sk.contains("#part#") {
                data.extend_from_slice(&bytes);
                continue;
            }
            if let Some(last) = records.last_mut() {
                last.data = Bytes::from(std::mem::take(&mut data));
            }
            data = bytes;
            let reason_text = get_s(&item, "reason").unwrap_or_default();
            let reason = QuarantineReason::from_name(reason_text)
                .ok_or_else(|| corrupt(&sk, format!("unknown reason {reason_text:?}")))?;
            records.push(QuarantinedRecord {
                stream_arn: get_s(&item, "stream_arn").unwrap_or_default().to_owned(),
                shard_id: get_s(&item, "shard_id").unwrap_or_default().to_owned(),
                sequence_number: get_s(&item, "sequence_number")
                    .unwrap_or_default()
                    .to_owned(),
                subsequence_number: get_n(&item, "subsequence_number").unwrap_or(0),
                partition_key: get_s(&item, "partition_key").unwrap_or_default().to_owned(),
                reason,
                detail: get_s(&item, "detail").unwrap_or_default().to_owned(),
                attempts: get_n(&item, "attempts").unwrap_or(0),
                quarantined_at: get_n(&item, "quarantined_at").unwrap_or(0),
                data: Bytes::new(),
            });
        }
        if let Some(last) = records.last_mut() {
            last.data = Bytes::from(data);
        }
        records.sort_by_key(|r| r.quarantined_at);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_encode_in_number_order() {
        let p = |seq: &str, sub| Position::new(seq.parse().unwrap(), sub);
        let mut positions = vec![
            p("10", 0),
            p("9", 5),
            p("9", 10),
            p(
                "49590338271490256608559692538361571095921575989136588898",
                0,
            ),
        ];
        let mut encoded: Vec<String> = positions.iter().map(encode_position).collect();
        positions.sort();
        encoded.sort();
        let decoded: Vec<Position> = encoded.iter().filter_map(|e| decode_position(e)).collect();
        assert_eq!(decoded, positions);
    }

    #[test]
    fn large_payloads_split_into_parts() {
        let record = QuarantinedRecord {
            stream_arn: "arn".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: "5".into(),
            subsequence_number: 0,
            partition_key: "k".into(),
            reason: QuarantineReason::Permanent,
            detail: "bad".into(),
            attempts: 1,
            quarantined_at: 1,
            data: Bytes::from(vec![7u8; PART_BYTES * 2 + 10]),
        };
        let items = quarantine_items("c", &record);
        assert_eq!(items.len(), 3);
        assert_eq!(get_n::<u64>(&items[0], "parts"), Some(3));
        assert!(get_s(&items[2], SK).unwrap().ends_with("#part#0002"));
    }
}

//! Last-seen times in DynamoDB (`ACTIVE_USERS_TABLE`): one item per user,
//! `user_id` (string hash key), `last_seen` (epoch ms) and `expires_at` (epoch
//! seconds, the table's TTL attribute: last-seen plus the active window).
//!
//! ## Writing a batch: conditional and batched
//!
//! The rule is "a user's last-seen time never moves back". BatchWriteItem takes
//! 25 items per call but no conditions: a read (BatchGetItem) followed by a
//! batch write only of the newer times leaves a window in which another writer
//! (a concurrent batch of the same shard with ParallelizationFactor > 1, the
//! parent and the child shard right after a reshard, a Lambda retry running
//! beside a slow first attempt) stores a newer time that the blind write then
//! overwrites with an older one.
//!
//! So each batch's latest time per user goes out as conditional updates in
//! TransactWriteItems, 100 users per request, each with
//! `attribute_not_exists(last_seen) OR last_seen < :ts`. A transaction is all or
//! nothing: when some condition fails (that user is already as new or newer),
//! DynamoDB cancels it and names the failed items in `CancellationReasons`;
//! those users are dropped (they are already right) and the rest go again. No
//! read comes first: in steady state each heartbeat is newer than the stored
//! one, so a read would double the requests to learn nothing. Requests per
//! batch: `ceil(users / 100)`, plus one per chunk that met an older or equal
//! time (a replayed batch, or stale heartbeats within the window), plus retries
//! of chunks that met a transaction conflict (bounded, with backoff; then the
//! flush fails and Lambda retries the batch, which is safe to apply again).
//!
//! Cost: a transactional write costs two write units per item instead of one;
//! for a one-heartbeat-a-minute signal that is the price of never going back.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use crate::heartbeat::{expires_at, is_active, window_ms};
use crate::store::{Advanced, StoreError};

/// The hash key: the user id.
pub const USER_ATTRIBUTE: &str = "user_id";
/// Last-seen time, epoch milliseconds.
pub const LAST_SEEN_ATTRIBUTE: &str = "last_seen";
/// The TTL attribute, epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// TransactWriteItems takes at most 100 items.
pub const TRANSACTION_ITEMS: usize = 100;
/// Rounds without progress (conflicts, throttling) before the flush gives up.
const MAX_STALLED_ROUNDS: usize = 5;

/// The active-users DynamoDB store.
pub struct DynamoActiveUsers {
    client: Client,
    table: String,
}

fn dynamo(operation: &'static str, e: impl std::error::Error) -> StoreError {
    StoreError::DynamoDb {
        operation,
        message: DisplayErrorContext(e).to_string(),
    }
}

/// What became of one item of a cancelled transaction.
enum ItemFate {
    /// Its condition failed: the stored time is as new or newer.
    AlreadyNewer,
    /// It was fine; it failed only with the others.
    Innocent,
    /// It met a passing fault (a conflicting transaction, throttling).
    Passing,
}

fn fate(code: Option<&str>) -> Result<ItemFate, String> {
    match code {
        None | Some("None") => Ok(ItemFate::Innocent),
        Some("ConditionalCheckFailed") => Ok(ItemFate::AlreadyNewer),
        Some(
            "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded",
        ) => Ok(ItemFate::Passing),
        Some(other) => Err(other.to_owned()),
    }
}

impl DynamoActiveUsers {
    /// A store in `table` (hash key `user_id`, a string; TTL on `expires_at`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoActiveUsers {
            client,
            table: table.into(),
        }
    }

    fn update(
        &self,
        user: &str,
        ts: u64,
        window: Duration,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(USER_ATTRIBUTE, AttributeValue::S(user.to_owned()))
            .update_expression("SET #ls = :ts, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#ls) OR #ls < :ts")
            .expression_attribute_names("#ls", LAST_SEEN_ATTRIBUTE)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ts", AttributeValue::N(ts.to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N(expires_at(ts, window).to_string()),
            )
            .build()
            .map_err(|e| dynamo("build an update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves each user's last-seen time forward to `latest[user]` where newer.
    pub async fn advance(
        &self,
        latest: &BTreeMap<String, u64>,
        window: Duration,
    ) -> Result<Advanced, StoreError> {
        let mut done = Advanced::default();
        let users: Vec<(&str, u64)> = latest.iter().map(|(u, ts)| (u.as_str(), *ts)).collect();
        for chunk in users.chunks(TRANSACTION_ITEMS) {
            self.advance_chunk(chunk.to_vec(), window, &mut done)
                .await?;
        }
        Ok(done)
    }

    async fn advance_chunk(
        &self,
        mut pending: Vec<(&str, u64)>,
        window: Duration,
        done: &mut Advanced,
    ) -> Result<(), StoreError> {
        let mut stalled = 0;
        while !pending.is_empty() {
            let items = pending
                .iter()
                .map(|(user, ts)| self.update(user, *ts, window))
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let error = match result {
                Ok(_) => {
                    done.written += pending.len();
                    return Ok(());
                }
                Err(error) => error,
            };
            let reasons = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel))
                    if cancel.cancellation_reasons().len() == pending.len() =>
                {
                    cancel.cancellation_reasons().to_vec()
                }
                _ => return Err(dynamo("write last-seen times", error)),
            };
            let before = pending.len();
            let mut next = Vec::with_capacity(before);
            for (item, reason) in pending.into_iter().zip(&reasons) {
                match fate(reason.code()) {
                    Ok(ItemFate::AlreadyNewer) => done.unchanged += 1,
                    Ok(ItemFate::Innocent | ItemFate::Passing) => next.push(item),
                    Err(code) => {
                        return Err(StoreError::DynamoDb {
                            operation: "write last-seen times",
                            message: format!(
                                "transaction cancelled for user {}: {code}: {}",
                                item.0,
                                reason.message().unwrap_or("")
                            ),
                        });
                    }
                }
            }
            if next.len() == before {
                // No condition failed, so some item met a conflict or a throttle.
                stalled += 1;
                if stalled >= MAX_STALLED_ROUNDS {
                    return Err(StoreError::Contended {
                        users: next.len(),
                        rounds: stalled,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50 << stalled)).await;
            }
            pending = next;
        }
        Ok(())
    }

    /// The users active at `now_ms`: a consistent scan filtered on `last_seen`
    /// (TTL deletion is lazy, so expired items may still be there).
    pub async fn active(
        &self,
        now_ms: u64,
        window: Duration,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let since = now_ms.saturating_sub(window_ms(window));
        let mut active = BTreeMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#user, #ls")
                .filter_expression("#ls >= :since")
                .expression_attribute_names("#user", USER_ATTRIBUTE)
                .expression_attribute_names("#ls", LAST_SEEN_ATTRIBUTE)
                .expression_attribute_values(":since", AttributeValue::N(since.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo("scan the active users", e))?;
            for item in out.items() {
                let user = item.get(USER_ATTRIBUTE).and_then(|v| v.as_s().ok());
                let last_seen = item
                    .get(LAST_SEEN_ATTRIBUTE)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<u64>().ok());
                if let (Some(user), Some(last_seen)) = (user, last_seen)
                    && is_active(last_seen, now_ms, window)
                {
                    active.insert(user.clone(), last_seen);
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(active),
            }
        }
    }
}

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
//! of chunks that met a transaction conflict (Shardline's
//! `transact_conditional`: bounded, with backoff; then the flush fails and
//! Lambda retries the batch, which is safe to apply again).
//!
//! Cost: a transactional write costs two write units per item instead of one;
//! for a one-heartbeat-a-minute signal that is the price of never going back.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use shardline::aws::dynamodb::attr::{get_n, get_s, n, s};
use shardline::aws::dynamodb::write::transact_conditional;
use shardline::aws::dynamodb::{DynamoError, read};
use shardline::tables::StoreError;

use crate::heartbeat::{expires_at, is_active, window_ms};
use crate::store::Advanced;

/// The hash key: the user id.
pub const USER_ATTRIBUTE: &str = "user_id";
/// Last-seen time, epoch milliseconds.
pub const LAST_SEEN_ATTRIBUTE: &str = "last_seen";
/// The TTL attribute, epoch seconds.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The active-users DynamoDB store.
#[derive(Debug)]
pub struct DynamoActiveUsers {
    client: Client,
    table: String,
}

impl DynamoActiveUsers {
    /// A store in `table` (hash key `user_id`, a string; TTL on `expires_at`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoActiveUsers {
            client,
            table: table.into(),
        }
    }

    /// The conditional update that moves `user` to `ts` if that is newer.
    fn update(
        &self,
        user: &str,
        ts: u64,
        window: Duration,
    ) -> Result<TransactWriteItem, DynamoError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(USER_ATTRIBUTE, s(user))
            .update_expression("SET #ls = :ts, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#ls) OR #ls < :ts")
            .expression_attribute_names("#ls", LAST_SEEN_ATTRIBUTE)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":ts", n(ts))
            .expression_attribute_values(":ttl", n(expires_at(ts, window)))
            .build()
            .map_err(|e| DynamoError::build("build a last-seen update", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves each user's last-seen time forward to `latest[user]` where newer:
    /// conditional updates, 100 a transaction; a user whose condition fails
    /// already has a time as new or newer and is left as is.
    pub async fn advance(
        &self,
        latest: &BTreeMap<String, u64>,
        window: Duration,
    ) -> Result<Advanced, StoreError> {
        let users: Vec<(&str, u64)> = latest.iter().map(|(u, ts)| (u.as_str(), *ts)).collect();
        let build = |(user, ts): &(&str, u64)| self.update(user, *ts, window);
        let unchanged =
            transact_conditional(&self.client, &users, build, "write last-seen times").await?;
        Ok(Advanced {
            written: users.len() - unchanged.len(),
            unchanged: unchanged.len(),
        })
    }

    /// The users active at `now_ms`: a consistent scan filtered on `last_seen`
    /// (TTL deletion is lazy, so expired items may still be there).
    pub async fn active(
        &self,
        now_ms: u64,
        window: Duration,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let since = now_ms.saturating_sub(window_ms(window));
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#user, #ls")
            .filter_expression("#ls >= :since")
            .expression_attribute_names("#user", USER_ATTRIBUTE)
            .expression_attribute_names("#ls", LAST_SEEN_ATTRIBUTE)
            .expression_attribute_values(":since", n(since))
            .consistent_read(true);
        let items = read::scan_all(scan, "scan the active users").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let user = get_s(item, USER_ATTRIBUTE)?;
                let last_seen: u64 = get_n(item, LAST_SEEN_ATTRIBUTE)?;
                is_active(last_seen, now_ms, window).then(|| (user.to_owned(), last_seen))
            })
            .collect())
    }
}

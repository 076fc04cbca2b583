//! The DynamoDB store's progress: the shard item, key progress items, dedup
//! claims, and the one commit of a batch (its transactions in `commit.rs`).

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use super::commit::write_groups;
use super::items::{ProgressUpdate, read_progress};
use super::keys::{PK, progress_pk, shard_pk};
use super::{DynamoDbStore, IN_FLIGHT, TTL_ATTRIBUTE};
use crate::aws::dynamodb::attr::{Attributes, get_list, get_s, n, s};
use crate::aws::dynamodb::write::transact_conditional;
use crate::aws::dynamodb::{DynamoError, read};
use crate::progress::Progress;
use crate::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Lineage, ProgressStore, ShardState,
    ShardStatus, StateError, Unit, UnitCommit,
};
use crate::time::epoch_millis;

#[async_trait]
impl ProgressStore for DynamoDbStore {
    async fn read_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(shard_pk(key), "state")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::service("read a shard checkpoint", e))?;
        let Some(item) = out.item() else {
            return Ok(ShardState::default());
        };
        let parents = get_list(item, "parents");
        Ok(ShardState {
            progress: read_progress(item, &shard_pk(key))?,
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

    async fn read_keys(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        let pks: Vec<String> = partition_keys.iter().map(|k| progress_pk(key, k)).collect();
        let keys = pks
            .iter()
            .map(|pk| Self::key(pk.clone(), "progress"))
            .collect();
        let items = read::get_all(&self.client, &self.table, keys, "read key progress").await?;
        let by_pk: HashMap<&str, &Attributes> = items
            .iter()
            .filter_map(|item| Some((get_s(item, PK)?, item)))
            .collect();
        let mut found = HashMap::new();
        for (partition_key, pk) in partition_keys.iter().zip(&pks) {
            if let Some(item) = by_pk.get(pk.as_str()) {
                found.insert(partition_key.clone(), read_progress(item, pk)?);
            }
        }
        Ok(found)
    }

    async fn claim(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        let operation = "claim dedup keys";
        let build = |claim: &DedupClaim| {
            self.claim_put(consumer, claim)
                .item(IN_FLIGHT, n(1))
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
                .map_err(|e| DynamoError::build(operation, e))
        };
        let lost = transact_conditional(&self.client, claims, build, operation).await?;
        let mut holders: HashMap<&str, ClaimOutcome> = HashMap::new();
        for (claim, item) in lost {
            let holder = item
                .as_ref()
                .and_then(|item| get_s(item, "owner"))
                .unwrap_or("another record")
                .to_owned();
            let in_flight = item.as_ref().is_some_and(|i| i.contains_key(IN_FLIGHT));
            let outcome = if in_flight {
                ClaimOutcome::InFlight(holder)
            } else {
                ClaimOutcome::HeldBy(holder)
            };
            holders.insert(claim.key.as_str(), outcome);
        }
        Ok(claims
            .iter()
            .map(|claim| {
                holders
                    .remove(claim.key.as_str())
                    .unwrap_or(ClaimOutcome::Won)
            })
            .collect())
    }

    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError> {
        if let [only] = commits
            && only.unit == Unit::Shard
            && only.settled.is_empty()
        {
            // The shard alone, settling nothing: one UpdateItem.
            let update = ProgressUpdate::new(&only.progress, only.read_version, &[]);
            let (expression, condition) = (&update.expression, &update.condition);
            let item_key = Self::key(shard_pk(key), "state");
            let operation = "commit a checkpoint";
            let written = self
                .update_if(item_key, expression, condition, update.values, operation)
                .await?;
            return Ok(vec![outcome(only, written)]);
        }
        let expires = n(epoch_millis(crate::time::now() + self.key_progress_ttl) / 1000);
        let mut groups = Vec::with_capacity(commits.len());
        for commit in commits {
            let (item_key, also) = match &commit.unit {
                Unit::Shard => (Self::key(shard_pk(key), "state"), Vec::new()),
                Unit::Key(partition_key) => (
                    Self::key(progress_pk(key, partition_key), "progress"),
                    vec![(TTL_ATTRIBUTE, expires.clone())],
                ),
            };
            let fence = ProgressUpdate::new(&commit.progress, commit.read_version, &also)
                .build(&self.table, item_key)?;
            let unit = commit.unit.to_string();
            groups.push(
                self.group(&key.consumer, unit, fence, &commit.settled)
                    .await?,
            );
        }
        for commit in commits {
            groups.extend(self.done_groups(&key.consumer, &commit.settled.done)?);
        }
        let superseded = write_groups(&self.client, groups, "commit a batch").await?;
        Ok(commits
            .iter()
            .map(|commit| outcome(commit, !superseded.contains(&commit.unit.to_string())))
            .collect())
    }
}

/// What became of `commit`: written (a version up) or not.
fn outcome(commit: &UnitCommit, written: bool) -> CommitOutcome {
    if written {
        CommitOutcome::Committed {
            version: commit.read_version + 1,
        }
    } else {
        CommitOutcome::Superseded
    }
}

//! The embedded store's progress: shard and key rows, dedup claims, and the
//! one commit of a batch.

use std::collections::HashMap;
use std::time::SystemTime;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::rows::{
    PROGRESS_COLUMNS, PROGRESS_WIDTH, ProgressRow, UPSERT_CLAIM, as_i64, corrupt, millis,
    upsert_progress, write_done, write_settled,
};
use super::{EmbeddedStore, KEY_KEYS, SHARD_KEYS};
use crate::progress::Progress;
use crate::state::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, Lineage, ProgressStore, ShardState,
    ShardStatus, StateError, Unit, UnitCommit,
};

#[async_trait]
impl ProgressStore for EmbeddedStore {
    async fn read_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
        type Row = (ProgressRow, String, String, bool, String);
        let row: Option<Row> = self.with_conn(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {PROGRESS_COLUMNS}, lineage, parents, ended, children
                     FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3"
                ),
                params![key.consumer, &*key.shard.stream_arn, &*key.shard.shard_id],
                |r| {
                    Ok((
                        ProgressRow::read(r, 0)?,
                        r.get(PROGRESS_WIDTH)?,
                        r.get(PROGRESS_WIDTH + 1)?,
                        r.get(PROGRESS_WIDTH + 2)?,
                        r.get(PROGRESS_WIDTH + 3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((progress, lineage, parents, ended, children)) = row else {
            return Ok(ShardState::default());
        };
        let list = |text: &str| -> Result<Vec<String>, StateError> {
            serde_json::from_str(text)
                .map_err(|e| corrupt(key, format!("shard id list {text:?}: {e}")))
        };
        let parents = list(&parents)?;
        Ok(ShardState {
            progress: progress.parse(key)?,
            lineage: match lineage.as_str() {
                "pending" => Lineage::Pending { parents },
                "cleared" => Lineage::Cleared { parents },
                _ => Lineage::Unknown,
            },
            status: if ended {
                ShardStatus::Ended {
                    children: list(&children)?,
                }
            } else {
                ShardStatus::Active
            },
        })
    }

    async fn read_keys(
        &self,
        key: &ConsumerShard,
        partition_keys: &[String],
    ) -> Result<HashMap<String, Progress>, StateError> {
        let rows: Vec<(String, ProgressRow)> = self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {PROGRESS_COLUMNS} FROM key_progress
                 WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3 AND partition_key = ?4"
            ))?;
            let mut rows = Vec::new();
            for partition_key in partition_keys {
                let found = stmt
                    .query_row(
                        params![
                            key.consumer,
                            &*key.shard.stream_arn,
                            &*key.shard.shard_id,
                            partition_key
                        ],
                        |r| ProgressRow::read(r, 0),
                    )
                    .optional()?;
                if let Some(row) = found {
                    rows.push((partition_key.clone(), row));
                }
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(partition_key, row)| Ok((partition_key, row.parse(key)?)))
            .collect()
    }

    async fn claim(
        &self,
        consumer: &str,
        claims: &[DedupClaim],
        now: SystemTime,
    ) -> Result<Vec<ClaimOutcome>, StateError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let now = millis(now);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut outcomes = Vec::with_capacity(claims.len());
            {
                let mut read =
                    tx.prepare_cached("SELECT owner, expires_at, in_flight FROM dedup WHERE consumer = ?1 AND key = ?2")?;
                let mut write = tx.prepare_cached(UPSERT_CLAIM)?;
                for claim in claims {
                    let held: Option<(String, i64, bool)> = read
                        .query_row(params![consumer, claim.key], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()?;
                    match held {
                        Some((owner, expires_at, in_flight))
                            if owner != claim.owner && expires_at > now =>
                        {
                            outcomes.push(if in_flight {
                                ClaimOutcome::InFlight(owner)
                            } else {
                                ClaimOutcome::HeldBy(owner)
                            });
                        }
                        _ => {
                            let expires_at = millis(claim.expires_at);
                            write.execute(params![consumer, claim.key, claim.owner, expires_at, true])?;
                            outcomes.push(ClaimOutcome::Won);
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(outcomes)
        })
    }

    async fn commit_batch(
        &self,
        key: &ConsumerShard,
        commits: &[UnitCommit],
    ) -> Result<Vec<CommitOutcome>, StateError> {
        let expires_at = millis(crate::time::now() + self.key_progress_ttl);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let outcomes = commits
                .iter()
                .map(|commit| commit_unit(&tx, key, commit, expires_at))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(outcomes)
        })
    }
}

/// One unit's commit in `tx`: the claims marked done whatever the fence says
/// (their records' effects landed), then, if the unit is still at the version
/// the batch read, what it settled and its progress.
fn commit_unit(
    tx: &Transaction<'_>,
    key: &ConsumerShard,
    commit: &UnitCommit,
    expires_at: i64,
) -> rusqlite::Result<CommitOutcome> {
    write_done(tx, &key.consumer, &commit.settled.done)?;
    let mut ids: Vec<&dyn rusqlite::ToSql> =
        vec![&key.consumer, &key.shard.stream_arn, &key.shard.shard_id];
    let (read, upsert) = match &commit.unit {
        Unit::Shard => (
            "SELECT version FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3",
            upsert_progress("shard", SHARD_KEYS, &[]),
        ),
        Unit::Key(partition_key) => {
            ids.push(partition_key);
            (
                "SELECT version FROM key_progress
                 WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3 AND partition_key = ?4",
                upsert_progress("key_progress", KEY_KEYS, &["expires_at"]),
            )
        }
    };
    let stored: Option<i64> = tx
        .prepare_cached(read)?
        .query_row(ids.as_slice(), |r| r.get(0))
        .optional()?;
    if stored.unwrap_or(0) != as_i64(commit.read_version) {
        return Ok(CommitOutcome::Superseded);
    }
    write_settled(tx, &key.consumer, &commit.settled)?;
    let version = commit.read_version + 1;
    let row = ProgressRow::of(&commit.progress, version);
    let mut values = ids;
    values.extend(row.values());
    if matches!(commit.unit, Unit::Key(_)) {
        values.push(&expires_at);
    }
    tx.prepare_cached(&upsert)?.execute(values.as_slice())?;
    Ok(CommitOutcome::Committed { version })
}

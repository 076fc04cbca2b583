//! The embedded store: SQLite in a local file, for runs on a developer's machine.
//!
//! Why SQLite (bundled, so nothing to install): a commit is one ACID transaction,
//! so the quarantine and the checkpoint move together even if the process is
//! killed; the file survives restarts, so a second `invoke` of the same event
//! shows the checkpoint skipping; and several local processes can share it
//! safely. A JSON file could do none of that without hand-written locking and
//! atomic renames.

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use std::collections::HashMap;

mod quarantine;
mod rows;
mod schema;

/// The key columns of the shard table and of the key progress table.
const SHARD_KEYS: &[&str] = &["consumer", "stream_arn", "shard_id"];
const KEY_KEYS: &[&str] = &["consumer", "stream_arn", "shard_id", "partition_key"];

use self::rows::{
    PROGRESS_COLUMNS, PROGRESS_WIDTH, ProgressRow, UPSERT_CLAIM, as_i64, corrupt, lineage_columns,
    millis, upsert_progress, write_done, write_settled,
};
use self::schema::{SCHEMA, add_missing_columns};
use super::{
    ClaimOutcome, CommitOutcome, ConsumerShard, DedupClaim, KeyCommit, Lineage, Progress, Settled,
    ShardState, ShardStatus, StateError, StateStore,
};
use crate::quarantine::QuarantinedRecord;

/// Shardline's state in a local SQLite file (`shardline.sqlite` in the state folder).
#[derive(Debug)]
pub struct EmbeddedStore {
    conn: Mutex<Connection>,
    path: String,
    key_progress_ttl: std::time::Duration,
}

impl EmbeddedStore {
    /// Opens the store in `dir` (created if missing).
    ///
    /// # Errors
    /// [`StateError::Embedded`] when the database cannot be opened or set up.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let conn = crate::sqlite::open(dir, "shardline").map_err(|e| StateError::Embedded {
            path: e.path.display().to_string(),
            source: e.source,
        })?;
        let path = dir.join("shardline.sqlite").display().to_string();
        let fail = |source| StateError::Embedded {
            path: path.clone(),
            source,
        };
        conn.execute_batch(SCHEMA).map_err(fail)?;
        add_missing_columns(&conn).map_err(fail)?;
        // Key progress past its TTL is garbage (DynamoDB's TTL deletes it there).
        conn.execute(
            "DELETE FROM key_progress WHERE expires_at > 0 AND expires_at < ?1",
            params![millis(crate::time::now())],
        )
        .map_err(fail)?;
        Ok(EmbeddedStore {
            conn: Mutex::new(conn),
            path,
            key_progress_ttl: super::DEFAULT_KEY_PROGRESS_TTL,
        })
    }

    /// Sets how long a partition key's progress is kept after its last write
    /// ([`super::DEFAULT_KEY_PROGRESS_TTL`] by default).
    pub fn with_key_progress_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_progress_ttl = ttl;
        self
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StateError> {
        // A panic while holding the lock cannot leave a half-done transaction
        // behind (SQLite rolls it back), so a poisoned lock is safe to reuse.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| StateError::Embedded {
            path: self.path.clone(),
            source,
        })
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load_shard(&self, key: &ConsumerShard) -> Result<ShardState, StateError> {
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

    async fn claim_dedup_keys(
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

    async fn commit(
        &self,
        key: &ConsumerShard,
        read_version: u64,
        progress: &Progress,
        settled: &Settled,
    ) -> Result<CommitOutcome, StateError> {
        let new_version = read_version + 1;
        let row = ProgressRow::of(progress, new_version);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            write_done(&tx, &key.consumer, &settled.done)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT version FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3",
                    params![key.consumer, &*key.shard.stream_arn, &*key.shard.shard_id],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.unwrap_or(0) != as_i64(read_version) {
                // The claims marked done stay: their records' effects landed.
                tx.commit()?;
                return Ok(CommitOutcome::Superseded);
            }
            write_settled(&tx, &key.consumer, settled)?;
            let mut values: Vec<&dyn rusqlite::ToSql> =
                vec![&key.consumer, &key.shard.stream_arn, &key.shard.shard_id];
            values.extend(row.values());
            tx.execute(&upsert_progress("shard", SHARD_KEYS, &[]), values.as_slice())?;
            tx.commit()?;
            Ok(CommitOutcome::Committed {
                version: new_version,
            })
        })
    }

    async fn save_lineage(&self, key: &ConsumerShard, lineage: &Lineage) -> Result<(), StateError> {
        let (name, rank, parents) = lineage_columns(lineage);
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO shard (consumer, stream_arn, shard_id, version, lineage, parents)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5)
                 ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                    lineage = excluded.lineage, parents = excluded.parents
                 WHERE (CASE shard.lineage WHEN 'cleared' THEN 2 WHEN 'pending' THEN 1 ELSE 0 END) <= ?6",
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    name,
                    parents,
                    rank
                ],
            )
            .map(drop)
        })
    }

    async fn mark_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        let children = serde_json::to_string(children).unwrap_or_else(|_| "[]".into());
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO shard (consumer, stream_arn, shard_id, version, ended, children)
                 VALUES (?1, ?2, ?3, 0, 1, ?4)
                 ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                    ended = 1, children = excluded.children",
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    children
                ],
            )
            .map(drop)
        })
    }

    async fn load_key_progress(
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

    async fn commit_key_progress(
        &self,
        key: &ConsumerShard,
        commits: &[KeyCommit],
    ) -> Result<Vec<String>, StateError> {
        let expires_at = millis(crate::time::now() + self.key_progress_ttl);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut superseded = Vec::new();
            {
                let mut read = tx.prepare_cached(
                    "SELECT version FROM key_progress
                     WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3 AND partition_key = ?4",
                )?;
                let mut write =
                    tx.prepare_cached(&upsert_progress("key_progress", KEY_KEYS, &["expires_at"]))?;
                for commit in commits {
                    let ids = params![
                        key.consumer,
                        &*key.shard.stream_arn,
                        &*key.shard.shard_id,
                        commit.partition_key
                    ];
                    write_done(&tx, &key.consumer, &commit.settled.done)?;
                    let stored: Option<i64> = read.query_row(ids, |r| r.get(0)).optional()?;
                    if stored.unwrap_or(0) != as_i64(commit.read_version) {
                        superseded.push(commit.partition_key.clone());
                        continue;
                    }
                    write_settled(&tx, &key.consumer, &commit.settled)?;
                    let row = ProgressRow::of(&commit.progress, commit.read_version + 1);
                    let mut values: Vec<&dyn rusqlite::ToSql> = vec![
                        &key.consumer,
                        &key.shard.stream_arn,
                        &key.shard.shard_id,
                        &commit.partition_key,
                    ];
                    values.extend(row.values());
                    values.push(&expires_at);
                    write.execute(values.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(superseded)
        })
    }

    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        self.with_conn(|conn| quarantine::read_all(conn, consumer))?
    }
}

#[cfg(test)]
mod tests;

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
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use std::collections::HashMap;

use super::{
    ClaimOutcome, CommitOutcome, DedupClaim, Delivered, HeadAttempts, KeyCommit, Lineage, Progress,
    Settled, ShardKey, ShardState, ShardStatus, StateError, StateStore,
};
use crate::quarantine::{QuarantineReason, QuarantinedRecord};
use crate::record::{Position, SequenceNumber};
use crate::time::epoch_millis;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shard (
    consumer        TEXT    NOT NULL,
    stream_arn      TEXT    NOT NULL,
    shard_id        TEXT    NOT NULL,
    checkpoint_seq  TEXT,
    checkpoint_sub  INTEGER,
    head_seq        TEXT,
    head_sub        INTEGER,
    head_attempts   INTEGER,
    version         INTEGER NOT NULL,
    lineage         TEXT    NOT NULL DEFAULT 'unknown',
    parents         TEXT    NOT NULL DEFAULT '[]',
    ended           INTEGER NOT NULL DEFAULT 0,
    children        TEXT    NOT NULL DEFAULT '[]',
    delivered       TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (consumer, stream_arn, shard_id)
);
DROP TABLE IF EXISTS sink_progress;
CREATE TABLE IF NOT EXISTS key_progress (
    consumer        TEXT    NOT NULL,
    stream_arn      TEXT    NOT NULL,
    shard_id        TEXT    NOT NULL,
    partition_key   TEXT    NOT NULL,
    checkpoint_seq  TEXT,
    checkpoint_sub  INTEGER,
    head_seq        TEXT,
    head_sub        INTEGER,
    head_attempts   INTEGER,
    delivered       TEXT    NOT NULL DEFAULT '{}',
    version         INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, stream_arn, shard_id, partition_key)
);
CREATE TABLE IF NOT EXISTS dedup (
    consumer    TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (consumer, key)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer            TEXT    NOT NULL,
    stream_arn          TEXT    NOT NULL,
    shard_id            TEXT    NOT NULL,
    sequence_number     TEXT    NOT NULL,
    subsequence_number  INTEGER NOT NULL,
    partition_key       TEXT    NOT NULL,
    reason              TEXT    NOT NULL,
    detail              TEXT    NOT NULL,
    attempts            INTEGER NOT NULL,
    quarantined_at      INTEGER NOT NULL,
    data                BLOB    NOT NULL,
    UNIQUE (consumer, stream_arn, shard_id, sequence_number, subsequence_number)
);
";

/// Columns added since the first schema: a database made by an earlier
/// version gets them on open.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("shard", "delivered", "TEXT NOT NULL DEFAULT '{}'"),
    ("key_progress", "delivered", "TEXT NOT NULL DEFAULT '{}'"),
    ("key_progress", "version", "INTEGER NOT NULL DEFAULT 0"),
    ("key_progress", "expires_at", "INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let present: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists(params![column])?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    Ok(())
}

/// Shardline's state in a local SQLite file (`shardline.sqlite` in the state folder).
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
            params![millis(SystemTime::now())],
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

fn corrupt(what: &ShardKey, detail: String) -> StateError {
    StateError::Corrupt {
        what: format!("{}/{}", what.consumer, what.shard.shard_id),
        detail,
    }
}

fn parse_position(
    what: &ShardKey,
    seq: Option<String>,
    sub: Option<i64>,
) -> Result<Option<Position>, StateError> {
    let (Some(seq), Some(sub)) = (seq, sub) else {
        return Ok(None);
    };
    let sequence: SequenceNumber = seq.parse().map_err(|e| corrupt(what, format!("{e}")))?;
    let subsequence =
        u64::try_from(sub).map_err(|_| corrupt(what, format!("subsequence {sub}")))?;
    Ok(Some(Position::new(sequence, subsequence)))
}

/// The columns that hold a [`Progress`], in this order in every query:
/// checkpoint, head, attempts, delivered, version.
const PROGRESS_COLUMNS: &str =
    "checkpoint_seq, checkpoint_sub, head_seq, head_sub, head_attempts, delivered, version";

/// A [`Progress`] as its columns.
struct ProgressRow {
    checkpoint_seq: Option<String>,
    checkpoint_sub: Option<i64>,
    head_seq: Option<String>,
    head_sub: Option<i64>,
    head_attempts: Option<i64>,
    delivered: String,
    version: i64,
}

impl ProgressRow {
    /// Reads the [`PROGRESS_COLUMNS`] starting at column `first`.
    fn read(row: &rusqlite::Row<'_>, first: usize) -> Result<Self, rusqlite::Error> {
        Ok(ProgressRow {
            checkpoint_seq: row.get(first)?,
            checkpoint_sub: row.get(first + 1)?,
            head_seq: row.get(first + 2)?,
            head_sub: row.get(first + 3)?,
            head_attempts: row.get(first + 4)?,
            delivered: row.get(first + 5)?,
            version: row.get(first + 6)?,
        })
    }

    fn of(progress: &Progress, version: u64) -> Self {
        let texts: serde_json::Map<String, serde_json::Value> = progress
            .delivered
            .to_texts()
            .into_iter()
            .map(|(name, text)| (name, serde_json::Value::String(text)))
            .collect();
        let head = progress.head.as_ref();
        ProgressRow {
            checkpoint_seq: progress.checkpoint.as_ref().map(|p| p.sequence.to_string()),
            checkpoint_sub: progress.checkpoint.as_ref().map(|p| as_i64(p.subsequence)),
            head_seq: head.map(|h| h.position.sequence.to_string()),
            head_sub: head.map(|h| as_i64(h.position.subsequence)),
            head_attempts: head.map(|h| i64::from(h.attempts)),
            delivered: serde_json::Value::Object(texts).to_string(),
            version: as_i64(version),
        }
    }

    fn parse(self, what: &ShardKey) -> Result<Progress, StateError> {
        let head =
            parse_position(what, self.head_seq, self.head_sub)?.map(|position| HeadAttempts {
                position,
                attempts: self
                    .head_attempts
                    .and_then(|a| u32::try_from(a).ok())
                    .unwrap_or(0),
            });
        let texts: HashMap<String, String> = serde_json::from_str(&self.delivered)
            .map_err(|e| corrupt(what, format!("delivered {:?}: {e}", self.delivered)))?;
        let delivered = Delivered::from_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .map_err(|name| corrupt(what, format!("delivered ranges of {name}")))?;
        Ok(Progress {
            checkpoint: parse_position(what, self.checkpoint_seq, self.checkpoint_sub)?,
            head,
            delivered,
            version: u64::try_from(self.version).unwrap_or(0),
        })
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn lineage_columns(lineage: &Lineage) -> (&'static str, u8, String) {
    let (name, rank, parents) = match lineage {
        Lineage::Unknown => ("unknown", 0, &[][..]),
        Lineage::Pending { parents } => ("pending", 1, &parents[..]),
        Lineage::Cleared { parents } => ("cleared", 2, &parents[..]),
    };
    let parents = serde_json::to_string(parents).unwrap_or_else(|_| "[]".into());
    (name, rank, parents)
}

/// Stores what a batch settled: its quarantined records and released claims.
fn write_settled(
    tx: &rusqlite::Transaction<'_>,
    consumer: &str,
    settled: &Settled,
) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO quarantine (consumer, stream_arn, shard_id, sequence_number, subsequence_number,
            partition_key, reason, detail, attempts, quarantined_at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT DO NOTHING",
    )?;
    for q in &settled.quarantine {
        insert.execute(params![
            consumer,
            q.stream_arn,
            q.shard_id,
            q.sequence_number,
            as_i64(q.subsequence_number),
            q.partition_key,
            q.reason.name(),
            q.detail,
            q.attempts,
            as_i64(q.quarantined_at),
            &q.data[..],
        ])?;
    }
    let mut release =
        tx.prepare_cached("DELETE FROM dedup WHERE consumer = ?1 AND key = ?2 AND owner = ?3")?;
    for claim in &settled.released {
        release.execute(params![consumer, claim.key, claim.owner])?;
    }
    Ok(())
}

fn millis(time: SystemTime) -> i64 {
    i64::try_from(epoch_millis(time)).unwrap_or(i64::MAX)
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load_shard(&self, key: &ShardKey) -> Result<ShardState, StateError> {
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
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
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
                    tx.prepare_cached("SELECT owner, expires_at FROM dedup WHERE consumer = ?1 AND key = ?2")?;
                let mut write = tx.prepare_cached(
                    "INSERT INTO dedup (consumer, key, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (consumer, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                )?;
                for claim in claims {
                    let held: Option<(String, i64)> = read
                        .query_row(params![consumer, claim.key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    match held {
                        Some((owner, expires_at)) if owner != claim.owner && expires_at > now => {
                            outcomes.push(ClaimOutcome::HeldBy(owner));
                        }
                        _ => {
                            write.execute(params![
                                consumer,
                                claim.key,
                                claim.owner,
                                millis(claim.expires_at)
                            ])?;
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
        key: &ShardKey,
        read_version: u64,
        progress: &Progress,
        settled: &Settled,
    ) -> Result<CommitOutcome, StateError> {
        let new_version = read_version + 1;
        let row = ProgressRow::of(progress, new_version);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT version FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3",
                    params![key.consumer, &*key.shard.stream_arn, &*key.shard.shard_id],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.unwrap_or(0) != as_i64(read_version) {
                return Ok(CommitOutcome::Superseded);
            }
            write_settled(&tx, &key.consumer, settled)?;
            tx.execute(
                &format!(
                    "INSERT INTO shard (consumer, stream_arn, shard_id, {PROGRESS_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                        checkpoint_seq = excluded.checkpoint_seq, checkpoint_sub = excluded.checkpoint_sub,
                        head_seq = excluded.head_seq, head_sub = excluded.head_sub,
                        head_attempts = excluded.head_attempts, delivered = excluded.delivered,
                        version = excluded.version"
                ),
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    row.checkpoint_seq,
                    row.checkpoint_sub,
                    row.head_seq,
                    row.head_sub,
                    row.head_attempts,
                    row.delivered,
                    row.version,
                ],
            )?;
            tx.commit()?;
            Ok(CommitOutcome::Committed {
                version: new_version,
            })
        })
    }

    async fn save_lineage(&self, key: &ShardKey, lineage: &Lineage) -> Result<(), StateError> {
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

    async fn mark_shard_end(&self, key: &ShardKey, children: &[String]) -> Result<(), StateError> {
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
        key: &ShardKey,
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
        key: &ShardKey,
        commits: &[KeyCommit],
        settled: &Settled,
    ) -> Result<Vec<String>, StateError> {
        let expires_at = millis(SystemTime::now() + self.key_progress_ttl);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            write_settled(&tx, &key.consumer, settled)?;
            let mut superseded = Vec::new();
            {
                let mut read = tx.prepare_cached(
                    "SELECT version FROM key_progress
                     WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3 AND partition_key = ?4",
                )?;
                let mut write = tx.prepare_cached(&format!(
                    "INSERT INTO key_progress (consumer, stream_arn, shard_id, partition_key,
                        {PROGRESS_COLUMNS}, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (consumer, stream_arn, shard_id, partition_key) DO UPDATE SET
                        checkpoint_seq = excluded.checkpoint_seq, checkpoint_sub = excluded.checkpoint_sub,
                        head_seq = excluded.head_seq, head_sub = excluded.head_sub,
                        head_attempts = excluded.head_attempts, delivered = excluded.delivered,
                        version = excluded.version, expires_at = excluded.expires_at"
                ))?;
                for commit in commits {
                    let ids = params![
                        key.consumer,
                        &*key.shard.stream_arn,
                        &*key.shard.shard_id,
                        commit.partition_key
                    ];
                    let stored: Option<i64> = read.query_row(ids, |r| r.get(0)).optional()?;
                    if stored.unwrap_or(0) != as_i64(commit.read_version) {
                        superseded.push(commit.partition_key.clone());
                        continue;
                    }
                    let row = ProgressRow::of(&commit.progress, commit.read_version + 1);
                    write.execute(params![
                        key.consumer,
                        &*key.shard.stream_arn,
                        &*key.shard.shard_id,
                        commit.partition_key,
                        row.checkpoint_seq,
                        row.checkpoint_sub,
                        row.head_seq,
                        row.head_sub,
                        row.head_attempts,
                        row.delivered,
                        row.version,
                        expires_at,
                    ])?;
                }
            }
            tx.commit()?;
            Ok(superseded)
        })
    }

    async fn quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        type Row = (
            String,
            String,
            String,
            i64,
            String,
            String,
            String,
            u32,
            i64,
            Vec<u8>,
        );
        let rows: Vec<Row> = self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT stream_arn, shard_id, sequence_number, subsequence_number, partition_key,
                        reason, detail, attempts, quarantined_at, data
                 FROM quarantine WHERE consumer = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![consumer], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(
                |(stream_arn, shard_id, seq, sub, pk, reason, detail, attempts, at, data)| {
                    let reason = QuarantineReason::from_name(&reason).ok_or_else(|| {
                        StateError::Corrupt {
                            what: format!("quarantine {shard_id}/{seq}"),
                            detail: format!("unknown reason {reason:?}"),
                        }
                    })?;
                    Ok(QuarantinedRecord {
                        stream_arn,
                        shard_id,
                        sequence_number: seq,
                        subsequence_number: u64::try_from(sub).unwrap_or(0),
                        partition_key: pk,
                        reason,
                        detail,
                        attempts,
                        quarantined_at: u64::try_from(at).unwrap_or(0),
                        data: Bytes::from(data),
                    })
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ShardRef;
    use std::sync::Arc;
    use std::time::Duration;

    fn key() -> ShardKey {
        ShardKey {
            consumer: "c".into(),
            shard: ShardRef {
                stream_arn: Arc::from("arn:s"),
                shard_id: Arc::from("shardId-000000000000"),
            },
        }
    }

    fn pos(seq: &str, sub: u64) -> Position {
        Position::new(seq.parse().unwrap(), sub)
    }

    #[tokio::test]
    async fn commit_is_fenced_by_version_and_survives_reopen() {
        let dir = tempdir();
        let store = EmbeddedStore::open(&dir).unwrap();
        let fresh = store.load_shard(&key()).await.unwrap();
        assert_eq!(fresh, ShardState::default());
        assert_eq!(fresh.progress.version, 0);
        let progress = Progress {
            checkpoint: Some(pos(
                "49590338271490256608559692538361571095921575989136588898",
                3,
            )),
            ..Default::default()
        };
        let settled = Settled::default();
        assert_eq!(
            store.commit(&key(), 0, &progress, &settled).await.unwrap(),
            CommitOutcome::Committed { version: 1 }
        );
        // A second writer that read the same (now stale) state loses.
        assert_eq!(
            store.commit(&key(), 0, &progress, &settled).await.unwrap(),
            CommitOutcome::Superseded
        );
        drop(store);
        let reopened = EmbeddedStore::open(&dir).unwrap();
        let state = reopened.load_shard(&key()).await.unwrap();
        assert_eq!(state.progress.version, 1);
        assert_eq!(state.progress.checkpoint, progress.checkpoint);
    }

    #[tokio::test]
    async fn dedup_claims_respect_owner_and_expiry() {
        let dir = tempdir();
        let store = EmbeddedStore::open(&dir).unwrap();
        let now = SystemTime::now();
        let claim = |owner: &str, ttl: u64| DedupClaim {
            key: "order-1".into(),
            owner: owner.into(),
            expires_at: now + Duration::from_secs(ttl),
        };
        let won = store
            .claim_dedup_keys("c", &[claim("a", 60)], now)
            .await
            .unwrap();
        assert_eq!(won, [ClaimOutcome::Won]);
        let again = store
            .claim_dedup_keys("c", &[claim("a", 60)], now)
            .await
            .unwrap();
        assert_eq!(again, [ClaimOutcome::Won], "the same owner keeps its claim");
        let lost = store
            .claim_dedup_keys("c", &[claim("b", 60)], now)
            .await
            .unwrap();
        assert_eq!(lost, [ClaimOutcome::HeldBy("a".into())]);
        let later = now + Duration::from_secs(61);
        let taken = store
            .claim_dedup_keys("c", &[claim("b", 120)], later)
            .await
            .unwrap();
        assert_eq!(taken, [ClaimOutcome::Won], "an expired claim is taken over");
    }

    #[tokio::test]
    async fn a_database_of_the_first_schema_gets_the_new_columns() {
        let dir = tempdir();
        let conn = crate::sqlite::open(&dir, "shardline").unwrap();
        conn.execute_batch(
            "CREATE TABLE shard (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
                shard_id TEXT NOT NULL, checkpoint_seq TEXT, checkpoint_sub INTEGER,
                head_seq TEXT, head_sub INTEGER, head_attempts INTEGER, version INTEGER NOT NULL,
                lineage TEXT NOT NULL DEFAULT 'unknown', parents TEXT NOT NULL DEFAULT '[]',
                ended INTEGER NOT NULL DEFAULT 0, children TEXT NOT NULL DEFAULT '[]',
                PRIMARY KEY (consumer, stream_arn, shard_id));
             CREATE TABLE key_progress (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
                shard_id TEXT NOT NULL, partition_key TEXT NOT NULL, checkpoint_seq TEXT,
                checkpoint_sub INTEGER, head_seq TEXT, head_sub INTEGER, head_attempts INTEGER,
                PRIMARY KEY (consumer, stream_arn, shard_id, partition_key));
             CREATE TABLE sink_progress (consumer TEXT NOT NULL, stream_arn TEXT NOT NULL,
                shard_id TEXT NOT NULL, destination TEXT NOT NULL, delivered TEXT NOT NULL,
                PRIMARY KEY (consumer, stream_arn, shard_id, destination));
             INSERT INTO shard (consumer, stream_arn, shard_id, checkpoint_seq, checkpoint_sub, version)
                VALUES ('c', 'arn:s', 'shardId-000000000000', '42', 0, 3);",
        )
        .unwrap();
        drop(conn);
        let store = EmbeddedStore::open(&dir).unwrap();
        let state = store.load_shard(&key()).await.unwrap();
        assert_eq!(state.progress.checkpoint, Some(pos("42", 0)));
        assert_eq!(state.progress.version, 3);
        let progress = Progress {
            checkpoint: Some(pos("43", 0)),
            ..Progress::default()
        };
        let outcome = store
            .commit(&key(), 3, &progress, &Settled::default())
            .await
            .unwrap();
        assert_eq!(outcome, CommitOutcome::Committed { version: 4 });
    }

    pub(crate) fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shardline-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

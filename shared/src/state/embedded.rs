//! The embedded store: SQLite in a local file, for runs on a developer's machine.
//!
//! Why SQLite (bundled, so nothing to install): a commit is one ACID transaction,
//! so the quarantine and the checkpoint move together even if the process is
//! killed; the file survives restarts, so a second `invoke` of the same event
//! shows the checkpoint skipping; and several local processes can share it
//! safely. A JSON file could do none of that without hand-written locking and
//! atomic renames.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ClaimOutcome, CommitOutcome, DedupClaim, HeadAttempts, ShardCommit, ShardKey, ShardState,
    StateError, StateStore,
};
use crate::quarantine::{QuarantineReason, QuarantinedRecord, epoch_millis};
use crate::record::{Position, SequenceNumber};

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
    PRIMARY KEY (consumer, stream_arn, shard_id)
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

/// Opens (creating if needed) the SQLite database `name.sqlite` in `dir`, set up
/// for several local processes: WAL journal and a busy timeout. Functions use it
/// for their own local tables too.
///
/// # Errors
/// [`StateError::Embedded`] when the folder or database cannot be opened.
pub fn open_database(dir: &Path, name: &str) -> Result<(Connection, PathBuf), StateError> {
    let path = dir.join(format!("{name}.sqlite"));
    let fail = |source| StateError::Embedded {
        path: path.display().to_string(),
        source,
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Err(fail(rusqlite::Error::InvalidPath(PathBuf::from(format!(
            "{}: {e}",
            dir.display()
        )))));
    }
    let conn = Connection::open(&path).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    Ok((conn, path))
}

/// Shardline's state in a local SQLite file (`shardline.sqlite` in the state folder).
pub struct EmbeddedStore {
    conn: Mutex<Connection>,
    path: String,
}

impl EmbeddedStore {
    /// Opens the store in `dir` (created if missing).
    ///
    /// # Errors
    /// [`StateError::Embedded`] when the database cannot be opened or set up.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let (conn, path) = open_database(dir, "shardline")?;
        let path = path.display().to_string();
        conn.execute_batch(SCHEMA)
            .map_err(|source| StateError::Embedded {
                path: path.clone(),
                source,
            })?;
        Ok(EmbeddedStore {
            conn: Mutex::new(conn),
            path,
        })
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

fn parse_position(
    what: &ShardKey,
    seq: Option<String>,
    sub: Option<i64>,
) -> Result<Option<Position>, StateError> {
    let (Some(seq), Some(sub)) = (seq, sub) else {
        return Ok(None);
    };
    let corrupt = |detail: String| StateError::Corrupt {
        what: format!("{}/{}", what.consumer, what.shard.shard_id),
        detail,
    };
    let sequence: SequenceNumber = seq.parse().map_err(|e| corrupt(format!("{e}")))?;
    let subsequence = u64::try_from(sub).map_err(|_| corrupt(format!("subsequence {sub}")))?;
    Ok(Some(Position::new(sequence, subsequence)))
}

fn millis(time: SystemTime) -> i64 {
    i64::try_from(epoch_millis(time)).unwrap_or(i64::MAX)
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load_shard(&self, key: &ShardKey) -> Result<ShardState, StateError> {
        type Row = (
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            i64,
        );
        let row: Option<Row> =
            self.with_conn(|conn| {
                conn.query_row(
                "SELECT checkpoint_seq, checkpoint_sub, head_seq, head_sub, head_attempts, version
                 FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3",
                params![key.consumer, &*key.shard.stream_arn, &*key.shard.shard_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            })?;
        let Some((cp_seq, cp_sub, head_seq, head_sub, head_attempts, version)) = row else {
            return Ok(ShardState::default());
        };
        let head = parse_position(key, head_seq, head_sub)?.map(|position| HeadAttempts {
            position,
            attempts: head_attempts
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
        });
        Ok(ShardState {
            checkpoint: parse_position(key, cp_seq, cp_sub)?,
            head,
            version: u64::try_from(version).unwrap_or(0),
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
        read: &ShardState,
        commit: &ShardCommit,
    ) -> Result<CommitOutcome, StateError> {
        let new_version = read.version + 1;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT version FROM shard WHERE consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3",
                    params![key.consumer, &*key.shard.stream_arn, &*key.shard.shard_id],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.unwrap_or(0) != as_i64(read.version) {
                return Ok(CommitOutcome::Superseded);
            }
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO quarantine (consumer, stream_arn, shard_id, sequence_number, subsequence_number,
                        partition_key, reason, detail, attempts, quarantined_at, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT DO NOTHING",
                )?;
                for q in &commit.quarantine {
                    insert.execute(params![
                        key.consumer,
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
            }
            let cp = commit.checkpoint.as_ref();
            let head = commit.head.as_ref();
            tx.execute(
                "INSERT INTO shard (consumer, stream_arn, shard_id, checkpoint_seq, checkpoint_sub,
                    head_seq, head_sub, head_attempts, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                    checkpoint_seq = excluded.checkpoint_seq, checkpoint_sub = excluded.checkpoint_sub,
                    head_seq = excluded.head_seq, head_sub = excluded.head_sub,
                    head_attempts = excluded.head_attempts, version = excluded.version",
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    cp.map(|p| p.sequence.to_string()),
                    cp.map(|p| as_i64(p.subsequence)),
                    head.map(|h| h.position.sequence.to_string()),
                    head.map(|h| as_i64(h.position.subsequence)),
                    head.map(|h| h.attempts),
                    as_i64(new_version),
                ],
            )?;
            tx.commit()?;
            Ok(CommitOutcome::Committed {
                version: new_version,
            })
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
        let commit = ShardCommit {
            checkpoint: Some(pos(
                "49590338271490256608559692538361571095921575989136588898",
                3,
            )),
            ..Default::default()
        };
        assert_eq!(
            store.commit(&key(), &fresh, &commit).await.unwrap(),
            CommitOutcome::Committed { version: 1 }
        );
        // A second writer that read the same (now stale) state loses.
        assert_eq!(
            store.commit(&key(), &fresh, &commit).await.unwrap(),
            CommitOutcome::Superseded
        );
        drop(store);
        let reopened = EmbeddedStore::open(&dir).unwrap();
        let state = reopened.load_shard(&key()).await.unwrap();
        assert_eq!(state.version, 1);
        assert_eq!(state.checkpoint, commit.checkpoint);
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

    pub(crate) fn tempdir() -> PathBuf {
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

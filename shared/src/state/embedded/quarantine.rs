//! The embedded store's quarantine: reading it, and the operations of
//! [`QuarantineStore`] (replay claims, new failures, deletes).

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, params};

use super::EmbeddedStore;
use super::rows::as_i64;
use crate::quarantine::{QuarantineKey, QuarantineReason, QuarantinedRecord};
use crate::state::{QuarantineStore, StateError};

/// The columns read back, in order.
const COLUMNS: &str = "stream_arn, shard_id, sequence_number, subsequence_number, partition_key,
    reason, detail, attempts, quarantined_at, data, explicit_hash_key, replay_started_at";

/// The condition naming one record of one consumer (parameters ?1 to ?5).
const ONE: &str = "consumer = ?1 AND stream_arn = ?2 AND shard_id = ?3
    AND sequence_number = ?4 AND subsequence_number = ?5";

/// Every quarantined record of `consumer`, in the order stored.
pub(super) fn read_all(
    conn: &Connection,
    consumer: &str,
) -> Result<Result<Vec<QuarantinedRecord>, StateError>, rusqlite::Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM quarantine WHERE consumer = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![consumer], |r| {
        let reason: String = r.get(5)?;
        let shard_id: String = r.get(1)?;
        let sequence_number: String = r.get(2)?;
        let Some(reason) = QuarantineReason::from_name(&reason) else {
            return Ok(Err(StateError::Corrupt {
                what: format!("quarantine {shard_id}/{sequence_number}"),
                detail: format!("unknown reason {reason:?}"),
            }));
        };
        Ok(Ok(QuarantinedRecord {
            stream_arn: r.get(0)?,
            shard_id,
            sequence_number,
            subsequence_number: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            partition_key: r.get(4)?,
            reason,
            detail: r.get(6)?,
            attempts: r.get(7)?,
            quarantined_at: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
            data: Bytes::from(r.get::<_, Vec<u8>>(9)?),
            explicit_hash_key: r.get(10)?,
            replay_started_at: r
                .get::<_, Option<i64>>(11)?
                .and_then(|at| u64::try_from(at).ok()),
        }))
    })?;
    let rows: Vec<Result<QuarantinedRecord, StateError>> = rows.collect::<Result<_, _>>()?;
    Ok(rows.into_iter().collect())
}

#[async_trait]
impl QuarantineStore for EmbeddedStore {
    async fn list_quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        self.with_conn(|conn| read_all(conn, consumer))?
    }

    async fn claim_replay(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        now_ms: u64,
        take_over_before: Option<u64>,
    ) -> Result<bool, StateError> {
        // Without a take-over ?7 is NULL, and `<= NULL` holds for no claim.
        let changed = self.with_conn(|conn| {
            conn.execute(
                &format!(
                    "UPDATE quarantine SET replay_started_at = ?6 WHERE {ONE}
                     AND (replay_started_at IS NULL OR replay_started_at <= ?7)"
                ),
                params![
                    consumer,
                    key.stream_arn,
                    key.shard_id,
                    key.sequence_number,
                    as_i64(key.subsequence_number),
                    as_i64(now_ms),
                    take_over_before.map(as_i64),
                ],
            )
        })?;
        Ok(changed == 1)
    }

    async fn requeue(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        reason: QuarantineReason,
        detail: &str,
        attempts: u32,
    ) -> Result<(), StateError> {
        self.with_conn(|conn| {
            conn.execute(
                &format!(
                    "UPDATE quarantine SET reason = ?6, detail = ?7, attempts = ?8,
                     replay_started_at = NULL WHERE {ONE}"
                ),
                params![
                    consumer,
                    key.stream_arn,
                    key.shard_id,
                    key.sequence_number,
                    as_i64(key.subsequence_number),
                    reason.name(),
                    detail,
                    attempts,
                ],
            )
        })?;
        Ok(())
    }

    async fn remove_quarantined(
        &self,
        consumer: &str,
        key: &QuarantineKey,
    ) -> Result<bool, StateError> {
        let changed = self.with_conn(|conn| {
            conn.execute(
                &format!("DELETE FROM quarantine WHERE {ONE}"),
                params![
                    consumer,
                    key.stream_arn,
                    key.shard_id,
                    key.sequence_number,
                    as_i64(key.subsequence_number),
                ],
            )
        })?;
        Ok(changed == 1)
    }
}

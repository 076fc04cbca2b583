//! Rows of the embedded store: a [`Progress`] as columns (one mapping for the
//! shard and the key tables), lineage, and what a batch settled.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::params;

use crate::progress::MAX_DONE_BYTES;
use crate::record::{Position, SequenceNumber};
use crate::state::{
    ConsumerShard, DedupClaim, Delivered, HeadAttempts, Lineage, PositionRanges, Progress, Settled,
    StateError,
};
use crate::time::epoch_millis;

pub(super) fn corrupt(what: &ConsumerShard, detail: String) -> StateError {
    StateError::Corrupt {
        what: format!("{}/{}", what.consumer, what.shard.shard_id),
        detail,
    }
}

pub(super) fn parse_position(
    what: &ConsumerShard,
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
/// checkpoint, head, attempts (as written before in-batch concurrency; now
/// NULL), delivered, version, done ranges, failing heads.
pub(super) const PROGRESS_COLUMNS: &str = "checkpoint_seq, checkpoint_sub, head_seq, head_sub, \
     head_attempts, delivered, version, done_after, failing_heads";

/// How many columns [`PROGRESS_COLUMNS`] names.
pub(super) const PROGRESS_WIDTH: usize = 9;

/// A [`Progress`] as its columns.
pub(super) struct ProgressRow {
    pub(super) checkpoint_seq: Option<String>,
    pub(super) checkpoint_sub: Option<i64>,
    pub(super) head_seq: Option<String>,
    pub(super) head_sub: Option<i64>,
    pub(super) head_attempts: Option<i64>,
    pub(super) delivered: String,
    pub(super) version: i64,
    pub(super) done_after: String,
    pub(super) failing_heads: String,
}

impl ProgressRow {
    /// Reads the [`PROGRESS_COLUMNS`] starting at column `first`.
    pub(super) fn read(row: &rusqlite::Row<'_>, first: usize) -> Result<Self, rusqlite::Error> {
        Ok(ProgressRow {
            checkpoint_seq: row.get(first)?,
            checkpoint_sub: row.get(first + 1)?,
            head_seq: row.get(first + 2)?,
            head_sub: row.get(first + 3)?,
            head_attempts: row.get(first + 4)?,
            delivered: row.get(first + 5)?,
            version: row.get(first + 6)?,
            done_after: row.get(first + 7)?,
            failing_heads: row.get(first + 8)?,
        })
    }

    pub(super) fn of(progress: &Progress, version: u64) -> Self {
        let texts: serde_json::Map<String, serde_json::Value> = progress
            .delivered
            .to_texts()
            .into_iter()
            .map(|(name, text)| (name, serde_json::Value::String(text)))
            .collect();
        let (done_after, dropped) = progress.done.to_text_within(MAX_DONE_BYTES);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "too many done ranges to keep; the records in them run again on the retry"
            );
        }
        ProgressRow {
            checkpoint_seq: progress.checkpoint.as_ref().map(|p| p.sequence.to_string()),
            checkpoint_sub: progress.checkpoint.as_ref().map(|p| as_i64(p.subsequence)),
            head_seq: None,
            head_sub: None,
            head_attempts: None,
            delivered: serde_json::Value::Object(texts).to_string(),
            version: as_i64(version),
            done_after,
            failing_heads: HeadAttempts::list_to_text(&progress.heads),
        }
    }

    /// Its values, in the order of [`PROGRESS_COLUMNS`].
    pub(super) fn values(&self) -> [&dyn rusqlite::ToSql; PROGRESS_WIDTH] {
        [
            &self.checkpoint_seq,
            &self.checkpoint_sub,
            &self.head_seq,
            &self.head_sub,
            &self.head_attempts,
            &self.delivered,
            &self.version,
            &self.done_after,
            &self.failing_heads,
        ]
    }

    pub(super) fn parse(self, what: &ConsumerShard) -> Result<Progress, StateError> {
        let heads = if self.failing_heads.is_empty() {
            let legacy = parse_position(what, self.head_seq, self.head_sub)?;
            let attempts = self.head_attempts.and_then(|a| u32::try_from(a).ok());
            legacy
                .map(|position| HeadAttempts {
                    position,
                    attempts: attempts.unwrap_or(0),
                })
                .into_iter()
                .collect()
        } else {
            HeadAttempts::list_from_text(&self.failing_heads)
                .ok_or_else(|| corrupt(what, format!("failing heads {:?}", self.failing_heads)))?
        };
        let done = PositionRanges::from_text(&self.done_after)
            .ok_or_else(|| corrupt(what, format!("done ranges {:?}", self.done_after)))?;
        let texts: HashMap<String, String> = serde_json::from_str(&self.delivered)
            .map_err(|e| corrupt(what, format!("delivered {:?}: {e}", self.delivered)))?;
        let delivered = Delivered::from_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .map_err(|name| corrupt(what, format!("delivered ranges of {name}")))?;
        Ok(Progress {
            checkpoint: parse_position(what, self.checkpoint_seq, self.checkpoint_sub)?,
            done,
            heads,
            delivered,
            version: u64::try_from(self.version).unwrap_or(0),
        }
        .tidied())
    }
}

/// An upsert into `table`, keyed by the columns `keys`, of the
/// [`PROGRESS_COLUMNS`] and then the columns `extra`: its values go in that order.
pub(super) fn upsert_progress(table: &str, keys: &[&str], extra: &[&str]) -> String {
    let mut columns: Vec<&str> = keys.to_vec();
    columns.extend(PROGRESS_COLUMNS.split(", "));
    columns.extend(extra);
    let places: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = columns[keys.len()..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        places.join(", "),
        keys.join(", "),
        updates.join(", ")
    )
}

pub(super) fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn lineage_columns(lineage: &Lineage) -> (&'static str, u8, String) {
    let (name, rank, parents) = match lineage {
        Lineage::Unknown => ("unknown", 0, &[][..]),
        Lineage::Pending { parents } => ("pending", 1, &parents[..]),
        Lineage::Cleared { parents } => ("cleared", 2, &parents[..]),
    };
    let parents = serde_json::to_string(parents).unwrap_or_else(|_| "[]".into());
    (name, rank, parents)
}

/// Stores what a batch settled: its quarantined records and released claims.
pub(super) fn write_settled(
    tx: &rusqlite::Transaction<'_>,
    consumer: &str,
    settled: &Settled,
) -> Result<(), rusqlite::Error> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO quarantine (consumer, stream_arn, shard_id, sequence_number, subsequence_number,
            partition_key, reason, detail, attempts, quarantined_at, data, explicit_hash_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
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
            q.explicit_hash_key,
        ])?;
    }
    let mut release =
        tx.prepare_cached("DELETE FROM dedup WHERE consumer = ?1 AND key = ?2 AND owner = ?3")?;
    for claim in &settled.released {
        release.execute(params![consumer, claim.key, claim.owner])?;
    }
    Ok(())
}

/// Writes a dedup claim (consumer, key, owner, expiry, in flight or done),
/// over the one there.
pub(super) const UPSERT_CLAIM: &str =
    "INSERT INTO dedup (consumer, key, owner, expires_at, in_flight) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (consumer, key) DO UPDATE SET owner = excluded.owner,
        expires_at = excluded.expires_at, in_flight = excluded.in_flight";

/// Marks the claims of handled records done (whatever the fence says: their
/// effect landed).
pub(super) fn write_done(
    tx: &rusqlite::Transaction<'_>,
    consumer: &str,
    done: &[DedupClaim],
) -> Result<(), rusqlite::Error> {
    let mut write = tx.prepare_cached(UPSERT_CLAIM)?;
    for claim in done {
        let expires_at = millis(claim.expires_at);
        write.execute(params![consumer, claim.key, claim.owner, expires_at, false])?;
    }
    Ok(())
}

pub(super) fn millis(time: SystemTime) -> i64 {
    i64::try_from(epoch_millis(time)).unwrap_or(i64::MAX)
}

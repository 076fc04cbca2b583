//! Where the window counts go: one row per window, shard and partition key.
//!
//! A window's counts are written once per part (its whole state, or each part
//! of a window Lambda ended early), named by the part's first record: a part
//! written again (a retried final invocation) adds nothing, and the parts of
//! one window add up. Locally: SQLite in Shardline's state folder
//! (`key-counts.sqlite`); in AWS: the `KEY_COUNTS_TABLE` table.

use std::sync::Mutex;

use rusqlite::{Connection, params};
use serde::Serialize;
use shardline::config::Settings;
use shardline::tables::{StoreError, TableBackend, TableSpec};
use shardline::window::WindowInfo;

use crate::counts::Counts;

/// The function's table: `KEY_COUNTS_TABLE` in DynamoDB (`pk` = `window#{start}`,
/// `sk` = `{shard}#{partition key}`), else `key-counts.sqlite`.
pub(crate) const KEY_COUNTS_TABLE: TableSpec = TableSpec {
    env_var: "KEY_COUNTS_TABLE",
    local_name: "key-counts",
    hash_key: "pk",
    range_key: Some("sk"),
    ttl_attribute: None,
};

/// One row: a key's counts in one window of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Row {
    /// The window's start (RFC 3339, as Lambda gives it).
    pub window_start: String,
    /// The window's end.
    pub window_end: String,
    /// The stream.
    pub stream_arn: String,
    /// The shard.
    pub shard_id: String,
    /// The partition key.
    pub partition_key: String,
    /// Records counted.
    pub records: u64,
    /// Payload bytes counted.
    pub bytes: u64,
}

/// Where the counts live.
pub(crate) enum CountStore {
    /// SQLite in the state folder.
    Embedded(EmbeddedCounts),
    /// The `KEY_COUNTS_TABLE` table.
    DynamoDb(crate::dynamodb::DynamoCounts),
}

impl CountStore {
    /// Opens the store the environment names (see [`KEY_COUNTS_TABLE`]).
    pub(crate) async fn open(settings: &Settings) -> Result<Self, StoreError> {
        Ok(match KEY_COUNTS_TABLE.open(settings).await? {
            TableBackend::DynamoDb { client, table } => {
                CountStore::DynamoDb(crate::dynamodb::DynamoCounts::new(client, table))
            }
            TableBackend::Embedded(conn) => CountStore::Embedded(EmbeddedCounts::new(conn)?),
        })
    }

    /// Adds the counts of one part of `window` (named by `counts.first`),
    /// unless that part was written before. Nothing to write for no keys.
    pub(crate) async fn write(
        &self,
        window: &WindowInfo,
        counts: &Counts,
    ) -> Result<(), StoreError> {
        let Some(part) = counts.first.as_deref() else {
            return Ok(());
        };
        match self {
            CountStore::Embedded(store) => store.write(window, part, counts),
            CountStore::DynamoDb(store) => store.write(window, part, counts).await,
        }
    }

    /// Every row, by window start, shard and key.
    pub(crate) async fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let mut rows = match self {
            CountStore::Embedded(store) => store.rows()?,
            CountStore::DynamoDb(store) => store.rows().await?,
        };
        rows.sort_by(|a, b| {
            (&a.window_start, &a.shard_id, &a.partition_key).cmp(&(
                &b.window_start,
                &b.shard_id,
                &b.partition_key,
            ))
        });
        Ok(rows)
    }
}

/// The counts in SQLite.
pub(crate) struct EmbeddedCounts {
    conn: Mutex<Connection>,
}

impl EmbeddedCounts {
    /// The counts in the SQLite database `conn` (tables created if needed).
    pub(crate) fn new(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS key_count (
                window_start TEXT NOT NULL, window_end TEXT NOT NULL,
                stream_arn TEXT NOT NULL, shard_id TEXT NOT NULL,
                partition_key TEXT NOT NULL,
                records INTEGER NOT NULL, bytes INTEGER NOT NULL,
                PRIMARY KEY (window_start, shard_id, partition_key));
             CREATE TABLE IF NOT EXISTS window_part (
                window_start TEXT NOT NULL, shard_id TEXT NOT NULL, part TEXT NOT NULL,
                PRIMARY KEY (window_start, shard_id, part));",
        )?;
        Ok(EmbeddedCounts {
            conn: Mutex::new(conn),
        })
    }

    fn write(&self, window: &WindowInfo, part: &str, counts: &Counts) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let new = tx.execute(
            "INSERT OR IGNORE INTO window_part (window_start, shard_id, part) VALUES (?1, ?2, ?3)",
            params![window.start, window.shard_id, part],
        )?;
        if new == 0 {
            return Ok(());
        }
        for (key, count) in &counts.keys {
            tx.execute(
                "INSERT INTO key_count (window_start, window_end, stream_arn, shard_id,
                     partition_key, records, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (window_start, shard_id, partition_key) DO UPDATE SET
                     records = records + excluded.records, bytes = bytes + excluded.bytes",
                params![
                    window.start,
                    window.end,
                    window.stream_arn,
                    window.shard_id,
                    key,
                    i64::try_from(count.records()).unwrap_or(i64::MAX),
                    i64::try_from(count.bytes()).unwrap_or(i64::MAX)
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn rows(&self) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut statement = conn.prepare(
            "SELECT window_start, window_end, stream_arn, shard_id, partition_key, records, bytes
             FROM key_count",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Row {
                window_start: row.get(0)?,
                window_end: row.get(1)?,
                stream_arn: row.get(2)?,
                shard_id: row.get(3)?,
                partition_key: row.get(4)?,
                records: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                bytes: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

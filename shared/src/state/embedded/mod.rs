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

use rusqlite::{Connection, params};

mod lineage;
mod progress;
mod quarantine;
mod rows;
mod schema;

/// The key columns of the shard table and of the key progress table.
const SHARD_KEYS: &[&str] = &["consumer", "stream_arn", "shard_id"];
const KEY_KEYS: &[&str] = &["consumer", "stream_arn", "shard_id", "partition_key"];

use self::rows::millis;
use self::schema::{SCHEMA, add_missing_columns};
use super::StateError;

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

#[cfg(test)]
mod tests;

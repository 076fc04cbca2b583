//! Where users' last-seen times live: SQLite locally (`active-users.sqlite` in
//! Shardline's state folder), DynamoDB with `ACTIVE_USERS_TABLE`
//! ([`crate::dynamodb`]).
//!
//! Both stores apply the same rule: a user's last-seen time only moves forward.
//! [`ActiveUsersStore::advance`] takes the latest heartbeat per user of one
//! batch and writes only those newer than what is stored, so replaying a batch,
//! or applying an older batch after a newer one, changes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};
use shardline::config::Settings;
use shardline::tables::{StoreError, TableBackend, TableSpec};

use crate::heartbeat::{expires_at, is_active, window_ms};

/// The function's table, created by `setup` when `ACTIVE_USERS_TABLE` is set;
/// locally `active-users.sqlite`.
pub const ACTIVE_USERS_TABLE: TableSpec = TableSpec {
    env_var: "ACTIVE_USERS_TABLE",
    local_name: "active-users",
    hash_key: crate::dynamodb::USER_ATTRIBUTE,
    range_key: None,
    ttl_attribute: Some(crate::dynamodb::TTL_ATTRIBUTE),
};

/// What one [`ActiveUsersStore::advance`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Users whose last-seen time moved forward.
    pub written: usize,
    /// Users left as they were: their stored time was as new or newer.
    pub unchanged: usize,
}

/// The users' last-seen times: embedded locally, DynamoDB with `ACTIVE_USERS_TABLE`.
#[derive(Debug)]
pub enum ActiveUsersStore {
    /// SQLite in the state folder.
    Embedded(EmbeddedActiveUsers),
    /// The `ACTIVE_USERS_TABLE` table.
    DynamoDb(crate::dynamodb::DynamoActiveUsers),
}

impl ActiveUsersStore {
    /// Opens the store the environment names (see [`ACTIVE_USERS_TABLE`]).
    ///
    /// # Errors
    /// [`StoreError`] when the local database cannot be opened or set up.
    pub async fn open(settings: &Settings) -> Result<Self, StoreError> {
        Ok(match ACTIVE_USERS_TABLE.open(settings).await? {
            TableBackend::DynamoDb { client, table } => {
                ActiveUsersStore::DynamoDb(crate::dynamodb::DynamoActiveUsers::new(client, table))
            }
            TableBackend::Embedded(conn) => {
                ActiveUsersStore::Embedded(EmbeddedActiveUsers::new(conn)?)
            }
        })
    }

    /// Moves each user's last-seen time forward to `latest[user]` (epoch ms) where
    /// that is newer than the stored one; the item expires `window` after it.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be written; what was written stays
    /// (applying the same batch again is harmless).
    pub async fn advance(
        &self,
        latest: &BTreeMap<String, u64>,
        window: Duration,
    ) -> Result<Advanced, StoreError> {
        if latest.is_empty() {
            return Ok(Advanced::default());
        }
        match self {
            ActiveUsersStore::Embedded(store) => store.advance(latest, window),
            // Boxed: the SDK's futures are deep, and the handler's future
            // nests inside Shardline's (rustc's layout depth limit).
            ActiveUsersStore::DynamoDb(store) => Box::pin(store.advance(latest, window)).await,
        }
    }

    /// The users active at `now_ms` (seen within `window`), with their last-seen
    /// time. Expired users are filtered here: TTL deletion is lazy.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    pub async fn active(
        &self,
        now_ms: u64,
        window: Duration,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        match self {
            ActiveUsersStore::Embedded(store) => store.active(now_ms, window),
            ActiveUsersStore::DynamoDb(store) => Box::pin(store.active(now_ms, window)).await,
        }
    }
}

/// The embedded store.
#[derive(Debug)]
pub struct EmbeddedActiveUsers {
    conn: Mutex<Connection>,
}

impl EmbeddedActiveUsers {
    /// The store in the SQLite database `conn`.
    ///
    /// # Errors
    /// [`StoreError`] when the table cannot be set up.
    pub fn new(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 user_id     TEXT PRIMARY KEY,
                 last_seen   INTEGER NOT NULL,
                 expires_at  INTEGER NOT NULL);",
        )?;
        Ok(EmbeddedActiveUsers {
            conn: Mutex::new(conn),
        })
    }

    fn advance(
        &self,
        latest: &BTreeMap<String, u64>,
        window: Duration,
    ) -> Result<Advanced, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut done = Advanced::default();
        {
            // The upsert's WHERE is the "only forward" rule, as the DynamoDB
            // store's condition expression is.
            let mut upsert = tx.prepare(
                "INSERT INTO users (user_id, last_seen, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE
                   SET last_seen = excluded.last_seen, expires_at = excluded.expires_at
                   WHERE excluded.last_seen > users.last_seen",
            )?;
            for (user, ts) in latest {
                let ts_db = i64::try_from(*ts).unwrap_or(i64::MAX);
                let ttl = i64::try_from(expires_at(*ts, window)).unwrap_or(i64::MAX);
                match upsert.execute(params![user, ts_db, ttl])? {
                    0 => done.unchanged += 1,
                    _ => done.written += 1,
                }
            }
        }
        tx.commit()?;
        Ok(done)
    }

    fn active(&self, now_ms: u64, window: Duration) -> Result<BTreeMap<String, u64>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let since = i64::try_from(now_ms.saturating_sub(window_ms(window))).unwrap_or(i64::MAX);
        let mut stmt =
            conn.prepare("SELECT user_id, last_seen FROM users WHERE last_seen >= ?1")?;
        let rows = stmt.query_map(params![since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut active = BTreeMap::new();
        for row in rows {
            let (user, last_seen) = row?;
            let last_seen = u64::try_from(last_seen).unwrap_or(0);
            if is_active(last_seen, now_ms, window) {
                active.insert(user, last_seen);
            }
        }
        Ok(active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(120);

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("active-users-{tag}-{}-{nanos}", std::process::id()))
    }

    #[tokio::test]
    async fn last_seen_only_moves_forward_and_expired_users_are_hidden() {
        let dir = temp_dir("store");
        let conn = shardline::sqlite::open(&dir, "active-users").unwrap();
        let store = ActiveUsersStore::Embedded(EmbeddedActiveUsers::new(conn).unwrap());
        let now = 1_763_790_000_000_u64;
        let first = BTreeMap::from([
            ("a".to_owned(), now - 10_000),
            ("b".to_owned(), now - 500_000),
        ]);
        let done = store.advance(&first, WINDOW).await.unwrap();
        assert_eq!(
            done,
            Advanced {
                written: 2,
                unchanged: 0
            }
        );

        // Older for a, equal for b: nothing moves. Newer for c: written.
        let second = BTreeMap::from([
            ("a".to_owned(), now - 20_000),
            ("b".to_owned(), now - 500_000),
            ("c".to_owned(), now - 1_000),
        ]);
        let done = store.advance(&second, WINDOW).await.unwrap();
        assert_eq!(
            done,
            Advanced {
                written: 1,
                unchanged: 2
            }
        );

        let active = store.active(now, WINDOW).await.unwrap();
        assert_eq!(
            active,
            BTreeMap::from([
                ("a".to_owned(), now - 10_000),
                ("c".to_owned(), now - 1_000)
            ])
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

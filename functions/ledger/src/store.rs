//! Where the ledger keeps balances and applied transactions.
//!
//! Locally: SQLite in Shardline's state folder (`ledger.sqlite`). Applying a
//! transaction is one SQLite transaction (read the account, decide, write the
//! account and the txn id), so a replay after a crash applies nothing twice.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use shardline::config::Settings;
use shardline::tables::{StoreError, TableBackend, TableSpec};

use crate::rules::{Account, Applied, Decision, Origin, Txn, decide, now_us};

/// The ledger's own table: `LEDGER_TABLE` in DynamoDB, else `ledger.sqlite`.
pub(crate) const LEDGER_TABLE: TableSpec = TableSpec {
    env_var: "LEDGER_TABLE",
    local_name: "ledger",
    hash_key: "pk",
    range_key: Some("sk"),
    ttl_attribute: None,
};

/// Where the ledger lives: embedded locally, DynamoDB with `LEDGER_TABLE`.
pub(crate) enum LedgerStore {
    /// SQLite in the state folder.
    Embedded(EmbeddedLedger),
    /// The `LEDGER_TABLE` table.
    DynamoDb(crate::dynamodb::DynamoLedger),
}

impl LedgerStore {
    /// Opens the store the environment names (see [`LEDGER_TABLE`]).
    pub(crate) async fn open(settings: &Settings) -> Result<Self, StoreError> {
        Ok(match LEDGER_TABLE.open(settings).await? {
            TableBackend::DynamoDb { client, table } => {
                LedgerStore::DynamoDb(crate::dynamodb::DynamoLedger::new(client, table))
            }
            TableBackend::Embedded(conn) => LedgerStore::Embedded(EmbeddedLedger::new(conn)?),
        })
    }

    /// Applies `txn` (from `origin`) and says what it did.
    pub(crate) async fn apply(&self, txn: &Txn, origin: &Origin) -> Result<Decision, StoreError> {
        match self {
            LedgerStore::Embedded(store) => store.apply(txn, origin),
            LedgerStore::DynamoDb(store) => store.apply(txn, origin).await,
        }
    }

    /// Every applied (or rejected) transaction, in the order applied.
    pub(crate) async fn applied(&self) -> Result<Vec<Applied>, StoreError> {
        let mut applied = match self {
            LedgerStore::Embedded(store) => store.applied()?,
            LedgerStore::DynamoDb(store) => store.applied().await?,
        };
        applied.sort_by_key(|a| a.applied_us);
        Ok(applied)
    }

    /// Every account's balance in cents.
    pub(crate) async fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        match self {
            LedgerStore::Embedded(store) => store.balances(),
            LedgerStore::DynamoDb(store) => store.balances().await,
        }
    }
}

/// The ledger's embedded store.
pub(crate) struct EmbeddedLedger {
    conn: Mutex<Connection>,
}

impl EmbeddedLedger {
    /// The ledger in the SQLite database `conn`.
    pub(crate) fn new(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS account (
                 account TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, balance INTEGER NOT NULL,
                 duplicates INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS txn (
                 txn TEXT PRIMARY KEY, account TEXT NOT NULL, seq INTEGER NOT NULL,
                 amount INTEGER NOT NULL, outcome TEXT NOT NULL,
                 shard_id TEXT NOT NULL DEFAULT '', sequence_number TEXT NOT NULL DEFAULT '',
                 applied_us INTEGER NOT NULL DEFAULT 0);",
        )?;
        shardline::sqlite::add_missing_columns(
            &conn,
            &[
                ("txn", "shard_id", "TEXT NOT NULL DEFAULT ''"),
                ("txn", "sequence_number", "TEXT NOT NULL DEFAULT ''"),
                ("txn", "applied_us", "INTEGER NOT NULL DEFAULT 0"),
            ],
        )?;
        Ok(EmbeddedLedger {
            conn: Mutex::new(conn),
        })
    }

    /// Applies `txn` atomically and says what it did.
    pub(crate) fn apply(&self, txn: &Txn, origin: &Origin) -> Result<Decision, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let known: Option<String> = tx
            .query_row(
                "SELECT outcome FROM txn WHERE txn = ?1",
                params![txn.txn],
                |r| r.get(0),
            )
            .optional()?;
        let account: Account = tx
            .query_row(
                "SELECT last_seq, balance FROM account WHERE account = ?1",
                params![txn.account],
                |r| {
                    Ok(Account {
                        last_seq: r.get::<_, i64>(0)? as u64,
                        balance: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        let decision = if known.is_some() {
            Decision::Duplicate
        } else {
            decide(account, txn)
        };
        let (outcome, next) = match decision {
            Decision::Apply(next) => ("applied", next),
            Decision::Reject(next) => ("rejected", next),
            Decision::Duplicate => {
                tx.execute(
                    "UPDATE account SET duplicates = duplicates + 1 WHERE account = ?1",
                    params![txn.account],
                )?;
                tx.commit()?;
                return Ok(decision);
            }
            Decision::Gap { .. } => return Ok(decision),
        };
        tx.execute(
            "INSERT INTO account (account, last_seq, balance) VALUES (?1, ?2, ?3)
             ON CONFLICT (account) DO UPDATE SET last_seq = excluded.last_seq, balance = excluded.balance",
            params![txn.account, next.last_seq as i64, next.balance],
        )?;
        tx.execute(
            "INSERT INTO txn (txn, account, seq, amount, outcome, shard_id, sequence_number, applied_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                txn.txn,
                txn.account,
                txn.seq as i64,
                txn.amount,
                outcome,
                origin.shard_id,
                origin.sequence_number,
                i64::try_from(now_us()).unwrap_or(i64::MAX)
            ],
        )?;
        tx.commit()?;
        Ok(decision)
    }

    /// Every applied (or rejected) transaction.
    pub(crate) fn applied(&self) -> Result<Vec<Applied>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(
            "SELECT txn, account, seq, amount, outcome, shard_id, sequence_number, applied_us FROM txn",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Applied {
                txn: r.get(0)?,
                account: r.get(1)?,
                seq: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                amount: r.get(3)?,
                outcome: r.get(4)?,
                shard_id: r.get(5)?,
                sequence_number: r.get(6)?,
                applied_us: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every account's balance in cents.
    pub(crate) fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare("SELECT account, balance FROM account ORDER BY account")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

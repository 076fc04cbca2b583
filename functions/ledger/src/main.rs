//! `ledger`: per-account balances from a Kinesis stream of transactions.
//!
//! Payload: `{"account": "A1", "seq": 1, "amount": 250, "txn": "t-1"}` (cents,
//! signed). Per account, transactions apply strictly in `seq` order: a `seq`
//! already applied is a duplicate (skipped, counted), a `seq` beyond the next one
//! is a gap (retryable: the earlier one has not arrived yet), a debit that would
//! overdraw is rejected (recorded, balance unchanged). A payload that is not a
//! ledger transaction (or whose account or txn id is over 1,024 bytes) is a
//! permanent error: Shardline quarantines it.

mod dynamodb;
mod rules;
mod store;

use std::sync::Arc;

use shardline::{App, Handler, HandlerError, Record};

use crate::rules::{Decision, Origin, Txn};
use crate::store::{LEDGER_TABLE, LedgerStore};

/// Longest account or txn id accepted, in bytes.
const MAX_ID_BYTES: usize = 1024;

/// An earlier transaction of the account has not been applied yet.
#[derive(Debug, thiserror::Error)]
#[error("gap in account {account}: seq {seq} arrived but the last applied is {last_seq}")]
struct Gap {
    account: String,
    seq: u64,
    last_seq: u64,
}

struct Ledger {
    store: LedgerStore,
}

impl Handler for Ledger {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let txn: Txn = record
            .json()
            .map_err(|e| HandlerError::permanent(describe(&e)))?;
        if txn.account.is_empty() || txn.seq == 0 || txn.txn.is_empty() {
            return Err(HandlerError::permanent(
                "a ledger transaction needs an account, a seq from 1 and a txn id",
            ));
        }
        // Both ids are DynamoDB keys (at most 2,048 bytes): a longer one could
        // never be written, and would hold the shard through every retry.
        for (field, value) in [("account", &txn.account), ("txn", &txn.txn)] {
            if value.len() > MAX_ID_BYTES {
                return Err(HandlerError::permanent(format!(
                    "{field} must be at most {MAX_ID_BYTES} bytes (got {})",
                    value.len()
                )));
            }
        }
        let origin = Origin {
            shard_id: record.shard.shard_id.to_string(),
            sequence_number: record.position.sequence.to_string(),
        };
        match self.store.apply(&txn, &origin).await? {
            Decision::Apply(_) => {}
            Decision::Reject(account) => tracing::info!(
                account = %txn.account, seq = txn.seq, txn = %txn.txn, amount = txn.amount,
                balance = account.balance, "debit rejected: it would overdraw the account"
            ),
            Decision::Duplicate => tracing::info!(
                account = %txn.account, seq = txn.seq, txn = %txn.txn, "duplicate transaction skipped"
            ),
            Decision::Gap { last_seq } => {
                return Err(HandlerError::retryable(Gap {
                    account: txn.account,
                    seq: txn.seq,
                    last_seq,
                }));
            }
        }
        Ok(())
    }
}

/// Why a payload is not a ledger transaction, without quoting it (serde's
/// messages quote values, and quarantine details are logged).
fn describe(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape (account, seq, amount, txn)",
    };
    format!(
        "not a ledger transaction: {kind} at line {} column {}",
        error.line(),
        error.column()
    )
}

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    App::build("ledger", |settings| async move {
        Ok(Ledger {
            store: LedgerStore::open(&settings).await?,
        })
    })
    .table(LEDGER_TABLE)
    // Accounts are partition keys: each account's transactions stay in
    // order while accounts overlap (SHARDLINE_CONCURRENCY overrides it).
    .concurrency(32)
    .command(
        "balances",
        "print every account's balance as one JSON object",
        balances,
    )
    .command(
        "txns",
        "print every applied transaction as JSON lines, in the order applied",
        txns,
    )
    .run()
    .await
}

async fn balances(ledger: Arc<Ledger>, _args: Vec<String>) -> Result<(), shardline::BoxError> {
    let balances = ledger.store.balances().await?;
    println!("{}", serde_json::to_string(&balances)?);
    Ok(())
}

async fn txns(ledger: Arc<Ledger>, _args: Vec<String>) -> Result<(), shardline::BoxError> {
    for applied in ledger.store.applied().await? {
        println!("{}", serde_json::to_string(&applied)?);
    }
    Ok(())
}

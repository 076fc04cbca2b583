//! The ledger in DynamoDB (`LEDGER_TABLE`): one item per account
//! (`pk = account#{id}`, `sk = account`: `last_seq`, `balance`) and one per
//! applied transaction (`pk = txn#{id}`, `sk = txn`).
//!
//! Applying a transaction reads the account, decides, and writes the account
//! and the txn id in one conditional TransactWriteItems: the account only moves
//! from the `last_seq` that was read, and a txn id is written once. A replay after
//! a crash, or a racing invocation, therefore applies nothing twice.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use shardline::aws::dynamodb::attr::{Attributes, get_n, get_s, item, n, s};
use shardline::aws::dynamodb::write::{Transacted, transact};
use shardline::aws::dynamodb::{DynamoError, read};
use shardline::tables::StoreError;

use crate::rules::{Account, Applied, Decision, Origin, Txn, decide, now_us};

/// How often a transaction is re-decided after losing a race on its account.
const MAX_RACES: u32 = 5;

/// The ledger's DynamoDB store.
pub(crate) struct DynamoLedger {
    client: Client,
    table: String,
}

fn account_key(account: &str) -> Attributes {
    item([
        ("pk", s(format!("account#{account}"))),
        ("sk", s("account")),
    ])
}

impl DynamoLedger {
    /// A ledger in `table` (hash key `pk`, range key `sk`, both strings).
    pub(crate) fn new(client: Client, table: String) -> Self {
        DynamoLedger { client, table }
    }

    async fn account(&self, account: &str) -> Result<Account, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(account_key(account)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::service("read an account", e))?;
        Ok(out.item().map_or_else(Account::default, |item| Account {
            last_seq: get_n(item, "last_seq").unwrap_or(0),
            balance: get_n(item, "balance").unwrap_or(0),
        }))
    }

    /// The account update (from `before` to `next`) and the txn record, as one
    /// transaction: the account only moves from what was read, a txn id is
    /// written once.
    fn writes(
        &self,
        txn: &Txn,
        origin: &Origin,
        before: Account,
        next: Account,
        outcome: &str,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let condition = if before.last_seq == 0 {
            "attribute_not_exists(last_seq)"
        } else {
            "last_seq = :prev"
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(account_key(&txn.account)))
            .update_expression("SET last_seq = :seq, balance = :balance")
            .condition_expression(condition)
            .expression_attribute_values(":seq", n(next.last_seq))
            .expression_attribute_values(":balance", n(next.balance));
        if before.last_seq != 0 {
            update = update.expression_attribute_values(":prev", n(before.last_seq));
        }
        let record = item([
            ("pk", s(format!("txn#{}", txn.txn))),
            ("sk", s("txn")),
            ("account", s(txn.account.clone())),
            ("seq", n(txn.seq)),
            ("amount", n(txn.amount)),
            ("outcome", s(outcome)),
            ("shard_id", s(origin.shard_id.clone())),
            ("sequence_number", s(origin.sequence_number.clone())),
            ("applied_us", n(now_us())),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| DynamoError::build("build a txn write", e))?;
        let update = update
            .build()
            .map_err(|e| DynamoError::build("build an account write", e))?;
        Ok(vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
        ])
    }

    /// Applies `txn` and says what it did.
    pub(crate) async fn apply(&self, txn: &Txn, origin: &Origin) -> Result<Decision, StoreError> {
        for _ in 0..MAX_RACES {
            let account = self.account(&txn.account).await?;
            let decision = decide(account, txn);
            let (next, outcome) = match decision {
                Decision::Apply(next) => (next, "applied"),
                Decision::Reject(next) => (next, "rejected"),
                Decision::Duplicate | Decision::Gap { .. } => return Ok(decision),
            };
            let writes = self.writes(txn, origin, account, next, outcome)?;
            let Transacted::Cancelled(reasons) =
                transact(&self.client, writes, "apply a transaction").await?
            else {
                return Ok(decision);
            };
            let failed = |i: usize| {
                reasons
                    .get(i)
                    .and_then(|r| r.code())
                    .is_some_and(|c| c == "ConditionalCheckFailed")
            };
            if failed(1) {
                // This txn id was applied before (by a crashed or racing invocation).
                return Ok(Decision::Duplicate);
            }
            if !failed(0) {
                let code = reasons.iter().find_map(|r| r.code()).unwrap_or("unknown");
                return Err(DynamoError::Cancelled {
                    operation: "apply a transaction",
                    code: code.to_owned(),
                    message: format!("txn {} of account {}", txn.txn, txn.account),
                }
                .into());
            }
            // The account moved since it was read: decide again.
        }
        Err(StoreError::Contended {
            what: format!("account {}", txn.account),
            tries: MAX_RACES,
        })
    }

    /// Every applied (or rejected) transaction (a full scan: for the `txns` command).
    pub(crate) async fn applied(&self) -> Result<Vec<Applied>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :txn")
            .expression_attribute_values(":txn", s("txn"))
            .consistent_read(true);
        let items = read::scan_all(scan, "scan transactions").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let text = |name: &str| get_s(item, name).unwrap_or_default().to_owned();
                Some(Applied {
                    txn: get_s(item, "pk")?.strip_prefix("txn#")?.to_owned(),
                    account: text("account"),
                    seq: get_n(item, "seq").unwrap_or(0),
                    amount: get_n(item, "amount").unwrap_or(0),
                    outcome: text("outcome"),
                    shard_id: text("shard_id"),
                    sequence_number: text("sequence_number"),
                    applied_us: get_n(item, "applied_us").unwrap_or(0),
                })
            })
            .collect())
    }

    /// Every account's balance in cents (a full scan: for the `balances` command).
    pub(crate) async fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :account")
            .expression_attribute_values(":account", s("account"))
            .consistent_read(true);
        let items = read::scan_all(scan, "scan balances").await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let account = get_s(item, "pk")?.strip_prefix("account#")?;
                Some((account.to_owned(), get_n(item, "balance").unwrap_or(0)))
            })
            .collect())
    }
}

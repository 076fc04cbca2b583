//! The ledger in DynamoDB (`LEDGER_TABLE`): one item per account
//! (`pk = account#{id}`, `sk = account`: `last_seq`, `balance`) and one per
//! applied transaction (`pk = txn#{id}`, `sk = txn`).
//!
//! Applying a transaction reads the account, decides, and writes the account
//! and the txn id in one conditional TransactWriteItems: the account only moves
//! from the `last_seq` that was read, and a txn id is written once. A replay after
//! a crash, or a racing invocation, therefore applies nothing twice.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use crate::rules::{Account, Decision, Txn, decide};
use crate::store::StoreError;

/// How often a transaction is re-decided after losing a race on its account.
const MAX_RACES: usize = 5;

/// The ledger's DynamoDB store.
pub struct DynamoLedger {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn number<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn dynamo(operation: &'static str, e: impl std::error::Error) -> StoreError {
    StoreError::DynamoDb {
        operation,
        message: DisplayErrorContext(e).to_string(),
    }
}

impl DynamoLedger {
    /// A ledger in `table` (hash key `pk`, range key `sk`, both strings).
    pub fn new(client: Client, table: String) -> Self {
        DynamoLedger { client, table }
    }

    async fn account(&self, account: &str) -> Result<Account, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("account#{account}"), "account")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo("read an account", e))?;
        Ok(out.item().map_or_else(Account::default, |item| Account {
            last_seq: number(item, "last_seq").unwrap_or(0),
            balance: number(item, "balance").unwrap_or(0),
        }))
    }

    /// Applies `txn` and says what it did.
    pub async fn apply(&self, txn: &Txn) -> Result<Decision, StoreError> {
        for _ in 0..MAX_RACES {
            let account = self.account(&txn.account).await?;
            let decision = decide(account, txn);
            let (next, outcome) = match decision {
                Decision::Apply(next) => (next, "applied"),
                Decision::Reject(next) => (next, "rejected"),
                Decision::Duplicate | Decision::Gap { .. } => return Ok(decision),
            };
            let condition = if account.last_seq == 0 {
                "attribute_not_exists(last_seq)"
            } else {
                "last_seq = :prev"
            };
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(format!("account#{}", txn.account), "account")))
                .update_expression("SET last_seq = :seq, balance = :balance")
                .condition_expression(condition)
                .expression_attribute_values(":seq", n(next.last_seq))
                .expression_attribute_values(":balance", n(next.balance));
            if account.last_seq != 0 {
                update = update.expression_attribute_values(":prev", n(account.last_seq));
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(HashMap::from([
                    ("pk".to_owned(), s(format!("txn#{}", txn.txn))),
                    ("sk".to_owned(), s("txn")),
                    ("account".to_owned(), s(txn.account.clone())),
                    ("seq".to_owned(), n(txn.seq)),
                    ("amount".to_owned(), n(txn.amount)),
                    ("outcome".to_owned(), s(outcome)),
                ])))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| dynamo("build a txn write", e))?;
            let update = update
                .build()
                .map_err(|e| dynamo("build an account write", e))?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
                .await;
            let Err(e) = result else {
                return Ok(decision);
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => return Err(dynamo("apply a transaction", e)),
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
                return Err(dynamo("apply a transaction", e));
            }
            // The account moved since it was read: decide again.
        }
        Err(StoreError::Contended {
            account: txn.account.clone(),
        })
    }

    /// Every account's balance in cents (a full scan: for the `balances` command).
    pub async fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut balances = BTreeMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :account")
                .expression_attribute_values(":account", s("account"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo("scan balances", e))?;
            for item in out.items() {
                let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if let Some(account) = pk.strip_prefix("account#") {
                    balances.insert(account.to_owned(), number(item, "balance").unwrap_or(0));
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(balances),
            }
        }
    }
}

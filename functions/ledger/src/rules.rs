//! The ledger's rules, with no I/O: what a transaction does to its account.

use serde::Deserialize;

/// A ledger transaction, the payload of one record:
/// `{"account": "A1", "seq": 1, "amount": 250, "txn": "t-1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Txn {
    /// The account.
    pub account: String,
    /// The account's transaction number: 1, 2, 3... with no gaps.
    pub seq: u64,
    /// Cents, signed: positive credits, negative debits.
    pub amount: i64,
    /// A unique id of the transaction.
    pub txn: String,
}

/// Where a transaction was applied from, and when: kept with the applied
/// transaction, for audits (the fault tests read it back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Applied {
    /// The txn id.
    pub txn: String,
    /// The account.
    pub account: String,
    /// The account's seq.
    pub seq: u64,
    /// Cents.
    pub amount: i64,
    /// `applied` or `rejected`.
    pub outcome: String,
    /// The source shard.
    pub shard_id: String,
    /// The source record's sequence number.
    pub sequence_number: String,
    /// When it was applied, microseconds since the epoch.
    pub applied_us: u64,
}

/// The source record of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The shard.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
}

/// Microseconds since the epoch, now.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An account as stored: the last applied `seq` and the balance in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Account {
    /// The last `seq` applied (or rejected); 0 before the first.
    pub last_seq: u64,
    /// Balance in cents, never negative.
    pub balance: i64,
}

/// What a transaction does to its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Applied: the account moves to this state.
    Apply(Account),
    /// A debit that would overdraw: recorded, `last_seq` moves on, balance unchanged.
    Reject(Account),
    /// `seq` is at or below the last one: already seen, nothing changes.
    Duplicate,
    /// `seq` is beyond `last_seq + 1`: an earlier transaction has not arrived yet.
    Gap {
        /// The account's last seq.
        last_seq: u64,
    },
}

/// Decides what `txn` does to `account`.
pub(crate) fn decide(account: Account, txn: &Txn) -> Decision {
    if txn.seq <= account.last_seq {
        return Decision::Duplicate;
    }
    if txn.seq > account.last_seq + 1 {
        return Decision::Gap {
            last_seq: account.last_seq,
        };
    }
    match account.balance.checked_add(txn.amount) {
        Some(balance) if balance >= 0 => Decision::Apply(Account {
            last_seq: txn.seq,
            balance,
        }),
        _ => Decision::Reject(Account {
            last_seq: txn.seq,
            balance: account.balance,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(seq: u64, amount: i64) -> Txn {
        Txn {
            account: "A1".into(),
            seq,
            amount,
            txn: format!("t-{seq}"),
        }
    }

    #[test]
    fn applies_in_order_and_refuses_gaps_duplicates_and_overdrafts() {
        let start = Account::default();
        let after1 = Account {
            last_seq: 1,
            balance: 250,
        };
        assert_eq!(decide(start, &txn(1, 250)), Decision::Apply(after1));
        assert_eq!(decide(after1, &txn(1, 250)), Decision::Duplicate);
        assert_eq!(decide(after1, &txn(3, 5)), Decision::Gap { last_seq: 1 });
        assert_eq!(
            decide(after1, &txn(2, -300)),
            Decision::Reject(Account {
                last_seq: 2,
                balance: 250
            })
        );
        assert_eq!(
            decide(after1, &txn(2, -250)),
            Decision::Apply(Account {
                last_seq: 2,
                balance: 0
            })
        );
        assert_eq!(
            decide(
                Account {
                    last_seq: 0,
                    balance: i64::MAX
                },
                &txn(1, 1)
            ),
            Decision::Reject(Account {
                last_seq: 1,
                balance: i64::MAX
            })
        );
    }
}

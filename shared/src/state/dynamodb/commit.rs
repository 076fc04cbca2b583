//! Commits: a unit's progress (a shard's, or a key's) with what the batch
//! settled of its records, in one transaction under the unit's fence.
//!
//! A unit's write is a group of transaction items: a conditional `Put` per
//! quarantine entry (`attribute_not_exists(pk)`: an entry already there is
//! kept as it is, its replay claim too), a conditional `Delete` per dedup claim
//! given back (`#owner = :owner`: a claim taken over since is left alone), and
//! the progress update, fenced on the version the batch read. A group lands
//! whole or not at all, so a commit that loses to a newer invocation writes
//! nothing, and a claim is given back exactly when its record's quarantine
//! entry lands. Groups are packed into TransactWriteItems of at most 100
//! items; a cancelled transaction is read item by item (every reason, not the
//! last one): a failed fence drops its group (superseded), an entry already
//! there or a claim not ours drops that item, a throttle or a conflict sends
//! the rest again after a pause, any other reason is an error.
//!
//! The dedup claims of the records a batch handled are marked done by
//! unconditional `Put`s packed into the same transactions as groups of their
//! own: a failed fence leaves them to the next request, since their records'
//! effects landed whoever commits.
//!
//! The parts of a large payload (past its first 300 KB) are written first, on
//! their own: parts without their entry are never read (the entry names how
//! many parts it has and readers match parts to their entry).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{CancellationReason, Delete, Put, TransactWriteItem, Update};

use super::items::PART_BYTES;
use crate::aws::dynamodb::write::{Fate, TRANSACT_ITEMS, Transacted, fate, rest, transact};
use crate::aws::dynamodb::{BACKOFF, DynamoError, MAX_TRIES};
use crate::retry::{Limits, Step, Stopped};
use crate::state::StateError;

/// Bytes one transaction carries at most (DynamoDB takes 4 MB; attribute
/// names and keys take the rest).
const TRANSACT_BYTES: usize = 3_600_000;
/// Bytes counted per item beside its payload (keys, attribute names, numbers).
const ITEM_OVERHEAD: usize = 1_024;

/// What an item of a group does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The unit's progress, fenced on its version.
    Fence,
    /// A quarantine entry, put unless one is there.
    Entry,
    /// A dedup claim given back, if still ours.
    Release,
    /// A dedup claim marked done: on its own, whatever the fences say.
    Done,
}

/// One unit's write: every item lands, or none.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// The unit's name (the shard, or the key), as superseded units are named.
    pub unit: String,
    items: Vec<(Role, TransactWriteItem)>,
    bytes: usize,
}

impl Group {
    /// A group for `unit` whose progress write is `fence`.
    pub(super) fn new(unit: impl Into<String>, fence: Update) -> Self {
        Group {
            unit: unit.into(),
            items: vec![(
                Role::Fence,
                TransactWriteItem::builder().update(fence).build(),
            )],
            bytes: ITEM_OVERHEAD,
        }
    }

    /// A dedup claim marked done, as a group of its own: it lands whatever
    /// the fences of the transaction it shares say (its record's effect
    /// landed), and fills the room the units' groups leave.
    pub(super) fn done(put: Put) -> Self {
        Group {
            unit: String::new(),
            items: vec![(Role::Done, TransactWriteItem::builder().put(put).build())],
            bytes: ITEM_OVERHEAD,
        }
    }

    /// Adds a quarantine entry carrying `bytes` of payload.
    pub(super) fn entry(&mut self, put: Put, bytes: usize) {
        self.bytes += bytes.min(PART_BYTES) + ITEM_OVERHEAD;
        let item = TransactWriteItem::builder().put(put).build();
        self.items.insert(self.items.len() - 1, (Role::Entry, item));
    }

    /// Adds a dedup claim given back.
    pub(super) fn release(&mut self, delete: Delete) {
        self.bytes += ITEM_OVERHEAD;
        let item = TransactWriteItem::builder().delete(delete).build();
        self.items
            .insert(self.items.len() - 1, (Role::Release, item));
    }

    /// Whether the group is only its progress write.
    #[cfg(test)]
    fn is_fence_only(&self) -> bool {
        self.items.len() == 1
    }

    fn check_size(&self) -> Result<(), StateError> {
        if self.items.len() > TRANSACT_ITEMS || self.bytes > TRANSACT_BYTES {
            return Err(StateError::TooLarge {
                unit: self.unit.clone(),
                detail: format!(
                    "{} items and about {} bytes; one transaction takes {TRANSACT_ITEMS} items and {TRANSACT_BYTES} bytes",
                    self.items.len(),
                    self.bytes
                ),
            });
        }
        Ok(())
    }
}

/// Writes `groups`, each whole or not at all; returns the units whose fence
/// failed (a newer invocation wrote them first: nothing of theirs is written).
///
/// # Errors
/// [`StateError::TooLarge`] for a group over one transaction; a
/// [`DynamoError`] when a request fails, an item is cancelled for a reason
/// no retry mends, or throttles and conflicts last [`MAX_TRIES`] tries.
pub(super) async fn write_groups(
    client: &Client,
    groups: Vec<Group>,
    operation: &'static str,
) -> Result<Vec<String>, StateError> {
    for group in &groups {
        group.check_size()?;
    }
    let mut superseded = Vec::new();
    for batch in pack(groups) {
        BACKOFF
            .drive(
                Limits::tries(MAX_TRIES),
                batch,
                |batch: Vec<Group>| {
                    let items = batch
                        .iter()
                        .flat_map(|g| g.items.iter().map(|(_, item)| item.clone()))
                        .collect();
                    async move { (batch, transact(client, items, operation).await) }
                },
                |(mut batch, outcome)| {
                    let Transacted::Cancelled(reasons) = outcome? else {
                        return Ok(Step::Done(()));
                    };
                    let passing =
                        read_cancellation(&mut batch, &reasons, &mut superseded, operation)?;
                    Ok(rest(batch, passing))
                },
                |batch, tries| DynamoError::Contended {
                    operation,
                    count: batch.iter().map(|g| g.items.len()).sum(),
                    tries,
                },
            )
            .await
            .map_err(Stopped::into_inner)?;
    }
    Ok(superseded)
}

/// Groups in transactions of at most 100 items and [`TRANSACT_BYTES`], in order.
fn pack(groups: Vec<Group>) -> Vec<Vec<Group>> {
    let mut batches: Vec<Vec<Group>> = Vec::new();
    let (mut items, mut bytes) = (0, 0);
    for group in groups {
        let fits =
            items + group.items.len() <= TRANSACT_ITEMS && bytes + group.bytes <= TRANSACT_BYTES;
        if batches.is_empty() || !fits {
            batches.push(Vec::new());
            (items, bytes) = (0, 0);
        }
        items += group.items.len();
        bytes += group.bytes;
        if let Some(batch) = batches.last_mut() {
            batch.push(group);
        }
    }
    batches
}

/// Reads every reason of a cancelled transaction over `batch` (one per item,
/// in order): a failed fence drops its group into `superseded`, a failed
/// entry or release drops that item. Returns whether one was throttled or
/// conflicting (the rest goes again after a pause).
fn read_cancellation(
    batch: &mut Vec<Group>,
    reasons: &[CancellationReason],
    superseded: &mut Vec<String>,
    operation: &'static str,
) -> Result<bool, DynamoError> {
    let mut passing = false;
    let mut at = 0;
    let mut kept = Vec::with_capacity(batch.len());
    for mut group in batch.drain(..) {
        let mut fenced_out = false;
        let mut items = Vec::with_capacity(group.items.len());
        for (role, item) in std::mem::take(&mut group.items) {
            let reason = reasons.get(at);
            at += 1;
            match (fate(reason, operation)?, role) {
                (Fate::ConditionFailed, Role::Fence) => fenced_out = true,
                (Fate::ConditionFailed, Role::Entry | Role::Release | Role::Done) => {}
                (Fate::Passing, _) => {
                    passing = true;
                    items.push((role, item));
                }
                (Fate::Innocent, _) => items.push((role, item)),
            }
        }
        if fenced_out {
            superseded.push(group.unit);
        } else if !items.is_empty() {
            group.items = items;
            kept.push(group);
        }
    }
    *batch = kept;
    Ok(passing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update() -> Update {
        Update::builder()
            .table_name("t")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
            .update_expression("SET version = :v")
            .build()
            .unwrap()
    }

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn put() -> Put {
        Put::builder()
            .table_name("t")
            .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("q".into()))
            .build()
            .unwrap()
    }

    #[test]
    fn every_reason_counts_not_the_last_one() {
        // A throttled entry before a fence that passed: sent again, not an error.
        let mut group = Group::new("shard", update());
        group.entry(put(), 10);
        let mut batch = vec![group];
        let mut superseded = Vec::new();
        let passing = read_cancellation(
            &mut batch,
            &[reason("ThrottlingError"), reason("None")],
            &mut superseded,
            "test",
        )
        .unwrap();
        assert!(passing && superseded.is_empty());
        assert_eq!(batch[0].items.len(), 2, "both go again");

        // An entry already there is dropped; a failed fence drops its group.
        let mut a = Group::new("a", update());
        a.entry(put(), 10);
        let b = Group::new("b", update());
        let mut batch = vec![a, b];
        let passing = read_cancellation(
            &mut batch,
            &[
                reason("ConditionalCheckFailed"),
                reason("None"),
                reason("ConditionalCheckFailed"),
            ],
            &mut superseded,
            "test",
        )
        .unwrap();
        assert!(!passing);
        assert_eq!(superseded, ["b"]);
        assert_eq!(batch.len(), 1);
        assert!(batch[0].is_fence_only(), "a's entry was there already");

        let mut batch = vec![Group::new("c", update())];
        let error = read_cancellation(
            &mut batch,
            &[reason("ValidationError")],
            &mut superseded,
            "test",
        );
        assert!(error.is_err(), "a reason no retry mends");
    }

    #[test]
    fn done_claims_outlive_a_failed_fence() {
        let mut batch = vec![Group::new("shard", update()), Group::done(put())];
        let mut superseded = Vec::new();
        let passing = read_cancellation(
            &mut batch,
            &[reason("ConditionalCheckFailed"), reason("None")],
            &mut superseded,
            "test",
        )
        .unwrap();
        assert!(!passing);
        assert_eq!(superseded, ["shard"]);
        assert_eq!(batch.len(), 1, "the done claim goes again alone");
        assert_eq!(batch[0].items[0].0, Role::Done);
    }

    #[test]
    fn groups_pack_into_transactions_of_100_items() {
        let groups: Vec<Group> = (0..3)
            .map(|i| {
                let mut group = Group::new(format!("k{i}"), update());
                for _ in 0..40 {
                    group.entry(put(), 10);
                }
                group
            })
            .collect();
        let batches = pack(groups);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1], "41 + 41 items, then 41");
        let mut huge = Group::new("huge", update());
        for _ in 0..100 {
            huge.entry(put(), 10);
        }
        assert!(matches!(
            huge.check_size(),
            Err(StateError::TooLarge { .. })
        ));
    }
}

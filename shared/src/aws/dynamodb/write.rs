//! Writes: one all-or-nothing transaction ([`transact`]), conditional writes
//! batched 100 a transaction with the failed conditions set aside
//! ([`transact_conditional`]), and unconditional puts batched 25 a request
//! ([`put_all`]). Each retries through [`crate::retry::Backoff::drive`] with
//! [`super::BACKOFF`], at most [`super::MAX_TRIES`] tries; it only says what
//! a try came to.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, PutRequest, TransactWriteItem, WriteRequest};

use super::{Attributes, BACKOFF, DynamoError, MAX_TRIES};
use crate::retry::{Limits, Step, Stopped};

/// Items per TransactWriteItems request.
pub const TRANSACT_ITEMS: usize = 100;
/// Items per BatchWriteItem request.
pub const BATCH_WRITE_ITEMS: usize = 25;

/// What became of a transaction.
#[derive(Debug)]
pub enum Transacted {
    /// Every item was written.
    Written,
    /// Nothing was written; one reason per item, in order (`ConditionalCheckFailed`
    /// for an item whose condition failed, `None` for the innocent ones).
    Cancelled(Vec<CancellationReason>),
}

/// Writes `items` in one TransactWriteItems: all or nothing.
///
/// # Errors
/// [`DynamoError::Service`] for any failure but a cancellation.
pub async fn transact(
    client: &Client,
    items: Vec<TransactWriteItem>,
    operation: &'static str,
) -> Result<Transacted, DynamoError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(Transacted::Written),
        Err(error) => match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Ok(
                Transacted::Cancelled(cancelled.cancellation_reasons().to_vec()),
            ),
            _ => Err(DynamoError::service(operation, error)),
        },
    }
}

/// How a cancelled transaction's item fared (each item has its reason, in
/// order; every one counts, not only the last).
pub(crate) enum Fate {
    /// Its condition failed: set it aside.
    ConditionFailed,
    /// It failed only with the others: send it again.
    Innocent,
    /// A conflicting transaction or a throttle: send it again after a pause.
    Passing,
}

/// The fate of an item cancelled for `reason`.
///
/// # Errors
/// [`DynamoError::Cancelled`] for a reason no retry mends.
pub(crate) fn fate(
    reason: Option<&CancellationReason>,
    operation: &'static str,
) -> Result<Fate, DynamoError> {
    match reason.and_then(|r| r.code()) {
        None | Some("None") => Ok(Fate::Innocent),
        Some("ConditionalCheckFailed") => Ok(Fate::ConditionFailed),
        Some(
            "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded",
        ) => Ok(Fate::Passing),
        Some(code) => Err(DynamoError::Cancelled {
            operation,
            code: code.to_owned(),
            message: reason.and_then(|r| r.message()).unwrap_or("").to_owned(),
        }),
    }
}

/// Writes one conditional item per entry with TransactWriteItems, 100 a
/// request. An entry whose condition fails is set aside, with the item DynamoDB
/// returned for it (when built with `ALL_OLD`); the others of a cancelled
/// transaction go again, after a pause when one met a conflict or a throttle.
/// Returns the entries whose condition failed.
///
/// # Errors
/// [`DynamoError`] when a request fails, an item is cancelled for another
/// reason, or conflicts last [`MAX_TRIES`] tries.
pub async fn transact_conditional<'t, T>(
    client: &Client,
    entries: &'t [T],
    build: impl Fn(&T) -> Result<TransactWriteItem, DynamoError>,
    operation: &'static str,
) -> Result<Vec<(&'t T, Option<Attributes>)>, DynamoError> {
    let mut failed = Vec::new();
    for chunk in entries.chunks(TRANSACT_ITEMS) {
        let pending: Vec<&T> = chunk.iter().collect();
        BACKOFF
            .drive(
                Limits::tries(MAX_TRIES),
                pending,
                |pending: Vec<&'t T>| {
                    let items = pending
                        .iter()
                        .map(|entry| build(entry))
                        .collect::<Result<Vec<_>, _>>();
                    async move {
                        let outcome = match items {
                            Ok(items) => transact(client, items, operation).await,
                            Err(error) => Err(error),
                        };
                        (pending, outcome)
                    }
                },
                |(pending, outcome)| {
                    let Transacted::Cancelled(reasons) = outcome? else {
                        return Ok(Step::Done(()));
                    };
                    let mut again = Vec::new();
                    let mut passing = false;
                    for (index, entry) in pending.into_iter().enumerate() {
                        let reason = reasons.get(index);
                        match fate(reason, operation)? {
                            Fate::ConditionFailed => {
                                failed.push((entry, reason.and_then(|r| r.item()).cloned()));
                            }
                            Fate::Innocent => again.push(entry),
                            Fate::Passing => {
                                passing = true;
                                again.push(entry);
                            }
                        }
                    }
                    Ok(rest(again, passing))
                },
                |pending, tries| DynamoError::Contended {
                    operation,
                    count: pending.len(),
                    tries,
                },
            )
            .await
            .map_err(Stopped::into_inner)?;
    }
    Ok(failed)
}

/// What is left of a cancelled transaction: nothing (done), or the rest, to
/// send again after a pause when one of it was throttled or conflicting, at
/// once otherwise.
pub(crate) fn rest<T>(left: Vec<T>, passing: bool) -> Step<(), Vec<T>> {
    match (left.is_empty(), passing) {
        (true, _) => Step::Done(()),
        (false, true) => Step::Again(left),
        (false, false) => Step::AgainNow(left),
    }
}

/// Puts `items` into `table` with BatchWriteItem, 25 a request, sending
/// unprocessed items again after a pause.
///
/// # Errors
/// [`DynamoError`] when a request fails or items stay unprocessed.
pub async fn put_all(
    client: &Client,
    table: &str,
    items: Vec<Attributes>,
    operation: &'static str,
) -> Result<(), DynamoError> {
    for chunk in items.chunks(BATCH_WRITE_ITEMS) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| DynamoError::build(operation, e))
            })
            .collect::<Result<_, _>>()?;
        BACKOFF
            .drive(
                Limits::tries(MAX_TRIES),
                requests,
                |requests| {
                    client
                        .batch_write_item()
                        .request_items(table, requests)
                        .send()
                },
                |out| {
                    let left = out
                        .map_err(|e| DynamoError::service(operation, e))?
                        .unprocessed_items()
                        .and_then(|u| u.get(table))
                        .cloned()
                        .unwrap_or_default();
                    Ok(if left.is_empty() {
                        Step::Done(())
                    } else {
                        Step::Again(left)
                    })
                },
                |left, tries| DynamoError::Unprocessed {
                    operation,
                    count: left.len(),
                    tries,
                },
            )
            .await
            .map_err(Stopped::into_inner)?;
    }
    Ok(())
}

//! Reads: keys batched 100 a BatchGetItem ([`get_all`]), and every page of a
//! query or a scan through the SDK's paginators ([`query_all`], [`scan_all`]).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::{Attributes, BACKOFF, DynamoError, MAX_TRIES};
use crate::retry::{Limits, Step, Stopped};

/// Keys per BatchGetItem request.
pub const BATCH_GET_KEYS: usize = 100;

/// Reads the items of `keys` from `table` (consistent reads), 100 a request,
/// asking again for unprocessed keys after a pause. Missing items are left out.
///
/// # Errors
/// [`DynamoError`] when a request fails or keys stay unprocessed.
pub async fn get_all(
    client: &Client,
    table: &str,
    keys: Vec<Attributes>,
    operation: &'static str,
) -> Result<Vec<Attributes>, DynamoError> {
    let mut found = Vec::new();
    for chunk in keys.chunks(BATCH_GET_KEYS) {
        let request = KeysAndAttributes::builder()
            .consistent_read(true)
            .set_keys(Some(chunk.to_vec()))
            .build()
            .map_err(|e| DynamoError::build(operation, e))?;
        BACKOFF
            .drive(
                Limits::tries(MAX_TRIES),
                request,
                |keys| client.batch_get_item().request_items(table, keys).send(),
                |out| {
                    let out = out.map_err(|e| DynamoError::service(operation, e))?;
                    found.extend(
                        out.responses()
                            .and_then(|r| r.get(table))
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                    let left = out
                        .unprocessed_keys()
                        .and_then(|u| u.get(table))
                        .filter(|k| !k.keys().is_empty())
                        .cloned();
                    Ok(left.map_or(Step::Done(()), Step::Again))
                },
                |left, tries| DynamoError::Unprocessed {
                    operation,
                    count: left.keys().len(),
                    tries,
                },
            )
            .await
            .map_err(Stopped::into_inner)?;
    }
    Ok(found)
}

/// Every item a query returns, page after page.
///
/// # Errors
/// [`DynamoError::Service`] when a page fails.
pub async fn query_all(
    query: QueryFluentBuilder,
    operation: &'static str,
) -> Result<Vec<Attributes>, DynamoError> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| DynamoError::service(operation, e))
}

/// Every item a scan returns, page after page.
///
/// # Errors
/// [`DynamoError::Service`] when a page fails.
pub async fn scan_all(
    scan: ScanFluentBuilder,
    operation: &'static str,
) -> Result<Vec<Attributes>, DynamoError> {
    scan.into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| DynamoError::service(operation, e))
}

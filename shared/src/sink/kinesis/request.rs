//! One PutRecords request and what came of each entry. A request refused as a
//! whole for what one of its records is (a validation error) is split in two
//! and sent again, half by half, until the culprit stands alone: it is then
//! rejected, and the others are delivered.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use futures_util::future::BoxFuture;

/// How a failure code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// Passing (throttling, an internal failure): send again.
    Retry,
    /// The destination refuses writes (not found, access denied, KMS): fail fast.
    Refuse,
    /// The request itself is invalid (one of its records): isolate the record.
    Invalid,
}

pub(super) fn classify(code: &str) -> Failure {
    match code {
        "ValidationException" | "InvalidArgumentException" => Failure::Invalid,
        "ResourceNotFoundException"
        | "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSAccessDeniedException"
        | "KMSNotFoundException"
        | "KMSOptInRequired" => Failure::Refuse,
        _ => Failure::Retry,
    }
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum EntryResult {
    /// Written, to this shard (if the answer said).
    Delivered(Option<String>),
    Failed {
        code: String,
        message: String,
    },
    /// Refused for what the record is: it stood alone in a request refused as invalid.
    Rejected(String),
}

/// Sends `entries` (each with the caller's index) to `stream`; returns each
/// entry's result and the number of requests made.
pub(super) fn put(
    client: Client,
    stream: String,
    entries: Vec<(usize, PutRecordsRequestEntry)>,
) -> BoxFuture<'static, (Vec<(usize, EntryResult)>, u64)> {
    Box::pin(async move {
        let (indexes, records): (Vec<usize>, Vec<PutRecordsRequestEntry>) =
            entries.iter().cloned().unzip();
        let request = client.put_records().set_records(Some(records));
        let request = if stream.starts_with("arn:") {
            request.stream_arn(&stream)
        } else {
            request.stream_name(&stream)
        };
        let error = match request.send().await {
            Ok(out) => {
                let results = out.records().iter().map(|entry| match entry.error_code() {
                    None => EntryResult::Delivered(entry.shard_id().map(str::to_owned)),
                    Some(code) => EntryResult::Failed {
                        code: code.to_owned(),
                        message: entry.error_message().unwrap_or_default().to_owned(),
                    },
                });
                return (indexes.into_iter().zip(results).collect(), 1);
            }
            Err(e) => e,
        };
        let code = error.code().unwrap_or("RequestFailed").to_owned();
        let message = DisplayErrorContext(&error).to_string();
        if classify(&code) != Failure::Invalid {
            let failed = EntryResult::Failed { code, message };
            return (
                indexes.into_iter().map(|i| (i, failed.clone())).collect(),
                1,
            );
        }
        if entries.len() == 1 {
            let rejected = EntryResult::Rejected(format!("{code}: {message}"));
            return (vec![(indexes[0], rejected)], 1);
        }
        let mut second = entries;
        let first: Vec<_> = second.drain(..second.len() / 2).collect();
        let (mut results, first_requests) = put(client.clone(), stream.clone(), first).await;
        let (rest, second_requests) = put(client, stream, second).await;
        results.extend(rest);
        (results, 1 + first_requests + second_requests)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(
            classify("ProvisionedThroughputExceededException"),
            Failure::Retry
        );
        assert_eq!(classify("InternalFailure"), Failure::Retry);
        assert_eq!(classify("KMSThrottlingException"), Failure::Retry);
        assert_eq!(classify("ResourceNotFoundException"), Failure::Refuse);
        assert_eq!(classify("KMSDisabledException"), Failure::Refuse);
        assert_eq!(classify("ValidationException"), Failure::Invalid);
    }
}

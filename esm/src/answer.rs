//! What the function's answer asks of the mapping.

use serde_json::Value;

use crate::record::StreamRecord;

/// What an answer asks of the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record is done.
    Done,
    /// The records before this index are done; retry from it.
    RetryFrom(usize),
    /// The whole batch failed, for this reason.
    Failed(String),
}

/// Reads a response body for `batch`.
///
/// From the developer guide (services-kinesis-batchfailurereporting): without
/// `ReportBatchItemFailures` the body is ignored and the batch is a success; an
/// empty or null `batchItemFailures` (or an empty or null response) is a
/// complete success; an empty or null `itemIdentifier`, or one under a bad key
/// name, fails the whole batch; otherwise Lambda retries from the lowest
/// sequence number listed. An identifier that is not a record of the batch
/// fails the whole batch too (Lambda has no record to restart from).
pub fn verdict(body: &[u8], batch: &[StreamRecord], report_failures: bool) -> Verdict {
    if !report_failures {
        return Verdict::Done;
    }
    let Ok(response) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Done;
    };
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::Done,
        Some(Value::Array(items)) if items.is_empty() => return Verdict::Done,
        Some(Value::Array(items)) => items,
        Some(other) => return Verdict::Failed(format!("batchItemFailures is not a list: {other}")),
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let identifier = match item.get("itemIdentifier") {
            Some(Value::String(id)) if !id.is_empty() => id,
            _ => {
                return Verdict::Failed(format!(
                    "a batch item failure without an itemIdentifier: {item}"
                ));
            }
        };
        let Some(index) = batch.iter().position(|r| r.sequence.as_str() == identifier) else {
            return Verdict::Failed(format!(
                "itemIdentifier {identifier} is not a record of the batch"
            ));
        };
        lowest = Some(lowest.map_or(index, |l| l.min(index)));
    }
    lowest.map_or(Verdict::Done, Verdict::RetryFrom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::records;

    #[test]
    fn answers_read_as_the_developer_guide_says() {
        let b = records(4);
        for done in [
            &b""[..],
            b"null",
            br#"{}"#,
            br#"{"batchItemFailures":null}"#,
            br#"{"batchItemFailures":[]}"#,
        ] {
            assert_eq!(
                verdict(done, &b, true),
                Verdict::Done,
                "{}",
                String::from_utf8_lossy(done)
            );
        }
        let two = br#"{"batchItemFailures":[{"itemIdentifier":"3"},{"itemIdentifier":"2"}]}"#;
        assert_eq!(
            verdict(two, &b, true),
            Verdict::RetryFrom(1),
            "the lowest one"
        );
        for failed in [
            &br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#[..],
            br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            br#"{"batchItemFailures":[{"id":"2"}]}"#,
            br#"{"batchItemFailures":[{"itemIdentifier":"99"}]}"#,
        ] {
            assert!(
                matches!(verdict(failed, &b, true), Verdict::Failed(_)),
                "{}",
                String::from_utf8_lossy(failed)
            );
        }
        assert_eq!(
            verdict(two, &b, false),
            Verdict::Done,
            "ignored without ReportBatchItemFailures"
        );
    }
}

//! What the mapping discards (past the retry limit, past the record age), and
//! the record it writes for it to the on-failure destination: metadata only,
//! as Lambda writes it for a Kinesis source (developer guide:
//! kinesis-on-failure-destination, "Example invocation record").

use std::time::{Duration, SystemTime};

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde_json::{Value, json};

use crate::record::StreamRecord;

/// Records the mapping gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct Discard {
    /// The records, in order.
    pub records: Vec<StreamRecord>,
    /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
    pub condition: &'static str,
    /// Invocations made with them (`approximateInvokeCount`).
    pub invokes: u32,
    /// Why the last one failed.
    pub reason: String,
}

impl Discard {
    /// The on-failure destination's record of this discard, or `None` when it
    /// holds no record.
    pub fn on_failure_record(
        &self,
        function_arn: &str,
        stream_arn: &str,
        shard_id: &str,
        request_id: &str,
        now: SystemTime,
    ) -> Option<Value> {
        let (first, last) = (self.records.first()?, self.records.last()?);
        let time = |seconds: f64| {
            rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0)))
        };
        Some(json!({
            "requestContext": {
                "requestId": request_id,
                "functionArn": function_arn,
                "condition": self.condition,
                "approximateInvokeCount": self.invokes,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": rfc3339_millis(now),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first.sequence.to_string(),
                "endSequenceNumber": last.sequence.to_string(),
                "approximateArrivalOfFirstRecord": time(first.arrival),
                "approximateArrivalOfLastRecord": time(last.arrival),
                "batchSize": self.records.len(),
                "streamArn": stream_arn,
            },
        }))
    }
}

/// `2019-11-14T00:38:06.021Z`, as the on-failure records print times.
fn rfc3339_millis(time: SystemTime) -> String {
    let millis = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // Whole milliseconds, so the fraction always has three digits.
    let at = DateTime::from_millis(i64::try_from(millis).unwrap_or(i64::MAX));
    let text = at.fmt(Format::DateTime).unwrap_or_default();
    let base = text.strip_suffix('Z').unwrap_or(&text);
    let (seconds, fraction) = base.split_once('.').unwrap_or((base, ""));
    format!("{seconds}.{fraction:0<3}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_lambda_prints_them() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_573_691_886_021);
        assert_eq!(rfc3339_millis(at), "2019-11-14T00:38:06.021Z");
        assert_eq!(
            rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let half = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(rfc3339_millis(half), "1970-01-01T00:00:01.500Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_on_failure_record_names_the_batch() {
        let records = crate::record::tests::records(3);
        let discard = Discard {
            records,
            condition: "RetryAttemptsExhausted",
            invokes: 3,
            reason: "function error".into(),
        };
        let line = discard
            .on_failure_record("fn", "arn", "shardId-1", "r1", SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(line["KinesisBatchInfo"]["startSequenceNumber"], "1");
        assert_eq!(line["KinesisBatchInfo"]["endSequenceNumber"], "3");
        assert_eq!(line["KinesisBatchInfo"]["batchSize"], 3);
        assert_eq!(line["requestContext"]["approximateInvokeCount"], 3);
    }
}

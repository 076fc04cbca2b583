//! A Kinesis stream as a destination: PutRecords within the service limits,
//! retrying only the entries that failed.
//!
//! - Requests hold at most 500 records and 5 MiB (partition keys counted).
//! - Per-entry `ProvisionedThroughputExceededException` and `InternalFailure`
//!   (the SDK does not retry those) are sent again with exponential backoff and
//!   full jitter, while the invocation has time.
//! - Not found, access denied, KMS and validation errors fail fast with a
//!   [`SinkError::Refused`] naming the stream.
//! - [`DeliveryOrder::Ordered`]: each request carries at most one record per
//!   partition key, the next only after the previous succeeded.
//!   [`DeliveryOrder::Throughput`]: full requests, several in flight.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::task::JoinSet;

use super::{DeliveryOrder, OutRecord, SendOutcome, Sink, SinkError};
use crate::engine::Deadline;

/// Records per PutRecords request.
pub const MAX_REQUEST_RECORDS: usize = 500;
/// Bytes per PutRecords request, partition keys included.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// The default largest record: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// The largest record a stream raised with UpdateMaxRecordSize takes: 10 MiB.
pub const MAX_RECORD_BYTES_LIMIT: usize = 10 * 1024 * 1024;
/// Time a request is given at least; a retry is not started with less left.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(250);

/// A Kinesis stream destination.
#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: Client,
    stream: String,
    order: DeliveryOrder,
    max_record_bytes: usize,
    max_in_flight: usize,
    backoff_base: Duration,
    backoff_max: Duration,
}

/// How a failure code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Retry,
    Refuse,
}

fn classify(code: &str) -> Failure {
    match code {
        "ResourceNotFoundException"
        | "AccessDeniedException"
        | "ValidationException"
        | "InvalidArgumentException"
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

/// What one PutRecords request came back with.
enum RequestResult {
    /// Per entry: `None` delivered, `Some(code, message)` failed.
    Entries(Vec<Option<(String, String)>>),
    /// The whole request failed.
    Failed { code: String, message: String },
}

impl KinesisSink {
    /// A destination writing to `stream` (a name, or an ARN for another account),
    /// ordered, 1 MiB records, 4 requests in flight, backoff from 50 ms to 2 s.
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        KinesisSink {
            client,
            stream: stream.into(),
            order: DeliveryOrder::Ordered,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_in_flight: 4,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }

    /// Sets the delivery order.
    pub fn order(mut self, order: DeliveryOrder) -> Self {
        self.order = order;
        self
    }

    /// Sets the largest record the stream takes (1 MiB by default; up to 10 MiB
    /// for a stream raised with UpdateMaxRecordSize).
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes.clamp(1, MAX_RECORD_BYTES_LIMIT);
        self
    }

    /// Sets how many requests may be in flight at once.
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Sets the backoff between retry rounds: first delay and longest.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// The delay before retry round `attempt` (1, 2, ...): exponential, capped,
    /// with full jitter.
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_max);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Splits `ready` into requests within the count and byte limits.
    fn pack(&self, records: &[OutRecord], ready: &[usize]) -> Vec<Vec<usize>> {
        let mut requests: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for &index in ready {
            let size = records[index].size();
            if !current.is_empty()
                && (current.len() == MAX_REQUEST_RECORDS || bytes + size > MAX_REQUEST_BYTES)
            {
                requests.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(index);
        }
        if !current.is_empty() {
            requests.push(current);
        }
        requests
    }

    async fn put(
        client: Client,
        stream: String,
        entries: Vec<PutRecordsRequestEntry>,
    ) -> RequestResult {
        let request = client.put_records().set_records(Some(entries));
        let request = if stream.starts_with("arn:") {
            request.stream_arn(stream)
        } else {
            request.stream_name(stream)
        };
        match request.send().await {
            Ok(out) => RequestResult::Entries(
                out.records()
                    .iter()
                    .map(|entry| {
                        entry.error_code().map(|code| {
                            (
                                code.to_owned(),
                                entry.error_message().unwrap_or_default().to_owned(),
                            )
                        })
                    })
                    .collect(),
            ),
            Err(e) => RequestResult::Failed {
                code: e.code().unwrap_or("RequestFailed").to_owned(),
                message: DisplayErrorContext(&e).to_string(),
            },
        }
    }
}

#[async_trait]
impl Sink for KinesisSink {
    fn destination(&self) -> &str {
        &self.stream
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    async fn send(&self, records: &[OutRecord], deadline: Deadline) -> SendOutcome {
        let mut outcome = SendOutcome {
            delivered: vec![false; records.len()],
            ..SendOutcome::default()
        };
        // Ordered: one queue per partition key, only heads are sent.
        // Throughput: one queue, all of it is sent.
        let mut queues: Vec<VecDeque<usize>> = Vec::new();
        let mut queue_of: HashMap<&str, usize> = HashMap::new();
        for (index, record) in records.iter().enumerate() {
            if record.size() > self.max_record_bytes {
                outcome.error = Some(SinkError::Refused {
                    destination: self.stream.clone(),
                    code: "RecordTooLarge".into(),
                    message: format!(
                        "record {} is {} bytes, over this stream's {} bytes",
                        record.source,
                        record.size(),
                        self.max_record_bytes
                    ),
                });
                continue;
            }
            let key = match self.order {
                DeliveryOrder::Ordered => record.partition_key.as_str(),
                DeliveryOrder::Throughput => "",
            };
            let queue = *queue_of.entry(key).or_insert_with(|| {
                queues.push(VecDeque::new());
                queues.len() - 1
            });
            queues[queue].push_back(index);
        }
        let mut tried = vec![false; records.len()];
        let mut failing_rounds = 0u32;
        let mut last_error = String::from("none");
        loop {
            let ready: Vec<usize> = match self.order {
                DeliveryOrder::Ordered => {
                    queues.iter().filter_map(|q| q.front().copied()).collect()
                }
                DeliveryOrder::Throughput => queues.iter().flatten().copied().collect(),
            };
            if ready.is_empty() {
                break;
            }
            let delay = if failing_rounds > 0 {
                self.delay(failing_rounds)
            } else {
                Duration::ZERO
            };
            if deadline
                .remaining()
                .is_some_and(|left| left < delay + MIN_REQUEST_TIME)
            {
                outcome.error.get_or_insert(SinkError::Incomplete {
                    destination: self.stream.clone(),
                    undelivered: outcome.delivered.iter().filter(|d| !**d).count(),
                    last_error: last_error.clone(),
                });
                break;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }

            let requests = self.pack(records, &ready);
            let mut failed_any = false;
            let mut refused = None;
            for wave in requests.chunks(self.max_in_flight) {
                let mut in_flight = JoinSet::new();
                for (slot, request) in wave.iter().enumerate() {
                    let entries: Vec<PutRecordsRequestEntry> = request
                        .iter()
                        .filter_map(|&index| {
                            let record = &records[index];
                            if std::mem::replace(&mut tried[index], true) {
                                outcome.retried_entries += 1;
                            }
                            PutRecordsRequestEntry::builder()
                                .data(Blob::new(record.data.to_vec()))
                                .partition_key(&record.partition_key)
                                .set_explicit_hash_key(record.explicit_hash_key.clone())
                                .build()
                                .ok()
                        })
                        .collect();
                    outcome.requests += 1;
                    let (client, stream) = (self.client.clone(), self.stream.clone());
                    in_flight
                        .spawn(async move { (slot, Self::put(client, stream, entries).await) });
                }
                while let Some(joined) = in_flight.join_next().await {
                    let Ok((slot, result)) = joined else {
                        failed_any = true;
                        last_error = "a request task failed".into();
                        continue;
                    };
                    let request = &wave[slot];
                    match result {
                        RequestResult::Entries(entries) => {
                            for (&index, entry) in request.iter().zip(entries) {
                                match entry {
                                    None => outcome.delivered[index] = true,
                                    Some((code, message)) => {
                                        failed_any = true;
                                        if classify(&code) == Failure::Refuse {
                                            refused.get_or_insert((code.clone(), message.clone()));
                                        }
                                        last_error = format!("{code}: {message}");
                                    }
                                }
                            }
                        }
                        RequestResult::Failed { code, message } => {
                            failed_any = true;
                            if classify(&code) == Failure::Refuse {
                                refused.get_or_insert((code.clone(), message.clone()));
                            }
                            last_error = format!("{code}: {message}");
                        }
                    }
                }
            }
            for queue in &mut queues {
                match self.order {
                    DeliveryOrder::Ordered => {
                        if queue.front().is_some_and(|&i| outcome.delivered[i]) {
                            queue.pop_front();
                        }
                    }
                    DeliveryOrder::Throughput => queue.retain(|&i| !outcome.delivered[i]),
                }
            }
            if let Some((code, message)) = refused {
                tracing::error!(destination = %self.stream, code = %code, "destination refuses writes");
                outcome.error = Some(SinkError::Refused {
                    destination: self.stream.clone(),
                    code,
                    message,
                });
                break;
            }
            if failed_any {
                failing_rounds += 1;
                tracing::debug!(destination = %self.stream, round = failing_rounds, error = %last_error, "retrying failed entries");
            } else {
                failing_rounds = 0;
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Position;
    use bytes::Bytes;

    fn sink() -> KinesisSink {
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .build();
        KinesisSink::new(Client::from_conf(config), "s")
    }

    fn record(i: u64, bytes: usize) -> OutRecord {
        OutRecord {
            source: Position::new(i.to_string().parse().unwrap(), 0),
            partition_key: "k".into(),
            explicit_hash_key: None,
            data: Bytes::from(vec![0u8; bytes]),
        }
    }

    #[test]
    fn requests_respect_count_and_byte_limits() {
        let sink = sink();
        let small: Vec<OutRecord> = (0..1_200).map(|i| record(i, 10)).collect();
        let all: Vec<usize> = (0..small.len()).collect();
        let sizes: Vec<usize> = sink.pack(&small, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500, 200]);
        // Twelve records of 1 MiB minus the key: five fit in 5 MiB.
        let big: Vec<OutRecord> = (0..12).map(|i| record(i, 1024 * 1024 - 1)).collect();
        let all: Vec<usize> = (0..big.len()).collect();
        let sizes: Vec<usize> = sink.pack(&big, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 5, 2]);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let sink = sink().backoff(Duration::from_millis(50), Duration::from_millis(400));
        for attempt in 1..20 {
            assert!(sink.delay(attempt) <= Duration::from_millis(400));
        }
        assert_eq!(
            classify("ProvisionedThroughputExceededException"),
            Failure::Retry
        );
        assert_eq!(classify("InternalFailure"), Failure::Retry);
        assert_eq!(classify("KMSThrottlingException"), Failure::Retry);
        assert_eq!(classify("ResourceNotFoundException"), Failure::Refuse);
        assert_eq!(classify("KMSDisabledException"), Failure::Refuse);
    }
}

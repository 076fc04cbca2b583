//! A Kinesis stream as a destination: PutRecords within the service limits,
//! retrying only the entries that failed.
//!
//! - Requests hold at most 500 records and 5 MiB (partition keys counted);
//!   records Kinesis would refuse (see [`validate`]) are rejected up front.
//! - Per-entry `ProvisionedThroughputExceededException` and `InternalFailure`
//!   (the SDK does not retry those) are sent again with exponential backoff and
//!   full jitter, while the invocation has time.
//! - Not found, access denied and KMS errors fail fast with a
//!   [`SinkError::Refused`] naming the stream. A request refused as invalid is
//!   split until the record at fault stands alone (`request.rs`): that record is
//!   rejected, the others are delivered.
//! - Time: a wave of requests is started only when the time left exceeds the
//!   slowest wave seen so far and half again, and requests still out at the
//!   deadline are given up (their records may have been written; they count as
//!   undelivered, and as `FanoutGivenUp`).
//! - Order (`plan.rs`): [`DeliveryOrder::Ordered`] sends at most one record per
//!   partition key per request, the next only after the previous succeeded;
//!   [`DeliveryOrder::Throughput`] sends full requests from parallel queues, a
//!   key in one queue.
//! - Aggregation ([`KinesisSink::aggregate`], `aggregate.rs`): the records bound
//!   for one destination shard (ListShards, cached) go as KPL aggregates, each
//!   put with an explicit hash key in that shard's range. An aggregate is
//!   delivered or not as a whole: the outcome marks each of its user records as
//!   it went, so a retry sends (and aggregates again) only what was not
//!   delivered. An aggregate refused as invalid is sent again as its user
//!   records, so only the one at fault is rejected. An aggregate that lands on
//!   another shard than the map said (the destination was resharded) drops the
//!   cached map.

mod aggregate;
mod plan;
mod request;
mod shards;

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::record::Position;
    use crate::sink::OutRecord;

    /// Record `i` of the sink's unit tests: key `key`, `bytes` bytes of `x`.
    pub(super) fn record(i: u64, key: &str, bytes: usize) -> OutRecord {
        OutRecord {
            source: Position::new(i.to_string().parse().unwrap(), 0),
            partition_key: key.into(),
            explicit_hash_key: None,
            data: Bytes::from(vec![b'x'; bytes]),
        }
    }
}

use std::time::Duration;

use crate::time::Instant;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use self::plan::Plan;
use self::request::{EntryResult, Failure, classify};
use self::shards::ShardCache;
use super::{DeliveryOrder, OutRecord, SendOutcome, Sink, SinkError, validate};
use crate::retry::{Backoff, Limits, Step, Stopped};
use crate::time::Deadline;

/// Records per PutRecords request.
pub const MAX_REQUEST_RECORDS: usize = 500;
/// Bytes per PutRecords request, partition keys included.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// The default largest record: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// The largest record a stream raised with UpdateMaxRecordSize takes: 10 MiB.
pub const MAX_RECORD_BYTES_LIMIT: usize = 10 * 1024 * 1024;
/// Time a request is given at least; none is started with less left.
const MIN_REQUEST_TIME: Duration = Duration::from_millis(250);

/// The time a wave of requests needs left to be started: the slowest wave seen
/// and half again, since a request given up on at the deadline may have been
/// written, and its records would then be written twice by the retry.
fn time_to_start(slowest: Duration) -> Duration {
    slowest + slowest / 2
}
/// How long the destination's shard map is used before it is listed again.
pub const DEFAULT_SHARD_MAP_TTL: Duration = Duration::from_secs(60);

/// A Kinesis stream destination.
#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: Client,
    stream: String,
    order: DeliveryOrder,
    max_record_bytes: usize,
    max_in_flight: usize,
    backoff: Backoff,
    aggregate: bool,
    shards: ShardCache,
}

/// Per record of one delivery: sent before, and the shard it landed on; and
/// the records of requests given up on at the deadline (they may have been
/// written: a retry may write them twice).
struct Tally {
    tried: Vec<bool>,
    landed: Vec<Option<String>>,
    given_up: Vec<usize>,
}

/// What one round of requests came back with.
#[derive(Default)]
struct Round {
    failed_any: bool,
    refused: Option<(String, String)>,
    out_of_time: bool,
    last_error: Option<String>,
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
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            aggregate: false,
            shards: ShardCache::new(DEFAULT_SHARD_MAP_TTL),
        }
    }

    /// Packs the records bound for one destination shard into KPL aggregates
    /// (off by default): far fewer Kinesis records against the destination's
    /// 1,000 records per second per shard. Consumers must deaggregate (the KCL
    /// and Shardline do). Needs `kinesis:ListShards` on the destination; when
    /// the shards cannot be listed, records are sent as they are.
    ///
    /// ```no_run
    /// # async fn f(client: aws_sdk_kinesis::Client) {
    /// use shardline::sink::kinesis::KinesisSink;
    /// let sink = KinesisSink::new(client, "orders-copy").aggregate(true);
    /// # }
    /// ```
    pub fn aggregate(mut self, on: bool) -> Self {
        self.aggregate = on;
        self
    }

    /// Sets how long the destination's shard map is used before ListShards is
    /// called again (60 s by default; it is also dropped as soon as an
    /// aggregate lands on a shard the map did not name).
    pub fn shard_map_ttl(mut self, ttl: Duration) -> Self {
        self.shards.set_ttl(ttl);
        self
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

    /// Sets how many requests may be in flight at once (the request queues of throughput order).
    pub fn max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests.max(1);
        self
    }

    /// Sets the backoff between retry rounds: first delay and longest.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(base, max);
        self
    }

    /// Sends one round's `requests`, `max_in_flight` at a time, within `deadline`.
    async fn round(
        &self,
        records: &[OutRecord],
        requests: Vec<Vec<usize>>,
        deadline: Deadline,
        slowest: &mut Duration,
        tally: &mut Tally,
        outcome: &mut SendOutcome,
    ) -> Round {
        let mut round = Round::default();
        for wave in requests.chunks(self.max_in_flight) {
            let left = deadline.remaining();
            if left.is_some_and(|left| left < time_to_start(*slowest)) {
                round.out_of_time = true;
                break;
            }
            let mut in_flight = JoinSet::new();
            for request in wave {
                let entries: Vec<(usize, PutRecordsRequestEntry)> = request
                    .iter()
                    .filter_map(|&index| {
                        if std::mem::replace(&mut tally.tried[index], true) {
                            outcome.retried_entries += 1;
                        }
                        let record = &records[index];
                        PutRecordsRequestEntry::builder()
                            .data(Blob::new(record.data.to_vec()))
                            .partition_key(&record.partition_key)
                            .set_explicit_hash_key(record.explicit_hash_key.clone())
                            .build()
                            .ok()
                            .map(|entry| (index, entry))
                    })
                    .collect();
                in_flight.spawn(
                    request::put(self.client.clone(), self.stream.clone(), entries)
                        .in_current_span(),
                );
            }
            let started = Instant::now();
            let joined = async {
                let mut results = Vec::new();
                while let Some(joined) = in_flight.join_next().await {
                    results.push(joined);
                }
                results
            };
            let results = match left {
                Some(left) => match tokio::time::timeout(left, joined).await {
                    Ok(results) => results,
                    Err(_) => {
                        // Dropping the set aborts what is still out.
                        tally.given_up.extend(wave.iter().flatten());
                        round.out_of_time = true;
                        round.last_error = Some("requests still out at the deadline".into());
                        break;
                    }
                },
                None => joined.await,
            };
            *slowest = (*slowest).max(started.elapsed());
            for joined in results {
                let Ok((entries, requests)) = joined else {
                    round.failed_any = true;
                    round.last_error = Some("a request task failed".into());
                    continue;
                };
                outcome.requests += requests;
                self.record_entry_results(entries, &mut round, tally, outcome);
            }
        }
        round
    }

    fn record_entry_results(
        &self,
        entries: Vec<(usize, EntryResult)>,
        round: &mut Round,
        tally: &mut Tally,
        outcome: &mut SendOutcome,
    ) {
        for (index, result) in entries {
            match result {
                EntryResult::Delivered(shard) => {
                    outcome.delivered[index] = true;
                    tally.landed[index] = shard;
                }
                EntryResult::Rejected(reason) => outcome.rejected.push((
                    index,
                    format!("destination {} refuses record: {reason}", self.stream),
                )),
                EntryResult::Failed { code, message } => {
                    round.failed_any = true;
                    if classify(&code) == Failure::Refuse {
                        round.refused.get_or_insert((code.clone(), message.clone()));
                    }
                    round.last_error = Some(format!("{code}: {message}"));
                }
            }
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
        let mut todo = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            match validate(record, self.max_record_bytes) {
                Ok(()) => todo.push(index),
                Err(reason) => outcome.rejected.push((index, reason)),
            }
        }
        if self.aggregate && !todo.is_empty() {
            self.send_aggregated(records, todo, &mut outcome, deadline)
                .await;
        } else {
            let plan = Plan::new(records, todo, self.order, self.max_in_flight);
            let tally = self.deliver(records, plan, &mut outcome, deadline).await;
            outcome.note_given_up(tally.given_up.len());
        }
        outcome
    }
}

/// One delivery, carried from round to round by the retry driver.
struct Delivery {
    plan: Plan,
    tally: Tally,
    outcome: SendOutcome,
    /// The slowest round of requests so far (at least [`MIN_REQUEST_TIME`]):
    /// no request is started with less time left.
    slowest: Duration,
    last_error: String,
}

impl KinesisSink {
    /// Delivers what `plan` holds of `records`, round after round, into
    /// `outcome`; returns the shard each record landed on, and the records of
    /// requests given up on at the deadline. The retry driver
    /// ([`Backoff::drive`]) owns the pauses and the deadline; a round only
    /// says what it came to ([`KinesisSink::after_round`]).
    async fn deliver(
        &self,
        records: &[OutRecord],
        plan: Plan,
        outcome: &mut SendOutcome,
        deadline: Deadline,
    ) -> Tally {
        let tally = Tally {
            tried: vec![false; records.len()],
            landed: vec![None; records.len()],
            given_up: Vec::new(),
        };
        if plan.is_empty() {
            return tally;
        }
        let delivery = Box::new(Delivery {
            plan,
            tally,
            outcome: std::mem::take(outcome),
            slowest: MIN_REQUEST_TIME,
            last_error: String::from("none"),
        });
        let limits = Limits {
            tries: u32::MAX,
            deadline,
            margin: MIN_REQUEST_TIME,
        };
        let ended = self
            .backoff
            .drive(
                limits,
                delivery,
                |mut delivery: Box<Delivery>| async move {
                    let requests = delivery.plan.round(records);
                    let round = self
                        .round(
                            records,
                            requests,
                            deadline,
                            &mut delivery.slowest,
                            &mut delivery.tally,
                            &mut delivery.outcome,
                        )
                        .await;
                    (delivery, round)
                },
                |(delivery, round)| self.after_round(records, delivery, round),
                |mut delivery, _| {
                    self.incomplete(records, &mut delivery);
                    delivery
                },
            )
            .await;
        let delivery = match ended {
            Ok(delivery) | Err(Stopped::GaveUp(delivery) | Stopped::Exhausted(delivery)) => {
                delivery
            }
        };
        *outcome = delivery.outcome;
        delivery.tally
    }

    /// What a round came to: done, the rest to send after a pause (something
    /// failed) or at once (the next records of keys whose last went), or an
    /// end (refused, or out of time) with its error in the outcome.
    fn after_round(
        &self,
        records: &[OutRecord],
        mut delivery: Box<Delivery>,
        round: Round,
    ) -> Result<Step<Box<Delivery>, Box<Delivery>>, Box<Delivery>> {
        let outcome = &delivery.outcome;
        let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
        delivery
            .plan
            .drop_finished(|i| outcome.delivered[i] || rejected.contains(&i));
        if let Some(error) = round.last_error {
            delivery.last_error = error;
        }
        if let Some((code, message)) = round.refused {
            tracing::error!(destination = %self.stream, code = %code, "destination refuses writes");
            delivery.outcome.error = Some(SinkError::Refused {
                destination: self.stream.clone(),
                code,
                message,
            });
            return Err(delivery);
        }
        if delivery.plan.is_empty() {
            return Ok(Step::Done(delivery));
        }
        if round.out_of_time {
            self.incomplete(records, &mut delivery);
            return Err(delivery);
        }
        if round.failed_any {
            tracing::debug!(destination = %self.stream, error = %delivery.last_error, "retrying failed entries");
            Ok(Step::Again(delivery))
        } else {
            Ok(Step::AgainNow(delivery))
        }
    }

    /// Ends `delivery` short of time: what was never tried, and the error.
    fn incomplete(&self, records: &[OutRecord], delivery: &mut Delivery) {
        let outcome = &mut delivery.outcome;
        let rejected: Vec<usize> = outcome.rejected.iter().map(|(i, _)| *i).collect();
        outcome.not_tried = (0..records.len())
            .filter(|&i| {
                !delivery.tally.tried[i] && !outcome.delivered[i] && !rejected.contains(&i)
            })
            .collect();
        outcome.error = Some(SinkError::Incomplete {
            destination: self.stream.clone(),
            undelivered: outcome.delivered.iter().filter(|d| !**d).count(),
            last_error: delivery.last_error.clone(),
        });
    }
}

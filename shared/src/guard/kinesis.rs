//! [`ShardDirectory`] over Kinesis: ListShards for lineage and expiry,
//! GetShardIterator + GetRecords for a parent's tail.
//!
//! A tail read makes at most 10 GetRecords calls and hands back the next shard
//! iterator ([`Tail::resume`]), so the guard reads on past the empty pages
//! Kinesis answers before a shard's end instead of reading them again.

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;

use super::{ListedShard, ShardDirectory, Tail, TailCursor, TailEnd, TailRecord};
use crate::decode::kpl::{Deaggregated, deaggregate};
use crate::error::BoxError;
use crate::record::{Position, SequenceNumber, ShardRef};

/// How many GetRecords calls a tail check may make before calling the shard open.
const MAX_READS: usize = 10;

/// Reads shard lists and shard tails from Kinesis.
#[derive(Debug, Clone)]
pub struct KinesisShards {
    client: Client,
}

impl KinesisShards {
    /// A directory using `client`.
    pub fn new(client: Client) -> Self {
        KinesisShards { client }
    }
}

/// The stream name of a stream ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`),
/// or the text itself if it is not an ARN.
pub fn stream_name(stream_arn: &str) -> &str {
    stream_arn
        .rsplit_once(":stream/")
        .map_or(stream_arn, |(_, name)| name)
}

fn service_error<E: std::error::Error + Send + Sync + 'static>(what: String, e: E) -> BoxError {
    format!("{what}: {}", DisplayErrorContext(e)).into()
}

#[async_trait]
impl ShardDirectory for KinesisShards {
    async fn list_shards(&self, stream_arn: &str) -> Result<Vec<ListedShard>, BoxError> {
        let name = stream_name(stream_arn);
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(name),
            };
            let page = request
                .send()
                .await
                .map_err(|e| service_error(format!("ListShards on stream {name}"), e))?;
            for shard in page.shards() {
                let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                shards.push(ListedShard {
                    shard_id: shard.shard_id().to_owned(),
                    parents,
                });
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(shards),
            }
        }
    }

    async fn read_after(
        &self,
        shard: &ShardRef,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let iterator = self.first_iterator(shard, after).await?;
        self.read_pages(shard, iterator, after, max_records).await
    }

    async fn read_on(
        &self,
        shard: &ShardRef,
        cursor: &TailCursor,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        self.read_pages(shard, Some(cursor.0.clone()), after, max_records)
            .await
    }
}

impl KinesisShards {
    /// Reads pages from `iterator` (at most [`MAX_READS`]) until about
    /// `max_records` records after `after`, the shard's end or its tip.
    async fn read_pages(
        &self,
        shard: &ShardRef,
        mut iterator: Option<String>,
        after: Option<&Position>,
        max_records: usize,
    ) -> Result<Tail, BoxError> {
        let mut records = Vec::new();
        for _ in 0..MAX_READS {
            let Some(current) = iterator.take() else {
                return Ok(Tail {
                    records,
                    end: TailEnd::Ended { children: vec![] },
                    resume: None,
                });
            };
            let page = self.get_records(shard, current, max_records).await?;
            records.extend(tail_records(&page, after)?);
            let next = page.next_shard_iterator().map(str::to_owned);
            let end = match &next {
                None => Some(TailEnd::Ended {
                    children: page
                        .child_shards()
                        .iter()
                        .map(|c| c.shard_id().to_owned())
                        .collect(),
                }),
                Some(_) if page.records().is_empty() && page.millis_behind_latest() == Some(0) => {
                    Some(TailEnd::Open)
                }
                Some(_) if records.len() >= max_records => Some(TailEnd::More),
                Some(_) => None,
            };
            if let Some(end) = end {
                return Ok(Tail {
                    records,
                    end,
                    resume: next.map(TailCursor),
                });
            }
            iterator = next;
        }
        Ok(Tail {
            records,
            end: TailEnd::More,
            resume: iterator.map(TailCursor),
        })
    }

    /// One GetRecords call of at most `max_records` records (1..=10000).
    async fn get_records(
        &self,
        shard: &ShardRef,
        iterator: String,
        max_records: usize,
    ) -> Result<GetRecordsOutput, BoxError> {
        let limit = i32::try_from(max_records.clamp(1, 10_000)).unwrap_or(10_000);
        self.client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| {
                let name = stream_name(&shard.stream_arn);
                service_error(format!("GetRecords on {name}/{}", shard.shard_id), e)
            })
    }
}

/// The records of `page` after `after` (a KPL aggregate holding `after` when
/// user records follow it inside the aggregate).
///
/// # Errors
/// A record whose sequence number is not a number.
fn tail_records(
    page: &GetRecordsOutput,
    after: Option<&Position>,
) -> Result<Vec<TailRecord>, BoxError> {
    let mut records = Vec::new();
    for record in page.records() {
        let sequence: SequenceNumber = record.sequence_number().parse()?;
        let users = user_records(record.data().as_ref());
        if let Some(position) = after
            && !(sequence > position.sequence
                || (sequence == position.sequence && users > position.subsequence + 1))
        {
            continue;
        }
        records.push(TailRecord {
            sequence,
            last_subsequence: users.saturating_sub(1),
            // `&str` in the aws-sdk-kinesis releases the lock file has, `Option<&str>` in
            // newer ones (1.130): both read.
            partition_key: Option::<&str>::from(record.partition_key())
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(records)
}

impl KinesisShards {
    /// An iterator at `after` (AT, not AFTER: the position may sit inside a KPL
    /// aggregate), or at the trim horizon without one, or when the record at
    /// `after` has been trimmed (what lies at or before it is skipped by the reader).
    async fn first_iterator(
        &self,
        shard: &ShardRef,
        after: Option<&Position>,
    ) -> Result<Option<String>, BoxError> {
        let name = stream_name(&shard.stream_arn);
        let request = |kind: ShardIteratorType| {
            let request = self
                .client
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(&*shard.shard_id)
                .shard_iterator_type(kind.clone());
            match (kind, after) {
                (ShardIteratorType::AtSequenceNumber, Some(position)) => {
                    request.starting_sequence_number(position.sequence.as_str())
                }
                _ => request,
            }
        };
        let first = match after {
            Some(_) => request(ShardIteratorType::AtSequenceNumber).send().await,
            None => request(ShardIteratorType::TrimHorizon).send().await,
        };
        let first = match first {
            Ok(out) => Ok(out),
            Err(e) if after.is_some() => {
                tracing::debug!(shard = %shard.shard_id, error = %DisplayErrorContext(&e), "checkpoint not readable; reading from the trim horizon");
                request(ShardIteratorType::TrimHorizon).send().await
            }
            Err(e) => Err(e),
        };
        Ok(first
            .map_err(|e| {
                service_error(format!("GetShardIterator on {name}/{}", shard.shard_id), e)
            })?
            .shard_iterator)
    }
}

/// How many user records a Kinesis record holds: those of a KPL aggregate, else 1.
fn user_records(data: &[u8]) -> u64 {
    match deaggregate(&Bytes::copy_from_slice(data)) {
        Deaggregated::Aggregate(records) => records.len() as u64,
        Deaggregated::Plain | Deaggregated::Fallback(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::kpl::{UserRecord, aggregate};

    #[test]
    fn stream_names_come_from_arns() {
        assert_eq!(
            stream_name("arn:aws:kinesis:us-east-1:1:stream/orders"),
            "orders"
        );
        assert_eq!(stream_name("orders"), "orders");
    }

    #[test]
    fn aggregates_count_their_user_records() {
        let users: Vec<UserRecord> = (0..3)
            .map(|i| UserRecord {
                partition_key: format!("k{i}"),
                explicit_hash_key: None,
                data: Bytes::from(vec![i as u8]),
            })
            .collect();
        assert_eq!(user_records(&aggregate(&users)), 3);
        assert_eq!(user_records(b"plain"), 1);
    }
}

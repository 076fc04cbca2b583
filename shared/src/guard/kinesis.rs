//! [`ShardDirectory`] over Kinesis: ListShards for lineage and expiry,
//! GetShardIterator + GetRecords for a parent's tail.

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;

use super::{ListedShard, ShardDirectory, ShardTail};
use crate::decode::kpl::{Deaggregated, deaggregate};
use crate::handler::BoxError;
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

    async fn tail_after(
        &self,
        shard: &ShardRef,
        after: Option<&Position>,
    ) -> Result<ShardTail, BoxError> {
        let name = stream_name(&shard.stream_arn);
        let iterator_at = |kind: ShardIteratorType| {
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
        // AT, not AFTER: the checkpoint may sit inside a KPL aggregate. If the
        // checkpoint's record has been trimmed, read from the trim horizon
        // instead: what lies at or before the checkpoint is skipped below.
        let first = match after {
            Some(_) => {
                iterator_at(ShardIteratorType::AtSequenceNumber)
                    .send()
                    .await
            }
            None => iterator_at(ShardIteratorType::TrimHorizon).send().await,
        };
        let first = match first {
            Ok(out) => Ok(out),
            Err(e) if after.is_some() => {
                tracing::debug!(shard = %shard.shard_id, error = %DisplayErrorContext(&e), "checkpoint not readable; reading from the trim horizon");
                iterator_at(ShardIteratorType::TrimHorizon).send().await
            }
            Err(e) => Err(e),
        };
        let mut iterator = first
            .map_err(|e| {
                service_error(format!("GetShardIterator on {name}/{}", shard.shard_id), e)
            })?
            .shard_iterator;
        for _ in 0..MAX_READS {
            let Some(current) = iterator.take() else {
                return Ok(ShardTail::Ended { children: vec![] });
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit(100)
                .send()
                .await
                .map_err(|e| {
                    service_error(format!("GetRecords on {name}/{}", shard.shard_id), e)
                })?;
            for record in page.records() {
                let sequence: SequenceNumber = record.sequence_number().parse()?;
                if let Some(position) = after
                    && !is_after(position, &sequence, record.data().as_ref())
                {
                    continue;
                }
                return Ok(ShardTail::Pending { first: sequence });
            }
            match page.next_shard_iterator() {
                None => {
                    let children = page
                        .child_shards()
                        .iter()
                        .map(|c| c.shard_id().to_owned())
                        .collect();
                    return Ok(ShardTail::Ended { children });
                }
                Some(next) => {
                    if page.records().is_empty() && page.millis_behind_latest() == Some(0) {
                        return Ok(ShardTail::Open);
                    }
                    iterator = Some(next.to_owned());
                }
            }
        }
        Ok(ShardTail::Open)
    }
}

/// Whether the Kinesis record (`sequence`, `data`) holds anything after `position`:
/// a later sequence number, or user records of the same aggregate past its subsequence.
fn is_after(position: &Position, sequence: &SequenceNumber, data: &[u8]) -> bool {
    if *sequence != position.sequence {
        return *sequence > position.sequence;
    }
    match deaggregate(&Bytes::copy_from_slice(data)) {
        Deaggregated::Aggregate(records) => (records.len() as u64) > position.subsequence + 1,
        Deaggregated::Plain | Deaggregated::Fallback(_) => false,
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
    fn a_checkpoint_inside_an_aggregate_leaves_the_rest_pending() {
        let users: Vec<UserRecord> = (0..3)
            .map(|i| UserRecord {
                partition_key: format!("k{i}"),
                explicit_hash_key: None,
                data: Bytes::from(vec![i as u8]),
            })
            .collect();
        let data = aggregate(&users);
        let seq: SequenceNumber = "100".parse().unwrap();
        assert!(is_after(&Position::new(seq.clone(), 1), &seq, &data));
        assert!(!is_after(&Position::new(seq.clone(), 2), &seq, &data));
        assert!(!is_after(&Position::new(seq.clone(), 0), &seq, b"plain"));
        assert!(is_after(
            &Position::new(seq, 0),
            &"101".parse().unwrap(),
            b"plain"
        ));
    }
}

//! The destination's open shards and their hash key ranges (ListShards),
//! cached, so KPL aggregates can be grouped by the shard their records would
//! reach.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;

/// One open shard: its id and hash key range (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OpenShard {
    pub id: Arc<str>,
    pub start: u128,
    pub end: u128,
}

/// The open shards of a stream, by starting hash key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ShardMap {
    shards: Vec<OpenShard>,
}

impl ShardMap {
    pub(super) fn new(mut shards: Vec<OpenShard>) -> Self {
        shards.sort_by_key(|s| s.start);
        ShardMap { shards }
    }

    /// The index of the open shard whose range holds `hash_key`, if any.
    pub(super) fn find(&self, hash_key: u128) -> Option<usize> {
        let at = self.shards.partition_point(|s| s.start <= hash_key);
        let index = at.checked_sub(1)?;
        (self.shards[index].end >= hash_key).then_some(index)
    }

    pub(super) fn shard(&self, index: usize) -> &OpenShard {
        &self.shards[index]
    }

    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }
}

/// A map and when it was listed.
type Cached = Option<(Instant, Arc<ShardMap>)>;

/// A [`ShardMap`] read at most once per `ttl`, dropped when a record lands
/// where the map did not say.
#[derive(Debug, Clone)]
pub(super) struct ShardCache {
    ttl: Duration,
    cached: Arc<Mutex<Cached>>,
}

impl ShardCache {
    pub(super) fn new(ttl: Duration) -> Self {
        ShardCache {
            ttl,
            cached: Arc::default(),
        }
    }

    pub(super) fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// The map of `stream`, from the cache or ListShards.
    pub(super) async fn get(&self, client: &Client, stream: &str) -> Result<Arc<ShardMap>, String> {
        let cached = self.lock().clone();
        if let Some((at, map)) = cached
            && at.elapsed() < self.ttl
        {
            return Ok(map);
        }
        let map = Arc::new(list(client, stream).await?);
        *self.lock() = Some((Instant::now(), map.clone()));
        Ok(map)
    }

    /// Forgets the map: the next [`get`](Self::get) lists the shards again.
    pub(super) fn invalidate(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The open shards of `stream` (a name or an ARN), every page of ListShards.
async fn list(client: &Client, stream: &str) -> Result<ShardMap, String> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // ListShards takes either the stream or a NextToken, never both.
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None if stream.starts_with("arn:") => client.list_shards().stream_arn(stream),
            None => client.list_shards().stream_name(stream),
        };
        let output = request
            .send()
            .await
            .map_err(|e| format!("ListShards on {stream}: {}", DisplayErrorContext(e)))?;
        for shard in output.shards() {
            let closed = shard
                .sequence_number_range()
                .is_some_and(|range| range.ending_sequence_number().is_some());
            let Some(range) = shard.hash_key_range() else {
                continue;
            };
            let parse = |key: &str| {
                key.parse::<u128>().map_err(|_| {
                    format!(
                        "ListShards on {stream}: shard {} has hash key {key:?}",
                        shard.shard_id()
                    )
                })
            };
            if !closed {
                shards.push(OpenShard {
                    id: Arc::from(shard.shard_id()),
                    start: parse(range.starting_hash_key())?,
                    end: parse(range.ending_hash_key())?,
                });
            }
        }
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    if shards.is_empty() {
        return Err(format!("ListShards on {stream}: no open shard"));
    }
    Ok(ShardMap::new(shards))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, start: u128, end: u128) -> OpenShard {
        OpenShard {
            id: Arc::from(id),
            start,
            end,
        }
    }

    #[test]
    fn a_hash_key_finds_the_shard_whose_range_holds_it() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![shard("b", half + 1, u128::MAX), shard("a", 0, half)]);
        assert_eq!(map.find(0), Some(0));
        assert_eq!(map.find(half), Some(0));
        assert_eq!(map.find(half + 1), Some(1));
        assert_eq!(map.find(u128::MAX), Some(1));
        assert_eq!(&*map.shard(1).id, "b");
        let gap = ShardMap::new(vec![shard("a", 10, 20)]);
        assert_eq!(gap.find(5), None);
        assert_eq!(gap.find(21), None);
        assert_eq!(ShardMap::default().find(1), None);
    }
}

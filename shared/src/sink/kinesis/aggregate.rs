//! Aggregated delivery (`FANOUT_AGGREGATE=on`): the user records bound for one
//! destination shard packed into KPL aggregates, each put with an explicit
//! hash key inside that shard's range, so it lands where its records would
//! have landed one by one.
//!
//! - A record's shard: the open shard whose hash key range holds its explicit
//!   hash key, or the MD5 of its partition key (as Kinesis routes it).
//! - An aggregate is put with its first user record's partition key and that
//!   record's hash key as its explicit hash key (as the KPL does).
//! - A shard's entries share one planning key (the shard id): they go one
//!   after the other, so each key keeps its order, whatever the delivery order.
//! - A record alone in its aggregate, a record with no shard in the map, and a
//!   record too large to aggregate go as they are (in their shard's line).

use std::sync::Arc;

use bytes::Bytes;
use kpl::{Aggregate, Aggregator, UserRecord};

use super::plan::Plan;
use super::shards::ShardMap;
use crate::sink::{OutRecord, SendOutcome, SinkError};
use crate::time::Deadline;

/// What to put, and which user records each entry carries.
#[derive(Debug, Default)]
pub(super) struct Packed {
    /// Aggregates, and records sent as they are.
    pub entries: Vec<OutRecord>,
    /// Per entry: the key that orders it (the shard id for a shard's entries).
    pub keys: Vec<String>,
    /// Per entry: the indexes of the user records it carries.
    pub members: Vec<Vec<usize>>,
    /// Per entry: the shard an aggregate must land on (`None` for a plain record).
    pub expected: Vec<Option<Arc<str>>>,
}

impl Packed {
    fn plain(&mut self, records: &[OutRecord], index: usize, key: String) {
        self.entries.push(records[index].clone());
        self.keys.push(key);
        self.members.push(vec![index]);
        self.expected.push(None);
    }

    fn aggregate(
        &mut self,
        records: &[OutRecord],
        made: Aggregate,
        members: Vec<usize>,
        shard: &Arc<str>,
    ) {
        if let [only] = members[..] {
            // One record: no use wrapping it (the KPL does not either).
            self.plain(records, only, shard.to_string());
            return;
        }
        let first = &records[members[0]];
        let hash_key = hash_key(first).map(|h| h.to_string());
        self.entries.push(OutRecord {
            source: first.source.clone(),
            partition_key: made.partition_key,
            explicit_hash_key: hash_key,
            data: made.data,
        });
        self.keys.push(shard.to_string());
        self.members.push(members);
        self.expected.push(Some(shard.clone()));
    }

    /// Whether entry `entry` is an aggregate.
    pub(super) fn is_aggregate(&self, entry: usize) -> bool {
        self.expected[entry].is_some()
    }

    /// Aggregates made, and the user records they carry.
    pub(super) fn counts(&self) -> (u64, u64) {
        let aggregates = (0..self.entries.len()).filter(|&e| self.is_aggregate(e));
        aggregates.fold((0, 0), |(a, r), e| {
            (a + 1, r + self.members[e].len() as u64)
        })
    }
}

impl super::KinesisSink {
    /// Delivers `records[i]` for each `i` of `todo` as aggregates, into
    /// `outcome` (one flag per user record); see the module docs.
    pub(super) async fn send_aggregated(
        &self,
        records: &[OutRecord],
        todo: Vec<usize>,
        outcome: &mut SendOutcome,
        deadline: Deadline,
    ) {
        let map = match self.shards.get(&self.client, &self.stream).await {
            Ok(map) => map,
            Err(error) => {
                tracing::warn!(destination = %self.stream, %error, "cannot list the destination's shards: records go unaggregated");
                let plan = Plan::new(records, todo, self.order, self.max_in_flight);
                let tally = self.deliver(records, plan, outcome, deadline).await;
                outcome.note_given_up(tally.given_up.len());
                return;
            }
        };
        let packed = pack(records, &todo, &map, self.max_record_bytes);
        let keys: Vec<&str> = packed.keys.iter().map(String::as_str).collect();
        let entries = 0..packed.entries.len();
        // A shard's aggregates one after the other, in both delivery orders.
        let plan = Plan::ordered_by(&keys, entries);
        let mut put = SendOutcome {
            delivered: vec![false; packed.entries.len()],
            ..SendOutcome::default()
        };
        let tally = self
            .deliver(&packed.entries, plan, &mut put, deadline)
            .await;
        let given_up = tally.given_up.iter().map(|&e| packed.members[e].len());
        outcome.note_given_up(given_up.sum());
        let mut again = self.mark_user_records(&packed, put, &tally.landed, outcome);
        if !again.is_empty() && outcome.error.is_none() {
            // Refused as invalid whole: its records one by one, so only the
            // one at fault is rejected.
            again.sort_unstable();
            tracing::warn!(destination = %self.stream, records = again.len(), "an aggregate was refused; sending its records as they are");
            let plan = Plan::new(records, again, self.order, self.max_in_flight);
            let tally = self.deliver(records, plan, outcome, deadline).await;
            outcome.note_given_up(tally.given_up.len());
        }
    }

    /// Marks each user record as its entry went, notes misplaced aggregates,
    /// and returns the records of the aggregates refused as invalid.
    fn mark_user_records(
        &self,
        packed: &Packed,
        put: SendOutcome,
        landed: &[Option<String>],
        outcome: &mut SendOutcome,
    ) -> Vec<usize> {
        let (aggregates, carried) = packed.counts();
        *outcome.counts.entry("FanoutAggregates").or_default() += aggregates;
        *outcome.counts.entry("FanoutAggregatedRecords").or_default() += carried;
        let mut misplaced = 0;
        for (entry, members) in packed.members.iter().enumerate() {
            for &member in members {
                outcome.delivered[member] = put.delivered[entry];
            }
            let expected = packed.expected[entry].as_deref();
            if expected.is_some() && landed[entry].is_some() && landed[entry].as_deref() != expected
            {
                misplaced += 1;
            }
        }
        if misplaced > 0 {
            // The destination was resharded: list its shards again next time.
            tracing::warn!(destination = %self.stream, misplaced, "aggregates landed on other shards than the shard map said; listing the shards again");
            *outcome.counts.entry("FanoutWrongShard").or_default() += misplaced;
            self.shards.invalidate();
        }
        for &entry in &put.not_tried {
            outcome.not_tried.extend(&packed.members[entry]);
        }
        let mut again = Vec::new();
        for (entry, reason) in put.rejected {
            if packed.is_aggregate(entry) {
                again.extend(&packed.members[entry]);
            } else {
                outcome.rejected.push((packed.members[entry][0], reason));
            }
        }
        outcome.requests += put.requests;
        outcome.retried_entries += put.retried_entries;
        outcome.error = put.error.map(|error| match error {
            SinkError::Incomplete {
                destination,
                last_error,
                ..
            } => SinkError::Incomplete {
                destination,
                undelivered: outcome.delivered.iter().filter(|d| !**d).count(),
                last_error,
            },
            other => other,
        });
        again
    }
}

/// The hash key Kinesis routes `record` by, if its explicit hash key is valid.
fn hash_key(record: &OutRecord) -> Option<u128> {
    match &record.explicit_hash_key {
        Some(key) => kpl::parse_explicit_hash_key(key).ok(),
        None => Some(kpl::partition_key_hash(&record.partition_key)),
    }
}

/// Packs `records[i]` for each `i` of `todo`, shard by shard of `map`, into
/// aggregates of at most `max_bytes` (partition key counted).
pub(super) fn pack(
    records: &[OutRecord],
    todo: &[usize],
    map: &ShardMap,
    max_bytes: usize,
) -> Packed {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); map.len()];
    let mut packed = Packed::default();
    for &index in todo {
        match hash_key(&records[index]).and_then(|h| map.find(h)) {
            Some(shard) => groups[shard].push(index),
            None => packed.plain(records, index, records[index].partition_key.clone()),
        }
    }
    for (shard, group) in groups.into_iter().enumerate() {
        let id = &map.shard(shard).id;
        let aggregator = Aggregator::with_max_bytes(max_bytes);
        let (Ok(mut aggregator), true) = (aggregator, group.len() > 1) else {
            for index in group {
                packed.plain(records, index, id.to_string());
            }
            continue;
        };
        let mut pending = Vec::new();
        for index in group {
            let record = &records[index];
            let user = UserRecord {
                partition_key: record.partition_key.clone(),
                explicit_hash_key: record.explicit_hash_key.clone(),
                data: Bytes::clone(&record.data),
            };
            match aggregator.add(user) {
                Ok(None) => pending.push(index),
                Ok(Some(full)) => {
                    packed.aggregate(records, full, std::mem::take(&mut pending), id);
                    pending.push(index);
                }
                // Too large to aggregate: it goes as it is, in its turn.
                Err(_) => {
                    if let Some(made) = aggregator.finish() {
                        packed.aggregate(records, made, std::mem::take(&mut pending), id);
                    }
                    packed.plain(records, index, id.to_string());
                }
            }
        }
        if let Some(made) = aggregator.finish() {
            packed.aggregate(records, made, pending, id);
        }
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::super::shards::OpenShard;
    use super::*;
    use kpl::{Deaggregated, deaggregate};

    use super::super::tests::record;

    fn two_shards() -> ShardMap {
        let half = u128::MAX / 2;
        ShardMap::new(vec![
            OpenShard {
                id: Arc::from("s0"),
                start: 0,
                end: half,
            },
            OpenShard {
                id: Arc::from("s1"),
                start: half + 1,
                end: u128::MAX,
            },
        ])
    }

    #[test]
    fn each_aggregate_holds_one_shards_records_in_order_and_lands_there() {
        let map = two_shards();
        let records: Vec<OutRecord> = (0..1_000)
            .map(|i| record(i, &format!("user-{}", i % 37), 100))
            .collect();
        let todo: Vec<usize> = (0..records.len()).collect();
        let packed = pack(&records, &todo, &map, 64 * 1024);
        let mut seen: Vec<usize> = Vec::new();
        for (entry, out) in packed.entries.iter().enumerate() {
            assert!(packed.is_aggregate(entry));
            assert!(out.size() <= 64 * 1024);
            let landing = map
                .find(out.explicit_hash_key.as_ref().unwrap().parse().unwrap())
                .unwrap();
            assert_eq!(
                packed.expected[entry].as_deref(),
                Some(&*map.shard(landing).id)
            );
            assert_eq!(packed.keys[entry], &*map.shard(landing).id);
            let Deaggregated::Aggregate(users) = deaggregate(&out.data) else {
                panic!("entry {entry} is not an aggregate");
            };
            assert_eq!(users.len(), packed.members[entry].len());
            for (user, &member) in users.iter().zip(&packed.members[entry]) {
                assert_eq!(user.partition_key, records[member].partition_key);
                assert_eq!(
                    map.find(kpl::partition_key_hash(&user.partition_key)),
                    Some(landing)
                );
            }
            seen.extend(&packed.members[entry]);
        }
        // Every record once; within a shard, in the order given.
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, todo);
        for shard in ["s0", "s1"] {
            let order: Vec<usize> = (0..packed.entries.len())
                .filter(|&e| packed.keys[e] == shard)
                .flat_map(|e| packed.members[e].clone())
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{shard} out of order"
            );
        }
        assert!(packed.entries.len() < 5, "{} entries", packed.entries.len());
        assert_eq!(packed.counts(), (packed.entries.len() as u64, 1_000));
    }

    #[test]
    fn lone_unmapped_and_oversized_records_go_as_they_are() {
        let map = ShardMap::new(vec![OpenShard {
            id: Arc::from("only"),
            start: 0,
            end: u128::MAX / 2,
        }]);
        let key_in = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| map.find(kpl::partition_key_hash(k)).is_some())
            .unwrap();
        let key_out = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| map.find(kpl::partition_key_hash(k)).is_none())
            .unwrap();
        let lone = [record(0, &key_in, 10), record(1, &key_out, 10)];
        let packed = pack(&lone, &[0, 1], &map, 1024);
        assert_eq!(
            packed.entries,
            [lone[1].clone(), lone[0].clone()],
            "nothing to aggregate"
        );
        assert_eq!(packed.keys, [key_out.clone(), "only".to_owned()]);
        let big = [
            record(0, &key_in, 10),
            record(1, &key_in, 2_000),
            record(2, &key_in, 10),
        ];
        let packed = pack(&big, &[0, 1, 2], &map, 1024);
        assert_eq!(packed.members, [vec![0], vec![1], vec![2]]);
        assert_eq!(
            packed.entries,
            big.to_vec(),
            "one record each side of the big one: plain"
        );
        let around = [
            record(0, &key_in, 10),
            record(1, &key_in, 10),
            record(2, &key_in, 2_000),
            record(3, &key_in, 10),
        ];
        let packed = pack(&around, &[0, 1, 2, 3], &map, 1024);
        assert_eq!(packed.members, [vec![0, 1], vec![2], vec![3]]);
        assert!(packed.is_aggregate(0) && !packed.is_aggregate(1));
        assert_eq!(
            packed.keys,
            ["only", "only", "only"],
            "one line: the order holds"
        );
    }
}

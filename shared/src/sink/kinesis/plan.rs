//! Which records go in which PutRecords request, round after round.
//!
//! - [`DeliveryOrder::Ordered`]: one queue per partition key; a round sends the
//!   head of every queue (so a request holds at most one record per key), and a
//!   key's next record goes only after its head was delivered.
//! - [`DeliveryOrder::Throughput`]: keys are spread over lanes by hash; a round
//!   sends one full request per lane. A key lives in one lane, so no two
//!   requests in flight hold the same key: order per key holds while nothing
//!   fails (a failed entry is sent again after the records behind it).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use super::{MAX_REQUEST_BYTES, MAX_REQUEST_RECORDS};
use crate::sink::{DeliveryOrder, OutRecord};

/// The records still to deliver, in queues.
#[derive(Debug)]
pub(super) struct Plan {
    order: DeliveryOrder,
    queues: Vec<VecDeque<usize>>,
}

impl Plan {
    /// A plan for `records[i]` for each `i` of `todo`, with `lanes` lanes in
    /// throughput order.
    pub fn new(
        records: &[OutRecord],
        todo: impl IntoIterator<Item = usize>,
        order: DeliveryOrder,
        lanes: usize,
    ) -> Self {
        let mut queues: Vec<VecDeque<usize>> = Vec::new();
        let mut queue_of: HashMap<&str, usize> = HashMap::new();
        if order == DeliveryOrder::Throughput {
            queues.resize(lanes.max(1), VecDeque::new());
        }
        for index in todo {
            let key = records[index].partition_key.as_str();
            let queue = match order {
                DeliveryOrder::Ordered => *queue_of.entry(key).or_insert_with(|| {
                    queues.push(VecDeque::new());
                    queues.len() - 1
                }),
                DeliveryOrder::Throughput => lane_of(key, queues.len()),
            };
            queues[queue].push_back(index);
        }
        queues.retain(|q| !q.is_empty());
        Plan { order, queues }
    }

    /// Whether everything was delivered (or given up).
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// The requests of the next round.
    pub fn round(&self, records: &[OutRecord]) -> Vec<Vec<usize>> {
        match self.order {
            DeliveryOrder::Ordered => {
                let heads: Vec<usize> = self
                    .queues
                    .iter()
                    .filter_map(|q| q.front().copied())
                    .collect();
                pack(records, &heads)
            }
            DeliveryOrder::Throughput => self
                .queues
                .iter()
                .filter_map(|queue| {
                    let front: Vec<usize> = queue.iter().copied().collect();
                    pack(records, &front).into_iter().next()
                })
                .collect(),
        }
    }

    /// Drops what is `settled` (delivered, or rejected for good) from the queues.
    pub fn settle(&mut self, settled: impl Fn(usize) -> bool) {
        for queue in &mut self.queues {
            match self.order {
                DeliveryOrder::Ordered => {
                    if queue.front().is_some_and(|&i| settled(i)) {
                        queue.pop_front();
                    }
                }
                DeliveryOrder::Throughput => queue.retain(|&i| !settled(i)),
            }
        }
        self.queues.retain(|q| !q.is_empty());
    }
}

/// The lane of a partition key among `lanes`.
fn lane_of(key: &str, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    usize::try_from(hasher.finish() % lanes.max(1) as u64).unwrap_or(0)
}

/// Splits `ready` into requests within the count and byte limits, in order.
pub(super) fn pack(records: &[OutRecord], ready: &[usize]) -> Vec<Vec<usize>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Position;
    use bytes::Bytes;

    fn record(i: u64, key: &str, bytes: usize) -> OutRecord {
        OutRecord {
            source: Position::new(i.to_string().parse().unwrap(), 0),
            partition_key: key.into(),
            explicit_hash_key: None,
            data: Bytes::from(vec![0u8; bytes]),
        }
    }

    #[test]
    fn requests_respect_count_and_byte_limits() {
        let small: Vec<OutRecord> = (0..1_200).map(|i| record(i, "k", 10)).collect();
        let all: Vec<usize> = (0..small.len()).collect();
        let sizes: Vec<usize> = pack(&small, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [500, 500, 200]);
        // Twelve records of 1 MiB minus the key: five fit in 5 MiB.
        let big: Vec<OutRecord> = (0..12).map(|i| record(i, "k", 1024 * 1024 - 1)).collect();
        let all: Vec<usize> = (0..big.len()).collect();
        let sizes: Vec<usize> = pack(&big, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 5, 2]);
    }

    #[test]
    fn throughput_rounds_never_put_one_key_in_two_requests() {
        let records: Vec<OutRecord> = (0..3_000)
            .map(|i| record(i, &format!("user-{}", i % 10), 10))
            .collect();
        let mut plan = Plan::new(&records, 0..records.len(), DeliveryOrder::Throughput, 4);
        let mut rounds = 0;
        while !plan.is_empty() {
            let requests = plan.round(&records);
            let mut owner: HashMap<&str, usize> = HashMap::new();
            for (r, request) in requests.iter().enumerate() {
                assert!(request.len() <= MAX_REQUEST_RECORDS);
                for &i in request {
                    let at = *owner.entry(&records[i].partition_key).or_insert(r);
                    assert_eq!(at, r, "a key in two requests of one round");
                }
            }
            let sent: Vec<usize> = requests.concat();
            plan.settle(|i| sent.contains(&i));
            rounds += 1;
        }
        assert!(rounds >= 2, "3,000 records need several rounds");
    }

    #[test]
    fn ordered_rounds_send_one_record_per_key() {
        let records: Vec<OutRecord> = (0..6)
            .map(|i| record(i, ["a", "b"][i as usize % 2], 1))
            .collect();
        let mut plan = Plan::new(&records, 0..6, DeliveryOrder::Ordered, 4);
        assert_eq!(plan.round(&records), [vec![0, 1]]);
        plan.settle(|i| i == 0);
        assert_eq!(
            plan.round(&records),
            [vec![2, 1]],
            "b's head failed: it is sent again"
        );
    }
}

//! The order records may start in: one lane per ordering key, each lane's
//! records one after another, lanes side by side.
//!
//! A lane is what must keep order within the batch: the partition key (for KPL
//! user records the aggregate's key, which is what Lambda routes by), or the
//! whole shard when records run one at a time. A lane's next record starts
//! only once the previous one finished and the lane goes on (it succeeded, was
//! skipped or quarantined); a failure stops its lane, and the lanes that are
//! free start in the batch's order, so the earliest records go first.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// The lanes of one batch, by record index.
#[derive(Debug)]
pub(super) struct Lanes {
    /// The lane of each record.
    lane_of: Vec<usize>,
    /// Per lane, its records not started yet, in order.
    waiting: Vec<VecDeque<usize>>,
    /// Lanes free to start their next record, by that record's index.
    free: BinaryHeap<Reverse<(usize, usize)>>,
}

impl Lanes {
    /// Lanes for records whose keys are `keys`, in batch order.
    pub(super) fn new<'k>(keys: impl IntoIterator<Item = &'k str>) -> Self {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut lane_of = Vec::new();
        let mut waiting: Vec<VecDeque<usize>> = Vec::new();
        let mut last: Option<(&str, usize)> = None;
        for (index, key) in keys.into_iter().enumerate() {
            // Runs of one key (a whole shard, an aggregate's records) skip the lookup.
            let lane = match last {
                Some((previous, lane)) if same_key(previous, key) => lane,
                _ => *ids.entry(key).or_insert_with(|| {
                    waiting.push(VecDeque::new());
                    waiting.len() - 1
                }),
            };
            last = Some((key, lane));
            lane_of.push(lane);
            waiting[lane].push_back(index);
        }
        let free = waiting
            .iter()
            .enumerate()
            .filter_map(|(lane, queue)| queue.front().map(|&first| Reverse((first, lane))))
            .collect();
        Lanes {
            lane_of,
            waiting,
            free,
        }
    }

    /// The next record to start: the earliest waiting one of a free lane. Its
    /// lane is busy until [`Lanes::finished`].
    pub(super) fn start(&mut self) -> Option<usize> {
        let Reverse((index, lane)) = self.free.pop()?;
        self.waiting[lane].pop_front();
        Some(index)
    }

    /// Record `index` finished: its lane is free again if `go_on`, else it
    /// stops (its other records do not start in this batch).
    pub(super) fn finished(&mut self, index: usize, go_on: bool) {
        let lane = self.lane_of[index];
        if !go_on {
            self.waiting[lane].clear();
        } else if let Some(&next) = self.waiting[lane].front() {
            self.free.push(Reverse((next, lane)));
        }
    }
}

/// Equal keys, the same text first checked by address.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lane_runs_in_order_and_stops_at_a_failure() {
        let mut lanes = Lanes::new(["", "", ""]);
        assert_eq!(lanes.start(), Some(0));
        assert_eq!(lanes.start(), None, "a lane's next record waits");
        lanes.finished(0, true);
        assert_eq!(lanes.start(), Some(1));
        lanes.finished(1, false);
        assert_eq!(lanes.start(), None, "a failure stops the lane");
    }

    #[test]
    fn lanes_run_side_by_side_earliest_first() {
        let mut lanes = Lanes::new(["a", "b", "a", "c", "b"]);
        assert_eq!(lanes.start(), Some(0));
        assert_eq!(lanes.start(), Some(1));
        assert_eq!(lanes.start(), Some(3));
        assert_eq!(lanes.start(), None);
        lanes.finished(1, true);
        lanes.finished(0, false);
        assert_eq!(lanes.start(), Some(4), "a stopped; b goes on");
        lanes.finished(4, true);
        lanes.finished(3, true);
        assert_eq!(lanes.start(), None, "2 never starts: its lane stopped");
    }
}

//! The model of one stream: shards with hash key ranges, their records,
//! sequence numbers, and resharding (split, merge). No I/O and no clock of
//! its own: the caller passes the wall-clock time.

use std::time::SystemTime;

use bytes::Bytes;

use super::{PutResult, ShardInfo, ShardRecord, SimError};

/// The simulated account.
pub(super) const ACCOUNT: &str = "000000000000";
/// The simulated region.
pub(super) const REGION: &str = "us-east-1";
/// Digits of the stream-wide counter inside a sequence number.
const COUNTER_DIGITS: usize = 38;
/// Digits of the shard number inside a sequence number.
const SHARD_DIGITS: usize = 16;
/// Every sequence number starts with these digits (as real ones start with 49).
const SEQUENCE_PREFIX: &str = "49";

/// The ARN of stream `name`.
pub(super) fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
}

/// The id of shard number `index`: `shardId-000000000007`.
pub(super) fn shard_id(index: u64) -> String {
    format!("shardId-{index:012}")
}

/// A sequence number: a stream-wide counter and the shard it belongs to,
/// written as 56 decimal digits (`49`, the counter in 38 digits, the shard
/// number in 16), so text order, number order and this type's order agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Seq {
    /// The stream-wide counter: increases with every number handed out.
    pub counter: u64,
    /// The shard number.
    pub shard: u64,
}

impl Seq {
    /// Parses a sequence number this service handed out; `None` for any other
    /// text (other digits, another length).
    pub(super) fn parse(text: &str) -> Option<Seq> {
        let rest = text.strip_prefix(SEQUENCE_PREFIX)?;
        if rest.len() != COUNTER_DIGITS + SHARD_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let (counter, shard) = rest.split_at(COUNTER_DIGITS);
        Some(Seq {
            counter: counter.parse().ok()?,
            shard: shard.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SEQUENCE_PREFIX}{:0cw$}{:0sw$}",
            self.counter,
            self.shard,
            cw = COUNTER_DIGITS,
            sw = SHARD_DIGITS
        )
    }
}

/// One stored record.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub seq: Seq,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
    pub arrival: SystemTime,
}

impl Record {
    /// The record as the direct API shows it.
    pub(super) fn to_public(&self) -> ShardRecord {
        ShardRecord {
            sequence_number: self.seq.to_string(),
            partition_key: self.partition_key.clone(),
            explicit_hash_key: self.explicit_hash_key.clone(),
            data: self.data.clone(),
            arrival: self.arrival,
        }
    }
}

/// One shard.
#[derive(Debug, Clone)]
pub(super) struct Shard {
    pub index: u64,
    pub id: String,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
    pub start_hash: u128,
    pub end_hash: u128,
    pub start_seq: Seq,
    /// Set when the shard is closed: above its last record, below its children.
    pub end_seq: Option<Seq>,
    pub opened: SystemTime,
    pub closed: Option<SystemTime>,
    /// The shard numbers of its children, once resharded.
    pub children: Vec<u64>,
    pub records: Vec<Record>,
}

impl Shard {
    pub(super) fn is_open(&self) -> bool {
        self.end_seq.is_none()
    }

    /// Whether the shard's hash key range holds `hash`.
    pub(super) fn holds(&self, hash: u128) -> bool {
        self.start_hash <= hash && hash <= self.end_hash
    }

    /// The parents: none, one (split) or two (merge).
    pub(super) fn parents(&self) -> Vec<String> {
        [&self.parent, &self.adjacent_parent]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The index of the first record whose counter is at least `counter`.
    pub(super) fn first_at(&self, counter: u64) -> usize {
        self.records.partition_point(|r| r.seq.counter < counter)
    }

    /// Whether the shard was open at `time` (opened at or before it, closed after).
    pub(super) fn open_at(&self, time: SystemTime) -> bool {
        self.opened <= time && self.closed.is_none_or(|closed| closed > time)
    }

    /// Whether the shard was open at `time` or opened after it.
    pub(super) fn open_from(&self, time: SystemTime) -> bool {
        self.closed.is_none_or(|closed| closed > time)
    }

    /// The shard as the direct API shows it.
    pub(super) fn info(&self) -> ShardInfo {
        ShardInfo {
            shard_id: self.id.clone(),
            parent_shard_id: self.parent.clone(),
            adjacent_parent_shard_id: self.adjacent_parent.clone(),
            starting_hash_key: self.start_hash,
            ending_hash_key: self.end_hash,
            starting_sequence_number: self.start_seq.to_string(),
            ending_sequence_number: self.end_seq.map(|s| s.to_string()),
            children: self.children.iter().map(|&c| shard_id(c)).collect(),
        }
    }
}

/// One stream.
#[derive(Debug, Clone)]
pub(super) struct Stream {
    pub name: String,
    pub created: SystemTime,
    /// The next counter a sequence number takes.
    next_counter: u64,
    /// Every shard, by shard number.
    pub shards: Vec<Shard>,
}

impl Stream {
    /// A stream of `shard_count` shards splitting the hash key space evenly.
    pub(super) fn new(name: &str, shard_count: u32, now: SystemTime) -> Stream {
        let mut stream = Stream {
            name: name.to_owned(),
            created: now,
            next_counter: 1,
            shards: Vec::new(),
        };
        let ranges = even_ranges(shard_count.max(1));
        for (start, end) in ranges {
            stream.open_shard(start, end, None, None, now);
        }
        stream
    }

    /// The counter the next sequence number takes: records put from now on
    /// have at least this one.
    pub(super) fn next_counter(&self) -> u64 {
        self.next_counter
    }

    fn allocate(&mut self) -> u64 {
        let counter = self.next_counter;
        self.next_counter += 1;
        counter
    }

    fn open_shard(
        &mut self,
        start_hash: u128,
        end_hash: u128,
        parent: Option<String>,
        adjacent_parent: Option<String>,
        now: SystemTime,
    ) -> u64 {
        let index = self.shards.len() as u64;
        let counter = self.allocate();
        self.shards.push(Shard {
            index,
            id: shard_id(index),
            parent,
            adjacent_parent,
            start_hash,
            end_hash,
            start_seq: Seq {
                counter,
                shard: index,
            },
            end_seq: None,
            opened: now,
            closed: None,
            children: Vec::new(),
            records: Vec::new(),
        });
        index
    }

    fn close_shard(&mut self, index: u64, children: Vec<u64>, now: SystemTime) {
        let counter = self.allocate();
        if let Some(shard) = self.shards.get_mut(index as usize) {
            shard.end_seq = Some(Seq {
                counter,
                shard: index,
            });
            shard.closed = Some(now);
            shard.children = children;
        }
    }

    /// The shard `id`, if the stream has it.
    pub(super) fn shard(&self, id: &str) -> Option<&Shard> {
        let index: usize = id.strip_prefix("shardId-")?.parse().ok()?;
        self.shards.get(index).filter(|shard| shard.id == id)
    }

    /// The shard `id`, open, or why not.
    fn open_shard_named(&self, id: &str) -> Result<&Shard, SimError> {
        let shard = self.shard(id).ok_or_else(|| SimError::ShardNotFound {
            stream: self.name.clone(),
            shard: id.to_owned(),
        })?;
        if !shard.is_open() {
            return Err(SimError::ShardClosed {
                stream: self.name.clone(),
                shard: id.to_owned(),
            });
        }
        Ok(shard)
    }

    /// The open shard whose hash key range holds `hash`.
    pub(super) fn route(&self, hash: u128) -> Option<&Shard> {
        self.shards.iter().find(|s| s.is_open() && s.holds(hash))
    }

    /// Appends a record to the open shard holding `hash`.
    pub(super) fn put(
        &mut self,
        hash: u128,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: Bytes,
        arrival: SystemTime,
    ) -> Result<PutResult, SimError> {
        // Open shards cover the whole hash key space: this is never `None`.
        let Some(at) = self
            .shards
            .iter()
            .position(|s| s.is_open() && s.holds(hash))
        else {
            let name = &self.name;
            return Err(SimError::Invalid(format!(
                "no open shard of {name} holds hash key {hash}"
            )));
        };
        let counter = self.allocate();
        let shard = &mut self.shards[at];
        let seq = Seq {
            counter,
            shard: shard.index,
        };
        shard.records.push(Record {
            seq,
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            data,
            arrival,
        });
        Ok(PutResult {
            shard_id: shard.id.clone(),
            sequence_number: seq.to_string(),
        })
    }

    /// Splits open shard `id` at `new_starting_hash_key`: the children hold
    /// `start..new_starting_hash_key` and `new_starting_hash_key..=end`.
    pub(super) fn split(
        &mut self,
        id: &str,
        new_starting_hash_key: u128,
        now: SystemTime,
    ) -> Result<[String; 2], SimError> {
        let parent = self.open_shard_named(id)?;
        let (index, start, end) = (parent.index, parent.start_hash, parent.end_hash);
        if new_starting_hash_key <= start || new_starting_hash_key > end {
            return Err(SimError::Invalid(format!(
                "NewStartingHashKey {new_starting_hash_key} is not inside the range of {id} ({start} to {end}) above its starting hash key"
            )));
        }
        let first = self.shards.len() as u64;
        self.close_shard(index, vec![first, first + 1], now);
        let parent_id = Some(id.to_owned());
        let low = self.open_shard(
            start,
            new_starting_hash_key - 1,
            parent_id.clone(),
            None,
            now,
        );
        let high = self.open_shard(new_starting_hash_key, end, parent_id, None, now);
        Ok([shard_id(low), shard_id(high)])
    }

    /// Merges open shards `id` and `adjacent_id`, whose ranges must touch.
    pub(super) fn merge(
        &mut self,
        id: &str,
        adjacent_id: &str,
        now: SystemTime,
    ) -> Result<String, SimError> {
        let one = self.open_shard_named(id)?;
        let other = self.open_shard_named(adjacent_id)?;
        let adjacent = one.end_hash.checked_add(1) == Some(other.start_hash)
            || other.end_hash.checked_add(1) == Some(one.start_hash);
        if !adjacent {
            return Err(SimError::Invalid(format!(
                "shards {id} and {adjacent_id} are not adjacent"
            )));
        }
        let start = one.start_hash.min(other.start_hash);
        let end = one.end_hash.max(other.end_hash);
        let (one, other) = (one.index, other.index);
        let child = self.shards.len() as u64;
        self.close_shard(one, vec![child], now);
        self.close_shard(other, vec![child], now);
        let (parent, adjacent) = (Some(id.to_owned()), Some(adjacent_id.to_owned()));
        Ok(shard_id(self.open_shard(start, end, parent, adjacent, now)))
    }
}

/// `count` hash key ranges splitting `0..=2^128-1` evenly, as CreateStream
/// does: each `2^128 / count` wide, the last one up to the end.
pub(super) fn even_ranges(count: u32) -> Vec<(u128, u128)> {
    let count = u128::from(count.max(1));
    if count == 1 {
        return vec![(0, u128::MAX)];
    }
    // floor(2^128 / count), from 2^128 - 1 = u128::MAX.
    let exact = u128::MAX % count == count - 1;
    let width = u128::MAX / count + u128::from(exact);
    (0..count)
        .map(|i| {
            let start = i * width;
            let end = if i + 1 == count {
                u128::MAX
            } else {
                (i + 1) * width - 1
            };
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! The data the direct API hands out, and its error.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;

/// A shard, as [`KinesisService::shards`](super::KinesisService::shards) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000`...
    pub shard_id: String,
    /// The shard it was split from, or the first of the two it was merged from.
    pub parent_shard_id: Option<String>,
    /// The second of the two it was merged from.
    pub adjacent_parent_shard_id: Option<String>,
    /// The lowest hash key it holds.
    pub starting_hash_key: u128,
    /// The highest hash key it holds.
    pub ending_hash_key: u128,
    /// Below every sequence number of the shard.
    pub starting_sequence_number: String,
    /// Set once the shard is closed (by a split or a merge): above its last record.
    pub ending_sequence_number: Option<String>,
    /// The shards it was resharded into.
    pub children: Vec<String>,
}

impl ShardInfo {
    /// Whether records can still land on it.
    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    /// Its parents: none, one after a split, two after a merge.
    pub fn parents(&self) -> Vec<String> {
        [&self.parent_shard_id, &self.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// A record of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRecord {
    /// Its sequence number (56 digits).
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// The explicit hash key it was put with, if any.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Bytes,
    /// When it arrived ([`shardline::time::now`] at the put, to the millisecond).
    pub arrival: SystemTime,
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The shard.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
}

/// Why a call of the direct API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No such stream.
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// The stream exists already.
    #[error("stream {0} already exists")]
    StreamExists(String),
    /// No such shard.
    #[error("shard {shard} of stream {stream} not found")]
    ShardNotFound {
        /// The stream.
        stream: String,
        /// The shard.
        shard: String,
    },
    /// The shard is closed (resharded).
    #[error("shard {shard} of stream {stream} is closed")]
    ShardClosed {
        /// The stream.
        stream: String,
        /// The shard.
        shard: String,
    },
    /// An invalid argument (a key, a hash key, a split point, a name).
    #[error("{0}")]
    Invalid(String),
}

/// What the service was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received per operation (faulted and refused ones included).
    pub requests: BTreeMap<String, u64>,
    /// PutRecords entries and PutRecord records written through the SDK.
    pub entries_put: u64,
    /// PutRecords entries answered with an `ErrorCode` (not written).
    pub entries_failed: u64,
}

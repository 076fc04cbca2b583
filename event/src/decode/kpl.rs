//! KPL aggregation: the format the Kinesis Producer Library packs many user
//! records into one Kinesis record with, from the workspace's [`kpl`]
//! crate (re-exported here, so `shardline_event::decode::kpl::...` paths keep working).
//!
//! Shardline expands each aggregate into its user records (subsequence 0, 1,
//! 2... of the Kinesis record's sequence number); bytes that start with the
//! magic but fail the MD5 or protobuf check are handed on as one plain record,
//! as the KCL does ([`Deaggregated::Fallback`]).
//!
//! ```
//! use shardline_event::decode::kpl::{Deaggregated, UserRecord, aggregate, deaggregate};
//! let records = vec![UserRecord::new("a", "one"), UserRecord::new("b", "two")];
//! let bytes = bytes::Bytes::from(aggregate(&records));
//! assert_eq!(deaggregate(&bytes), Deaggregated::Aggregate(records));
//! ```

pub use ::kpl::*;

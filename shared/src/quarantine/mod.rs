//! Quarantine: records set aside with their payload, so a poison record does not
//! block its shard and is not lost either.
//!
//! A record is quarantined when its handler says the failure is permanent, when it
//! has failed `SHARDLINE_MAX_ATTEMPTS` times, or when its payload cannot be
//! decoded. The entry keeps everything needed to replay it (`quarantine replay`)
//! or to put it back on a stream (`quarantine redrive`); [`QuarantineFilter`]
//! picks entries by shard, reason and time.
//!
//! The room, one concern a file:
//!
//! | file | holds |
//! |---|---|
//! | `entry.rs` | [`QuarantinedRecord`], [`QuarantineReason`], [`QuarantineKey`]: what an entry is |
//! | `filter.rs` | [`QuarantineFilter`]: which entries an operation takes |
//! | `store.rs` | [`QuarantineStore`]: what replay, redrive and purge ask of a store |
//! | `replay.rs` | [`replay()`]: entries through the function's handler again |
//! | `redrive.rs` | `redrive()`: entries back onto a stream (feature `kinesis`) |
//! | `command.rs` | the `quarantine` subcommand's arguments, parsed and checked |
//!
//! The engine writes entries through the state's commit; both stores keep
//! them (`state::dynamodb`, `state::embedded`).

mod command;
mod entry;
mod filter;
#[cfg(feature = "kinesis")]
pub mod redrive;
pub mod replay;
mod store;

pub(crate) use command::{Operation, QuarantineCommand};
pub(crate) use entry::cut;
pub use entry::{
    DETAIL_MAX_BYTES, QuarantineKey, QuarantineReason, QuarantinedRecord, encode_payload,
};
pub use filter::{QuarantineFilter, TimeError, count_by_shard_and_reason, parse_time};
#[cfg(feature = "kinesis")]
pub use redrive::{RedriveError, RedriveOutcome, redrive};
pub use replay::{ReplayError, ReplayOptions, ReplayOutcome, TAKE_OVER_MARGIN, replay};
pub use store::QuarantineStore;

//! Progress: how far an ordering unit (a shard, or one partition key of a
//! shard) has got, in the one shape both stores keep.
//!
//! | file | holds |
//! |---|---|
//! | `mode.rs` | [`ProgressMode`]: what a unit is (the shard, or a partition key) |
//! | `unit.rs` | [`Progress`]: a unit's checkpoint, what is done past it, the failing heads ([`HeadAttempts`]) |
//! | `ranges.rs` | [`PositionRanges`]: sets of positions as half-open ranges |
//! | `delivered.rs` | [`Delivered`]: what each destination holds; [`Deliveries`]: the batch's view for a flush |
//!
//! Both stores keep a [`Progress`] in the same text shapes ([`Delivered::to_texts`],
//! [`PositionRanges::to_text_within`], [`HeadAttempts::list_to_text`]), so they
//! cannot drift apart.

mod delivered;
mod mode;
pub(crate) mod ranges;
mod unit;

pub use delivered::{Delivered, Deliveries, MAX_DELIVERED_BYTES};
pub use mode::{DEFAULT_KEY_PROGRESS_TTL, ProgressMode};
pub use ranges::{PositionRanges, just_after};
pub use unit::{HeadAttempts, MAX_DONE_BYTES, MAX_HEADS_BYTES, Progress};

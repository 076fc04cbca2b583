//! The quarantine's operations, now in [`crate::quarantine`]: this module
//! keeps the paths they had.

#[cfg(feature = "kinesis")]
pub use crate::quarantine::{RedriveError, RedriveOutcome, redrive};
pub use crate::quarantine::{ReplayError, ReplayOptions, ReplayOutcome, TAKE_OVER_MARGIN, replay};

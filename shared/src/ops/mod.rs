//! Operations on the quarantine, as the `quarantine` subcommands of every
//! function run them (see [`crate::App`]), and for programs of your own:
//!
//! - [`replay::replay`]: quarantined records through the handler again;
//! - [`redrive::redrive`]: quarantined records back onto a stream;
//! - listing, counting and purging are [`crate::quarantine::QuarantineFilter`]
//!   over [`crate::state::StateStore::quarantined`] and
//!   [`crate::state::QuarantineStore::remove_quarantined`].

#[cfg(feature = "kinesis")]
pub mod redrive;
pub mod replay;

#[cfg(feature = "kinesis")]
pub use redrive::{RedriveError, RedriveOutcome, redrive};
pub use replay::{ReplayError, ReplayOptions, ReplayOutcome, TAKE_OVER_MARGIN, replay};

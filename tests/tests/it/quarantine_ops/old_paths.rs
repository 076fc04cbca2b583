//! The quarantine's old public paths, kept working after the move into one room.

use shardline::quarantine::{RedriveOutcome, ReplayOptions, ReplayOutcome};

/// The paths the quarantine's operations had before they moved into one room
/// (`shardline::ops`, `shardline::state::quarantine`) still name the same items.
#[test]
#[allow(deprecated)]
fn the_old_paths_name_the_same_items() {
    let options: shardline::ops::replay::ReplayOptions = ReplayOptions::default();
    let _: shardline::ops::ReplayOptions = options;
    let _: fn(ReplayOutcome) -> shardline::ops::ReplayOutcome = |o| o;
    let _: fn(&RedriveOutcome) -> &shardline::ops::redrive::RedriveOutcome = |o| o;
    let _: fn(
        &dyn shardline::quarantine::QuarantineStore,
    ) -> &dyn shardline::state::quarantine::QuarantineStore = |s| s;
    let _: fn(
        &dyn shardline::quarantine::QuarantineStore,
    ) -> &dyn shardline::state::QuarantineStore = |s| s;
    assert_eq!(
        shardline::ops::TAKE_OVER_MARGIN,
        shardline::quarantine::TAKE_OVER_MARGIN
    );
}

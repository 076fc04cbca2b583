//! The operator, after the drain: the cause of the poison is mended, half of
//! the quarantine is replayed through the function's handler and the other
//! half redriven onto the source stream (the mapping runs it again). Both are
//! Shardline's own commands (`shardline::quarantine`). Afterwards the quarantine must
//! be empty and every record applied.

use std::rc::Rc;
use std::time::Duration;

use shardline::quarantine::redrive;
use shardline::quarantine::{ReplayOptions, replay};

use crate::mapping::Mapping;
use crate::run::{CONSUMER, SOURCE, Setup};

/// Mends the poison, replays and redrives the quarantine, drains again.
///
/// # Errors
/// What went wrong, as a violation.
pub async fn mend_and_return(
    setup: &Setup,
    mapping: &Rc<Mapping>,
    budget: u64,
) -> Result<(), String> {
    if setup.scenario.features.window.is_some() {
        return Ok(());
    }
    let store = &*setup.quarantine;
    let entries = store
        .list_quarantined(CONSUMER)
        .await
        .map_err(|e| format!("the quarantine cannot be read: {e}"))?;
    if entries.is_empty() {
        return Ok(());
    }
    {
        let mut world = setup.world.lock();
        world.mended = true;
        world.operator_from = Some(world.next_order());
        for entry in &entries {
            let id = entry
                .position()
                .and_then(|p| world.at(&entry.shard_id, &p))
                .map(|p| p.payload.id);
            if let Some(id) = id {
                world.operated.insert(id);
            }
        }
    }
    let (to_replay, to_redrive): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .enumerate()
        .partition(|(n, _)| n % 2 == 0);
    let to_replay = to_replay.into_iter().map(|(_, e)| e).collect();
    let to_redrive = to_redrive.into_iter().map(|(_, e)| e).collect();
    let options = ReplayOptions {
        timeout: Duration::from_secs(30),
        ..ReplayOptions::default()
    };
    let instance = mapping.take_instance();
    replay(
        store,
        &*instance.instance.handler,
        CONSUMER,
        to_replay,
        &options,
        |_, _| {},
    )
    .await
    .map_err(|e| format!("replay: {e}"))?;
    let client = setup.kinesis.client();
    redrive(
        store,
        &client,
        SOURCE,
        CONSUMER,
        to_redrive,
        false,
        |_, _| {},
    )
    .await
    .map_err(|e| format!("redrive: {e}"))?;
    if !mapping.run_until(|| true, budget).await {
        return Err("a stall: the redriven records did not drain".into());
    }
    let left = store
        .list_quarantined(CONSUMER)
        .await
        .map_err(|e| format!("the quarantine cannot be read: {e}"))?;
    if !left.is_empty() {
        let keys: Vec<String> = left
            .iter()
            .map(|q| format!("{}/{}", q.shard_id, q.sequence_number))
            .collect();
        return Err(format!(
            "after the cause was mended, replay and redrive left {keys:?} in the quarantine"
        ));
    }
    Ok(())
}

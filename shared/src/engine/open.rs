//! The open phase: the shard's state is read, the parent-shard guard (if
//! on) holds a child back until its parents are finished, each unit's
//! progress is read, and the dedup keys of the records that may run are
//! claimed in one call.

use std::collections::HashMap;
use std::time::Duration;

use super::EngineError;
use super::claims::{ClaimVerdict, Claims};
use super::shard::ShardRun;
use super::units::Units;
use crate::decode::Item;
use crate::guard::Verdict;
use crate::handler::Handler;
use crate::record::{Position, Record};
use crate::report::BatchReport;
use crate::state::{ClaimOutcome, DedupClaim, ProgressMode};

/// How long an in-flight claim outlives its invocation's deadline: a commit
/// sent just before the deadline may land a moment after it.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// What the open phase hands the run: each unit's progress as read, and the
/// batch's dedup claims.
pub(super) struct Opened {
    pub(super) units: Units,
    pub(super) claims: Claims,
}

/// Reads the shard's state and asks the guard; `None` when the batch is held back.
pub(super) async fn open<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    report: &mut BatchReport,
) -> Result<Option<Opened>, EngineError> {
    let state = shard
        .store
        .read_shard(shard.key)
        .await
        .map_err(|e| shard.state_error(e))?;
    if let Some(guard) = &shard.config.guard {
        let verdict = guard
            .check(
                shard.store,
                shard.key,
                &state,
                shard.config.progress,
                shard.deadline,
                shard.config.time_reserve,
            )
            .await
            .map_err(|source| EngineError::Guard {
                shard_id: shard.key.shard.shard_id.to_string(),
                source,
            })?;
        if let Verdict::Blocked {
            waiting_for,
            detail,
        } = verdict
        {
            tracing::warn!(
                shard = %shard.key.shard.shard_id,
                waiting_for = %waiting_for,
                detail = %detail,
                records = items.len(),
                "child shard held back until its parent is finished; the whole batch is reported failed"
            );
            report.blocked_on_parent += items.len() as u64;
            report.not_started += items.len() as u64;
            return Ok(None);
        }
    }
    let units = match shard.config.progress {
        ProgressMode::Shard => Units::shard(state.progress),
        ProgressMode::PartitionKey => {
            let mut keys: Vec<String> = items
                .iter()
                .map(|item| item.record().ordering_key().to_owned())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let read = shard
                .store
                .read_keys(shard.key, &keys)
                .await
                .map_err(|e| shard.state_error(e))?;
            Units::keys(read)
        }
    };
    let claims = claim_dedup_keys(shard, items, &units).await?;
    Ok(Some(Opened { units, claims }))
}

/// Claims the dedup keys of the records that may be handled, in one store
/// call, each in flight until this invocation's deadline (plus
/// [`LEASE_MARGIN`]) or the rule's window, whichever ends first.
async fn claim_dedup_keys<H: Handler>(
    shard: &ShardRun<'_, H>,
    items: &[Item],
    units: &Units,
) -> Result<Claims, EngineError> {
    let mut claims = Claims::default();
    let Some(rule) = &shard.config.skip.dedup else {
        return Ok(claims);
    };
    let lease = match shard.deadline.remaining() {
        Some(left) => (left + LEASE_MARGIN).min(rule.window),
        None => rule.window,
    };
    let mut wanted: Vec<(Position, DedupClaim)> = Vec::new();
    let mut first_copy: HashMap<String, Position> = HashMap::new();
    for item in items {
        let Item::Ready(record) = item else { continue };
        let done = units.is_done(record);
        if shard
            .config
            .skip
            .rule_for(record, shard.now, done, false)
            .is_some()
        {
            continue;
        }
        let Some(key) = (rule.key)(record) else {
            continue;
        };
        // A key twice in one batch: the first record claims it, the later
        // ones follow its fate without a store round trip. A later copy
        // skipped once the first was handled stays skipped if the flush
        // then fails the first (its key went on; the first is retried).
        if let Some(first) = first_copy.get(&key) {
            claims.copies.insert(record.position.clone(), first.clone());
            continue;
        }
        first_copy.insert(key.clone(), record.position.clone());
        wanted.push((
            record.position.clone(),
            DedupClaim {
                key,
                owner: owner_of(record),
                expires_at: shard.now + rule.window,
            },
        ));
    }
    if wanted.is_empty() {
        return Ok(claims);
    }
    let leases: Vec<DedupClaim> = wanted
        .iter()
        .map(|(_, claim)| DedupClaim {
            expires_at: shard.now + lease,
            ..claim.clone()
        })
        .collect();
    let outcomes = shard
        .store
        .claim(&shard.key.consumer, &leases, shard.now)
        .await
        .map_err(|e| shard.state_error(e))?;
    for ((position, claim), outcome) in wanted.into_iter().zip(outcomes) {
        match outcome {
            ClaimOutcome::Won => {
                claims.won.insert(position, claim);
            }
            ClaimOutcome::HeldBy(_) => {
                claims.held.insert(position, ClaimVerdict::Duplicate);
            }
            ClaimOutcome::InFlight(holder) => {
                claims.held.insert(position, ClaimVerdict::Waiting(holder));
            }
        }
    }
    Ok(claims)
}

/// The owner name of a record's dedup claim.
fn owner_of(record: &Record) -> String {
    format!(
        "{}|{}|{}",
        record.shard.stream_arn, record.shard.shard_id, record.position
    )
}

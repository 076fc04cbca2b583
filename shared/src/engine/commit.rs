//! The commit phase: what the batch changed is written in one
//! [`crate::state::ProgressStore::commit_batch`], a [`UnitCommit`] per unit
//! (the shard, or each key) with the quarantined records and what each
//! fan-out destination received, fenced by the version the open phase read.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::EngineError;
use super::fold::Folded;
use super::shard::{ShardRun, earliest};
use crate::handler::Handler;
use crate::record::Position;
use crate::report::BatchReport;
use crate::retry::Backoff;
use crate::state::{CommitOutcome, StateError, UnitCommit};

/// Tries of a commit that the store refuses for a transient reason.
const COMMIT_TRIES: u32 = 8;
/// The pause between them: from 25 ms, doubling, up to 1 s.
const COMMIT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(25), Duration::from_secs(1));
/// Time a last try needs before the invocation's end.
const COMMIT_MARGIN: Duration = Duration::from_millis(200);

/// Writes what the batch changed (nothing when nothing changed) and returns
/// the position to retry from.
pub(super) async fn commit<H: Handler>(
    shard: &ShardRun<'_, H>,
    folded: Folded,
    noted: &HashMap<String, HashSet<Position>>,
    report: &mut BatchReport,
) -> Result<Option<Position>, EngineError> {
    let Folded {
        units,
        mut retry_from,
    } = folded;
    let mut commits = Vec::new();
    let mut first_done = HashMap::new();
    for (name, unit) in units.into_units() {
        let progress = unit.progress(noted);
        if unit.changed(&progress) || !unit.settled.is_empty() {
            // Where Lambda retries from if this commit loses: the first
            // record the batch did, or (when the change came only from
            // records done before) the unit's first record in the batch.
            let first = unit
                .first_done
                .clone()
                .or_else(|| unit.positions.first().cloned());
            if let Some(first) = first {
                first_done.insert(name.clone(), first);
            }
            commits.push(UnitCommit {
                unit: name,
                read_version: unit.read.version,
                progress,
                settled: unit.settled,
            });
        }
    }
    if commits.is_empty() {
        return Ok(retry_from);
    }
    // In unit order, so requests are the same from run to run.
    commits.sort_by(|a, b| a.unit.cmp(&b.unit));
    let write = || shard.store.commit_batch(shard.key, &commits);
    let outcomes = retried(shard, "commit", write).await?;
    for (commit, outcome) in commits.iter().zip(outcomes) {
        if outcome != CommitOutcome::Superseded {
            continue;
        }
        tracing::warn!(
            shard = %shard.key.shard.shard_id,
            unit = %commit.unit,
            "a newer invocation committed this first; this one's progress was not written \
             and Lambda retries from its first record done"
        );
        report.superseded += 1;
        if let Some(first) = first_done.get(&commit.unit) {
            earliest(&mut retry_from, first);
        }
    }
    Ok(retry_from)
}

/// `write`, tried again on transient state errors with the commit's
/// backoff while the invocation has time.
///
/// The commit is what makes the batch's work stick: a transient refusal
/// is tried again while the invocation has time, rather than handing the
/// whole batch back to Lambda (which would redo, and resend, all of it).
/// A retry after a write that landed unanswered finds the version moved
/// and reads as superseded: Lambda's retry then skips by checkpoint.
async fn retried<H: Handler, T, F, Fut>(
    shard: &ShardRun<'_, H>,
    what: &str,
    write: F,
) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StateError>>,
{
    COMMIT_BACKOFF
        .retry(
            what,
            COMMIT_TRIES,
            shard.deadline,
            COMMIT_MARGIN,
            StateError::is_transient,
            write,
        )
        .await
        .map_err(|e| shard.state_error(e))
}

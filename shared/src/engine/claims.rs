//! Dedup claims of a batch: one store call claims the keys of every record
//! that may be handled. A record whose key another record holds is a
//! duplicate once that record's effect landed (its claim is done), and waits
//! for Lambda's retry while that record has not finished (its claim is in
//! flight: it may still fail, time out, or be discarded by Lambda).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use super::EngineError;
use super::run::ShardRun;
use super::units::Units;
use crate::decode::Item;
use crate::handler::Handler;
use crate::record::{Position, Record};
use crate::state::{ClaimOutcome, DedupClaim};

/// How long an in-flight claim outlives its invocation's deadline: a commit
/// sent just before the deadline may land a moment after it.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// What the dedup rule says of a record before it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClaimVerdict {
    /// Its key's effect landed through another record: skip it.
    Duplicate,
    /// Another record holding its key has not finished: leave it for the retry.
    Waiting(String),
}

/// The dedup claims of a batch.
#[derive(Default)]
pub(super) struct Claims {
    /// Records whose key another record holds (done: a duplicate; in
    /// flight: waiting), with what the dedup rule says of them.
    held: HashMap<Position, ClaimVerdict>,
    /// Later copies of a key within this batch, with the first copy's position.
    copies: HashMap<Position, Position>,
    /// Claims won, with the expiry they get once done.
    pub won: HashMap<Position, DedupClaim>,
    /// First copies handled so far in this batch.
    handled: Mutex<HashSet<Position>>,
}

impl Claims {
    /// What the dedup rule says of the record at `position` now (`None`: it
    /// may run).
    pub(super) fn verdict(&self, position: &Position) -> Option<ClaimVerdict> {
        if let Some(first) = self.copies.get(position) {
            // A later copy in this batch: a duplicate once the first copy was
            // handled (or is one itself), else it waits for the retry.
            return match self.verdict(first) {
                Some(verdict) => Some(verdict),
                None if self.was_handled(first) => Some(ClaimVerdict::Duplicate),
                None => Some(ClaimVerdict::Waiting(format!("{first} in this batch"))),
            };
        }
        self.held.get(position).cloned()
    }

    /// Notes that the record at `position` was handled.
    pub(super) fn handled(&self, position: &Position) {
        if self.won.contains_key(position) {
            self.lock().insert(position.clone());
        }
    }

    fn was_handled(&self, position: &Position) -> bool {
        self.lock().contains(position)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Position>> {
        self.handled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<H: Handler> ShardRun<'_, H> {
    /// Claims the dedup keys of the records that may be handled, in one store
    /// call, each in flight until this invocation's deadline (plus
    /// [`LEASE_MARGIN`]) or the rule's window, whichever ends first.
    pub(super) async fn claim_dedup_keys(
        &self,
        items: &[Item],
        units: &Units,
    ) -> Result<Claims, EngineError> {
        let mut claims = Claims::default();
        let Some(rule) = &self.config.skip.dedup else {
            return Ok(claims);
        };
        let lease = match self.deadline.remaining() {
            Some(left) => (left + LEASE_MARGIN).min(rule.window),
            None => rule.window,
        };
        let mut wanted: Vec<(Position, DedupClaim)> = Vec::new();
        let mut first_copy: HashMap<String, Position> = HashMap::new();
        for item in items {
            let Item::Ready(record) = item else { continue };
            let done = units.is_done(record);
            if self
                .config
                .skip
                .rule_for(record, self.now, done, false)
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
                    expires_at: self.now + rule.window,
                },
            ));
        }
        if wanted.is_empty() {
            return Ok(claims);
        }
        let leases: Vec<DedupClaim> = wanted
            .iter()
            .map(|(_, claim)| DedupClaim {
                expires_at: self.now + lease,
                ..claim.clone()
            })
            .collect();
        let outcomes = self
            .store
            .claim_dedup_keys(&self.key.consumer, &leases, self.now)
            .await
            .map_err(|e| self.state_error(e))?;
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
}

/// The owner name of a record's dedup claim.
fn owner_of(record: &Record) -> String {
    format!(
        "{}|{}|{}",
        record.shard.stream_arn, record.shard.shard_id, record.position
    )
}

//! Dedup claims of a batch: one store call claims the keys of every record
//! that may be handled. A record whose key another record holds is a
//! duplicate once that record's effect landed (its claim is done), and waits
//! for Lambda's retry while that record has not finished (its claim is in
//! flight: it may still fail, time out, or be discarded by Lambda).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::record::Position;
use crate::state::DedupClaim;

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
    pub(super) held: HashMap<Position, ClaimVerdict>,
    /// Later copies of a key within this batch, with the first copy's position.
    pub(super) copies: HashMap<Position, Position>,
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

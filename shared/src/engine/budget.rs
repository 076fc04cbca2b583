//! The quarantine one unit's commit may carry: at most
//! [`MAX_QUARANTINED_PER_COMMIT`] records and
//! [`MAX_QUARANTINED_BYTES_PER_COMMIT`] of payload (a first record larger
//! than that goes alone), so a unit's progress and its quarantined records
//! always fit one all-or-nothing write. A record past the bound is left for
//! Lambda's retry, which quarantines it in turn; its lane stops there, so a
//! window's state never holds records past the one left.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::state::{MAX_QUARANTINED_BYTES_PER_COMMIT, MAX_QUARANTINED_PER_COMMIT, Unit};

/// What a unit's commit carries so far.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Carried {
    records: usize,
    bytes: usize,
}

impl Carried {
    /// Takes one more record of `bytes` if it fits; whether it did.
    pub(super) fn admit(&mut self, bytes: usize) -> bool {
        let fits = self.records == 0
            || (self.records < MAX_QUARANTINED_PER_COMMIT
                && self.bytes + bytes <= MAX_QUARANTINED_BYTES_PER_COMMIT);
        if fits {
            self.records += 1;
            self.bytes += bytes;
        }
        fits
    }
}

/// The bound while records run, per unit (records of several lanes finish in
/// any order; the fold applies it again in record order).
#[derive(Debug, Default)]
pub(super) struct QuarantineBudget {
    units: Mutex<HashMap<Unit, Carried>>,
}

impl QuarantineBudget {
    /// Takes a record of `bytes` into `unit`'s commit if it fits.
    pub(super) fn admit(&self, unit: Unit<&str>, bytes: usize) -> bool {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        units.entry(unit.into_owned()).or_default().admit(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_carries_a_bounded_quarantine_and_always_its_first_record() {
        let mut carried = Carried::default();
        assert!(
            carried.admit(MAX_QUARANTINED_BYTES_PER_COMMIT * 2),
            "the first goes alone"
        );
        assert!(!carried.admit(1));
        let mut carried = Carried::default();
        for _ in 0..MAX_QUARANTINED_PER_COMMIT {
            assert!(carried.admit(10));
        }
        assert!(!carried.admit(10), "one record more than the bound");
        let budget = QuarantineBudget::default();
        assert!(budget.admit(Unit::Key("a"), MAX_QUARANTINED_BYTES_PER_COMMIT));
        assert!(!budget.admit(Unit::Key("a"), 1), "a's commit is full");
        assert!(budget.admit(Unit::Key("b"), 1), "b has its own");
    }
}

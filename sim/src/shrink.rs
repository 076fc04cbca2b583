//! Shrinking: a failing scenario made smaller, one field at a time, while it
//! still fails (the seed stays, so the choices the fields do not cover stay
//! as they were).

use crate::run::run;
use crate::scenario::{Faults, Scenario};

/// The smallest scenario found that still fails as `scenario` does (any
/// violation counts), in at most 200 runs.
pub fn shrink(scenario: &Scenario) -> Scenario {
    let mut best = scenario.clone();
    let mut runs = 0;
    loop {
        let mut smaller = false;
        for candidate in candidates(&best) {
            if runs >= 200 {
                return best;
            }
            runs += 1;
            if candidate != best && !run(&candidate).is_ok() {
                best = candidate;
                smaller = true;
                break;
            }
        }
        if !smaller {
            return best;
        }
    }
}

/// Each a little smaller than `s`.
fn candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut with = |change: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        change(&mut c);
        out.push(c);
    };
    with(&|c| c.workload.records = (c.workload.records / 2).max(1));
    with(&|c| c.workload.records = c.workload.records.saturating_sub(1).max(1));
    with(&|c| c.reshards.clear());
    with(&|c| {
        c.reshards.pop();
    });
    with(&|c| c.shards = 1);
    with(&|c| c.operator = false);
    with(&|c| c.environment_concurrency = 1);
    with(&|c| c.faults = Faults::none(c.faults.timeout));
    with(&|c| c.faults.crash = 0.0);
    with(&|c| c.faults.duplicate_delivery = 0.0);
    with(&|c| c.faults.handler_transient = 0.0);
    with(&|c| c.faults.slow = 0.0);
    with(&|c| c.faults.store_fail = 0.0);
    with(&|c| c.faults.store_lose = 0.0);
    with(&|c| c.faults.store_cancel = 0.0);
    with(&|c| c.faults.entry_fail = 0.0);
    with(&|c| c.faults.put_fail = 0.0);
    with(&|c| c.faults.source_fail = 0.0);
    with(&|c| c.workload.keys = 1);
    with(&|c| c.workload.kpl_max = 0);
    with(&|c| c.workload.permanent = 0.0);
    with(&|c| c.workload.retryable = 0.0);
    with(&|c| c.workload.hang = 0.0);
    with(&|c| c.workload.duplicates = 0.0);
    with(&|c| c.workload.backlog = 0);
    with(&|c| c.features.concurrency = 1);
    with(&|c| c.features.dedup = false);
    with(&|c| c.features.max_age = None);
    with(&|c| {
        if let Some(f) = &mut c.features.fan_out {
            f.destinations = 1;
            f.shards = 1;
        }
    });
    with(&|c| c.mapping.bisect = false);
    with(&|c| c.mapping.retry_limit = None);
    with(&|c| c.mapping.max_record_age = None);
    with(&|c| c.mapping.parallelization = 1);
    with(&|c| c.mapping.batch_size = (c.mapping.batch_size / 2).max(1));
    out
}

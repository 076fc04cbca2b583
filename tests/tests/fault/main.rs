//! The fault tests: whole functions under `shardline-cli source` with kills,
//! resharding and injected AWS faults, in a binary of their own so that their
//! load does not run beside the timing-sensitive tests of `it/`.
//! `SHARDLINE_FAULT_SEED` replays a run; `SHARDLINE_SOAK_MINUTES` repeats runs
//! with new seeds for that long.

mod fault_active_users;
mod fault_fanout;
mod fault_ledger;

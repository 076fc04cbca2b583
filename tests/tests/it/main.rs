//! The integration tests of the harness crate, one binary: each file is a
//! module (linking the AWS SDK once instead of once a file).

mod bad_input;
mod concurrency;
mod concurrency_race;
mod docs_links;
mod dynamodb;
mod fanout;
mod fanout_aggregate;
mod guard;
mod kinesis;
mod kinesis_resharding;
mod lambda_setup;
mod layout;
mod managed_instances;
mod overlapping_invocations;
mod own_function;
mod quarantine_ops;
mod source_iterator_expiry;
mod source_semantics;
mod source_windows;
mod state_commit_retry;
mod state_contract;
mod state_costs;
mod state_dynamodb;
mod template;

//! The integration tests of this crate, one binary: each file is a module
//! (the AWS SDK and the framework are linked once, not once a file).

mod cli;
mod dynamodb;
mod guard_cli;
mod key_progress_ttl;
mod lambda_runtime;
mod quarantine_cli;

//! The integration tests of this crate, one binary: each file is a module
//! (the AWS SDK and the framework are linked once, not once a file).

mod cli;
mod common;
mod dynamodb;

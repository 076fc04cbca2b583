//! The integration tests of this crate, one binary: each file is a module
//! (the AWS SDK and the framework are linked once, not once a file).

mod aws_shapes;
mod common;
mod engine;
mod engine_limits;
mod fanout_progress;
mod kpl;
mod repro;
mod window;
mod window_shapes;

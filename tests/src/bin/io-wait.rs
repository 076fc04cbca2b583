//! `io-wait`: a Shardline function whose handler stands for a call to another
//! service: it waits 5 ms per record (`IO_WAIT_MS` sets another time) and does
//! nothing else. For the Lambda Managed Instances benchmark
//! (`scripts/bench/managed_instances.py`): with in-batch concurrency 1 a
//! process is idle for most of a batch, which is what several invocations at
//! once in one process put to use.

use std::time::Duration;

use shardline::{App, Handler, HandlerError, Record};

struct IoWait(Duration);

impl Handler for IoWait {
    async fn handle(&self, _: &Record) -> Result<(), HandlerError> {
        tokio::time::sleep(self.0).await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), shardline::Error> {
    let millis = std::env::var("IO_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    App::new("io-wait", IoWait(Duration::from_millis(millis)))
        .run()
        .await
}
